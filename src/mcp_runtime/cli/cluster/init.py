"""`mcp-runtime cluster init` (CRDs and namespaces) and `cluster config --ingress traefik|none` (the ingress
controller). Both are idempotent: re-running reports `unchanged`."""

from __future__ import annotations

from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.kube import (
    ContextOption,
    KubeconfigOption,
    PlatformNamespaceOption,
    kube_client,
    kube_failure,
    object_ref,
    print_applied,
)
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.kube import KubeError
from mcp_runtime.kube.ingress import SERVICE_TYPES, TRAEFIK_IMAGE, TraefikOptions, configure_traefik
from mcp_runtime.kube.platform import PlatformConfig, render_foundation

DryRunOption = typer.Option(False, "--dry-run", help="Print what would be applied (the objects with -o yaml); "
                                                     "change nothing.")


def _rows(results: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"object": object_ref(obj), "action": action} for action, obj in results]


def init(
    namespace: str = PlatformNamespaceOption,
    dry_run: bool = DryRunOption,
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Apply the platform's CRDs and namespaces (the platform namespace and the org/public catalogs)."""
    objects = render_foundation(PlatformConfig(namespace=namespace))
    if dry_run:
        if not emit_structured(objects, output):
            typer.echo("cluster init would apply (nothing is changed):")
            for obj in objects:
                typer.echo(f"  {object_ref(obj)}")
        return
    client = kube_client(kubeconfig, context)
    results = []
    try:
        for obj in objects:
            action, _ = client.apply(obj)
            results.append((action, obj))
    except KubeError as exc:
        raise kube_failure(exc, "cluster init stopped") from None
    if emit_structured(_rows(results), output):
        return
    print_applied(results)
    typer.echo("next: mcp-runtime cluster config --ingress traefik, then mcp-runtime setup")


def config(
    ingress: str = typer.Option("traefik", "--ingress", help="traefik (install or reuse Traefik) | none."),
    ingress_class: str = typer.Option("traefik", "--ingress-class", help="The IngressClass servers use."),
    ingress_namespace: str = typer.Option("traefik", "--ingress-namespace",
                                          help="Where to install Traefik (team NetworkPolicies admit `traefik`)."),
    image: str = typer.Option(TRAEFIK_IMAGE, "--image", help="The Traefik image."),
    service_type: str = typer.Option("LoadBalancer", "--service-type",
                                     help="Traefik's Service: LoadBalancer | NodePort | ClusterIP."),
    default_class: bool = typer.Option(False, "--default-class", help="Make it the cluster's default IngressClass."),
    dry_run: bool = DryRunOption,
    output: OutputFormat = OutputOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Configure the cluster's ingress: install Traefik for the IngressClass (or reuse a running Traefik,
    e.g. k3s's), or `none` (servers are reached through their Services)."""
    if ingress == "none":
        typer.echo("ingress none: nothing to install; install the platform with `mcp-runtime setup --ingress none` "
                   "and reach servers through their Services (mcp-runtime sentinel port-forward, kubectl "
                   "port-forward)")
        return
    if ingress != "traefik":
        raise CliError(f"--ingress {ingress!r} is not supported", hint="traefik or none")
    if service_type not in SERVICE_TYPES:
        raise CliError(f"--service-type {service_type!r} is not one of {', '.join(SERVICE_TYPES)}")
    opts = TraefikOptions(namespace=ingress_namespace, ingress_class=ingress_class, image=image,
                          service_type=service_type, default_class=default_class)
    client = kube_client(kubeconfig, context)
    try:
        existing, results = configure_traefik(client, opts, dry_run=dry_run)
    except ValueError as exc:
        raise CliError(str(exc), hint="choose another --ingress-class") from None
    except KubeError as exc:
        raise kube_failure(exc, "cluster config stopped") from None
    if dry_run and output != OutputFormat.table:
        emit_structured([obj for _, obj in results], output)
        return
    if emit_structured(_rows(results), output):
        return
    print_applied(results)
    if existing:
        typer.echo(f"Traefik {existing} was not installed by mcp-runtime: kept as it is; IngressClass "
                   f"{ingress_class} is set up for it")
    elif not dry_run:
        typer.echo(f"Traefik serves IngressClass {ingress_class} from namespace {ingress_namespace}; "
                   f"check it: mcp-runtime cluster doctor --ingress-class {ingress_class}")
