"""`mcp-runtime cluster`: prepare a cluster for MCP Runtime and check it. Assembled here in `--help` order:

- `init`, `config` (init.py): the CRDs and namespaces; the ingress controller;
- `provision` (provision.py): create a cluster with kind, k3d or eksctl;
- `cert status|apply|wait` (cert.py): cert-manager Certificates for the platform's hosts;
- `doctor` (doctor.py): the read-only checks.
"""

from __future__ import annotations

import typer

from mcp_runtime.cli.cluster import cert, doctor, init, provision

app = typer.Typer(help="Initialize clusters, configure ingress, manage cert-manager certificates, run checks.",
                  no_args_is_help=True)

app.command("init")(init.init)
app.command("config")(init.config)
app.command("provision")(provision.provision)
app.add_typer(cert.app, name="cert")
app.command("doctor")(doctor.doctor)
