"""cert-manager Certificates for the platform's hosts (`cluster cert status|apply|wait`).

The hosts are the ones the platform's Ingresses serve (`platform.<domain>`, `registry.<domain>`: what `setup`
applied), so the Certificates always match what is installed. Each Certificate is named after the TLS Secret
its Ingress reads (`<ingress>-tls`), which is also the name cert-manager's ingress-shim would give it: a
Certificate the shim already made is reported and left alone, never duplicated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp_runtime.kube.client import KubeClient
from mcp_runtime.kube.platform import PART_OF

Manifest = dict[str, Any]

CERT_MANAGER_VERSION = "v1.16.2"
CERT_MANAGER_URL = (f"https://github.com/cert-manager/cert-manager/releases/download/{CERT_MANAGER_VERSION}/"
                    "cert-manager.yaml")
"""What `setup --with-tls` installs when cert-manager is missing (and the CRDs the tests vendor)."""
CERTIFICATE_CRD = "certificates.cert-manager.io"
CLUSTER_ISSUER_CRD = "clusterissuers.cert-manager.io"
ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
PLATFORM_SELECTOR = "app.kubernetes.io/part-of=mcp-runtime"


class CertError(Exception):
    """A precondition for certificates is missing; `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class PlatformHost:
    """The hosts of a platform Ingress that share one TLS Secret (= the Certificate's name)."""

    ingress: str
    hosts: tuple[str, ...]
    secret: str
    issuer: str | None  # the Ingress's cert-manager.io/cluster-issuer annotation
    tls: bool = True  # the Ingress already serves these hosts with that Secret


def cert_manager_installed(client: KubeClient) -> bool:
    return client.get("CustomResourceDefinition", CERTIFICATE_CRD) is not None


def require_cert_manager(client: KubeClient) -> None:
    if not cert_manager_installed(client):
        raise CertError(f"cert-manager is not installed on this cluster (no CRD {CERTIFICATE_CRD})",
                        hint=f"mcp-runtime setup --with-tls installs it, or: kubectl apply -f {CERT_MANAGER_URL}")


def platform_hosts(client: KubeClient, namespace: str) -> list[PlatformHost]:
    """The hosts of every platform Ingress in `namespace` by TLS Secret, in Ingress name order."""
    found = []
    for ingress in sorted(client.list("Ingress", namespace, label_selector=PLATFORM_SELECTOR),
                          key=lambda i: i["metadata"]["name"]):
        name = ingress["metadata"]["name"]
        issuer = (ingress["metadata"].get("annotations") or {}).get(ISSUER_ANNOTATION)
        spec = ingress.get("spec") or {}
        secrets = {h: t.get("secretName") for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        by_secret: dict[str, list[str]] = {}
        for rule in spec.get("rules") or []:
            if rule.get("host"):
                by_secret.setdefault(secrets.get(rule["host"]) or f"{name}-tls", []).append(rule["host"])
        found += [PlatformHost(name, tuple(hosts), secret, issuer, tls=hosts[0] in secrets)
                  for secret, hosts in by_secret.items()]
    return found


def require_hosts(client: KubeClient, namespace: str) -> list[PlatformHost]:
    hosts = platform_hosts(client, namespace)
    if not hosts:
        raise CertError(f"no platform Ingress with a host in namespace {namespace}: nothing needs a certificate",
                        hint="install the platform with an ingress: mcp-runtime setup --ingress traefik")
    return hosts


def render_certificate(host: PlatformHost, namespace: str, issuer: str) -> Manifest:
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": host.secret, "namespace": namespace,
                         "labels": {**PART_OF, "app.kubernetes.io/name": host.ingress}},
            "spec": {"secretName": host.secret, "dnsNames": list(host.hosts),
                     "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer}}}


def issuer_state(client: KubeClient, name: str) -> str:
    """`Ready`, `NotReady (<message>)` or `missing`."""
    issuer = client.get("ClusterIssuer", name)
    if issuer is None:
        return "missing"
    ready = condition(issuer, "Ready")
    if ready and ready.get("status") == "True":
        return "Ready"
    return "NotReady" + (f" ({ready.get('message')})" if ready and ready.get("message") else "")


def condition(obj: Manifest, type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def certificate_row(host: PlatformHost, cert: Manifest | None) -> dict[str, Any]:
    """What `cert status` shows for one host: the Certificate's readiness, expiry and who manages it."""
    row: dict[str, Any] = {"certificate": host.secret, "hosts": list(host.hosts), "ingress": host.ingress}
    if cert is None:
        return {**row, "issuer": host.issuer, "ready": "Missing", "expires": None, "managedBy": None,
                "message": "no Certificate: mcp-runtime cluster cert apply"}
    ready = condition(cert, "Ready")
    owners = [o.get("kind") for o in cert["metadata"].get("ownerReferences") or []]
    status = "True" if ready and ready.get("status") == "True" else "False" if ready else "Unknown"
    message = (ready or {}).get("message") or ("" if ready else "not issued yet: no cert-manager controller "
                                                              "has reported on it")
    return {**row, "issuer": ((cert.get("spec") or {}).get("issuerRef") or {}).get("name"), "ready": status,
            "expires": (cert.get("status") or {}).get("notAfter"),
            "managedBy": "ingress-shim" if "Ingress" in owners else "mcp-runtime", "message": message}


def certificate_rows(client: KubeClient, namespace: str) -> list[dict[str, Any]]:
    return [certificate_row(h, client.get("Certificate", h.secret, namespace))
            for h in require_hosts(client, namespace)]


def apply_certificates(client: KubeClient, namespace: str, issuer: str | None,
                       *, dry_run: bool = False) -> list[tuple[str, Manifest]]:
    """Create or update a Certificate per platform host; (action, object) each. An existing Certificate
    owned by an Ingress (cert-manager's ingress-shim made it) is left as it is (`managed by ingress-shim`)."""
    require_cert_manager(client)
    hosts = require_hosts(client, namespace)
    results = []
    for host in hosts:
        chosen = issuer or host.issuer
        if not chosen:
            raise CertError(f"Ingress {host.ingress} names no ClusterIssuer and none was given",
                            hint="pass --issuer NAME (an existing cert-manager ClusterIssuer)")
        if issuer_state(client, chosen) == "missing":
            raise CertError(f"ClusterIssuer {chosen} does not exist",
                            hint="create it (setup --with-tls --acme-email you@example.com makes `letsencrypt`), "
                                 "or pass --issuer NAME")
        desired = render_certificate(host, namespace, chosen)
        live = client.get("Certificate", host.secret, namespace)
        if live is not None and any(o.get("kind") == "Ingress" for o in live["metadata"].get("ownerReferences")
                                    or []):
            results.append(("managed by ingress-shim", live))
            continue
        if dry_run:
            results.append(("would apply", desired))
            continue
        action, obj = client.apply(desired)
        results.append((action, obj))
        if not host.tls:
            results.append(("tls added", _serve_tls(client, host, namespace)))
    return results


def _serve_tls(client: KubeClient, host: PlatformHost, namespace: str) -> Manifest:
    """Point the Ingress at the Certificate's Secret for its hosts (it had no TLS for them)."""
    ingress = client.get("Ingress", host.ingress, namespace) or {}
    tls = [*((ingress.get("spec") or {}).get("tls") or []), {"hosts": list(host.hosts), "secretName": host.secret}]
    return client.patch("Ingress", host.ingress, namespace, {"spec": {"tls": tls}})


def wait_ready(client: KubeClient, namespace: str, timeout: float, *, interval: float = 1.0,
               on_ready: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Poll until every platform host's Certificate is Ready; returns the rows still not Ready when
    `timeout` seconds passed (empty: all Ready). `on_ready` is told about each as it turns Ready."""
    require_cert_manager(client)
    deadline = time.monotonic() + timeout
    announced: set[str] = set()
    while True:
        rows = certificate_rows(client, namespace)
        for row in rows:
            if row["ready"] == "True" and row["certificate"] not in announced:
                announced.add(row["certificate"])
                if on_ready:
                    on_ready(row)
        pending = [r for r in rows if r["ready"] != "True"]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
