"""Connection facts (URL, credentials, TLS) for async HTTP clients that talk to the Kubernetes API.

The kubeconfig is read by the official `kubernetes` library; in a pod the service-account files are
read directly, and the token is re-read on every connection because projected tokens rotate.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from mcp_runtime.kube.client import KubeConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeConnection:
    base_url: str
    token: str | None = None
    token_file: Path | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file is not None:
            token = self.token_file.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.base_url.startswith("https"):
            return False
        if not self.verify:
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def async_client(self, *, read_timeout: float | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, verify=self.ssl_context(),
                                 timeout=httpx.Timeout(10.0, read=read_timeout))

    @classmethod
    def in_cluster(cls, directory: Path = SERVICE_ACCOUNT_DIR) -> KubeConnection:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (directory / "token").is_file():
            raise KubeConfigError(
                f"not in a pod with a service-account token ({directory}/token): set KUBECONFIG, or run the "
                "sidecar with the token the operator projects")
        if ":" in host:
            host = f"[{host}]"
        ca = directory / "ca.crt"
        return cls(base_url=f"https://{host}:{port}", token_file=directory / "token",
                   ca_file=str(ca) if ca.is_file() else None)

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> KubeConnection:
        try:
            from kubernetes import client, config
        except ImportError:  # pragma: no cover
            raise KubeConfigError("the Kubernetes client is not installed: pip install 'mcp-runtime[kube]'") from None
        configuration = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]  # the kubernetes package is untyped
                config_file=path, context=context, client_configuration=configuration)
        except Exception as exc:
            raise KubeConfigError(f"cannot use kubeconfig {path or '~/.kube/config'}: {exc}") from None
        auth = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
        token = auth.split(" ", 1)[1] if auth and " " in auth else auth
        return cls(base_url=configuration.host.rstrip("/"), token=token, ca_file=configuration.ssl_ca_cert,
                   cert_file=configuration.cert_file, key_file=configuration.key_file,
                   verify=bool(configuration.verify_ssl))

    @classmethod
    def from_environment(cls) -> KubeConnection:
        """In a pod: the service account; elsewhere: `$KUBECONFIG` or `~/.kube/config`."""
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").is_file():
            return cls.in_cluster()
        path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        first = next((p for p in path.split(os.pathsep) if p and Path(p).is_file()), None)
        if first is None:
            raise KubeConfigError(
                f"no kubeconfig at {path} and no in-cluster service account: set KUBECONFIG")
        return cls.from_kubeconfig(first)
