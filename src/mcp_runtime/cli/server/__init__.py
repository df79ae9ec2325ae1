"""`mcp-runtime server`: author `.mcp` metadata, deploy and inspect servers on the platform, and (admins)
manage them straight on Kubernetes. The group is assembled here, once, in `--help` order.

- local files (and `--from-server`): `init` (init.py), `validate` (validate.py), `generate` (generate.py);
- the platform API: `deploy` (deploy.py), `list`, `get`, `status` (show.py), `delete` (delete.py),
  `logs` (logs.py), `policy inspect` (policy.py), `tools diff|approve` (tools.py);
- the Kubernetes API, with `--use-kube`: `create`, `apply`, `export`, `patch` (kube.py), `logs` (logs.py);
- the local image builder: `build image` (build.py);
- virtual servers: `virtual init|apply|list|get|delete` (virtual.py).
Helpers two or more of them use are in common.py.
"""

from __future__ import annotations

import typer

from mcp_runtime.cli.server import (
    build,
    delete,
    deploy,
    generate,
    init,
    kube,
    logs,
    policy,
    show,
    tools,
    validate,
    virtual,
)

app = typer.Typer(help="Scaffold and validate .mcp metadata; deploy, inspect and manage servers on the platform.",
                  no_args_is_help=True)

app.command("init")(init.init)
app.command("validate")(validate.validate)
app.command("generate")(generate.generate)
app.command("deploy")(deploy.deploy)
app.command("list")(show.list_servers)
app.command("get")(show.get)
app.command("status")(show.status)
app.command("delete")(delete.delete)
app.command("logs")(logs.logs)
app.command("create")(kube.server_create)
app.command("apply")(kube.server_apply)
app.command("export")(kube.server_export)
app.command("patch")(kube.server_patch)
app.add_typer(build.app, name="build")
app.add_typer(policy.app, name="policy")
app.add_typer(tools.app, name="tools")
app.add_typer(virtual.app, name="virtual")
