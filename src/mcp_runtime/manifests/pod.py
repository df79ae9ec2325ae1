"""The pod template: the app container and, when the gateway is on, the `mcp-gateway` sidecar.

A remote server (`spec.remote`) has no app container: its pods run the gateway alone, forwarding to the
remote's URL with the credential from the Secret `remote.headerSecret` names (mounted into the gateway
only) and the CA bundle from the policy ConfigMap (key `remote-ca.pem`).

Both containers run as non-root with a read-only root filesystem (each gets an emptyDir at /tmp), no
privilege escalation and no capabilities, which is what Pod Security `restricted` demands. The service
account token is never auto-mounted; when the sidecar watches its policy ConfigMap through the API, a
projected token is mounted into the sidecar only.
"""

from __future__ import annotations

from collections.abc import Mapping

from mcp_runtime.manifests.common import (
    ANNOTATION_IMAGE,
    ANNOTATION_POLICY_REVISION,
    APP_CONTAINER,
    GATEWAY_CONTAINER,
    INGEST_KEY_FILE,
    POLICY_KEY,
    Manifest,
    RenderContext,
    gateway_service_account_name,
    policy_configmap_name,
    resource_url,
    route_path,
)
from mcp_runtime.manifests.options import RenderOptions, SecretKey
from mcp_runtime.policy import PolicyDocument
from mcp_runtime.resources import MCPServer
from mcp_runtime.resources.server import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT


def pod_template(ctx: RenderContext, policy: PolicyDocument, labels: dict[str, str], image: str) -> Manifest:
    spec = ctx.server.spec
    options = ctx.options
    gateway_on = spec.gateway.enabled
    remote = spec.remote is not None
    annotations = {**ctx.annotations, "kubectl.kubernetes.io/default-container":
                   GATEWAY_CONTAINER if remote else APP_CONTAINER, ANNOTATION_IMAGE: image}
    if options.restart_on_policy_change and gateway_on:
        annotations[ANNOTATION_POLICY_REVISION] = policy.revision
    containers = [] if remote else [_app_container(ctx, image)]
    volumes: list[Manifest] = [] if remote else [{"name": "app-tmp", "emptyDir": {}}]
    if gateway_on:
        gateway, gateway_volumes = _gateway_container(ctx)
        containers.append(gateway)
        volumes.extend(gateway_volumes)
    security = pod_security_context(options)
    pod_spec: Manifest = {
        # Never auto-mounted: with API watching, the token is projected into the sidecar alone.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": security,
        "containers": containers,
        "volumes": volumes,
    }
    if options.watch_policy_via_api and gateway_on:
        pod_spec["serviceAccountName"] = gateway_service_account_name(ctx.server.name)
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def api_access_volume() -> Manifest:
    """What automounting would give (short-lived token, cluster CA, namespace), for one container only.

    Kubernetes client libraries find it at the standard path, so the sidecar's in-cluster config works;
    the app container never sees the token.
    """
    return {"name": "kube-api-access", "projected": {"defaultMode": 0o444, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                       "fieldPath": "metadata.namespace"}}]}},
    ]}}


def pod_security_context(options: RenderOptions) -> Manifest:
    """Non-root with the runtime's seccomp profile; fsGroup makes mounted Secrets (mode 0440) readable by
    the gateway's group."""
    security: Manifest = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if options.run_as_user is not None:
        security["runAsUser"] = options.run_as_user
    if options.run_as_group is not None:
        security["runAsGroup"] = options.run_as_group
        security["fsGroup"] = options.run_as_group
    return security


def container_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def resource_requirements(requirements: Mapping[str, Mapping[str, str]]) -> Manifest:
    """`{limits, requests}` with empty parts left out and keys sorted (stable output)."""
    out: Manifest = {}
    for part in ("limits", "requests"):
        values = requirements.get(part) or {}
        if values:
            out[part] = {k: values[k] for k in sorted(values)}
    return out


def _app_container(ctx: RenderContext, image: str) -> Manifest:
    spec = ctx.server.spec
    options = ctx.options
    env: list[Manifest] = [
        {"name": "PORT", "value": str(spec.port)},
        {"name": "MCP_PATH", "value": ctx.path},
    ]
    if not any(e.name == "HOST" for e in spec.env_vars):
        # The kubelet's TCP probes reach the pod IP, so the app must listen on every interface.
        env.append({"name": "HOST", "value": "0.0.0.0"})
    env.extend({"name": e.name, "value": e.value} for e in spec.env_vars)
    env.extend(
        {"name": e.name, "valueFrom": {"secretKeyRef": {"name": e.secret_key_ref.name, "key": e.secret_key_ref.key}}}
        for e in spec.secret_env_vars
    )
    stdio = spec.stdio
    if stdio is not None:
        env.extend({"name": e.name, "value": e.value} for e in stdio.env_vars)
        env.extend(
            {"name": e.name,
             "valueFrom": {"secretKeyRef": {"name": e.secret_key_ref.name, "key": e.secret_key_ref.key}}}
            for e in stdio.secret_env_vars
        )
    port_name = options.app_port_name
    container: Manifest = {
        "name": APP_CONTAINER,
        "image": image,
        "ports": [{"name": port_name, "containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": {"tcpSocket": {"port": port_name}, "initialDelaySeconds": 1, "periodSeconds": 5,
                           "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": port_name}, "initialDelaySeconds": 10, "periodSeconds": 10,
                          "timeoutSeconds": 2, "failureThreshold": 3},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "app-tmp", "mountPath": "/tmp"}],
    }
    if stdio is not None:
        # the stdio bridge is the entrypoint: the image holds `mcp-runtime` and the server's command
        container["command"] = [*options.gateway_command, "bridge", "stdio", "--max-sessions",
                                str(stdio.max_sessions), "--idle-timeout", stdio.idle_timeout, "--", *stdio.argv()]
        if stdio.working_dir:
            container["workingDir"] = stdio.working_dir
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    requirements: Mapping[str, Mapping[str, str]] | None = options.app_default_resources
    if spec.resources is not None:
        requirements = {"limits": spec.resources.limits, "requests": spec.resources.requests}
    resources = resource_requirements(requirements) if requirements is not None else {}
    if resources:
        container["resources"] = resources
    return container


def _ingest(ctx: RenderContext) -> tuple[str | None, SecretKey | None]:
    """The ingest URL and key Secret when analytics is on for this server, else (None, None)."""
    analytics = ctx.server.spec.analytics
    if analytics is not None and analytics.disabled:
        return None, None
    url = (analytics.ingest_url if analytics else None) or ctx.options.ingest_url
    if not url:
        return None, None
    ref = analytics.api_key_secret_ref if analytics else None
    key = SecretKey(ref.name, ref.key) if ref is not None else ctx.options.ingest_key_secret
    return url, key


REMOTE_CA_KEY = "remote-ca.pem"
REMOTE_CREDENTIAL_DIR = "/var/run/mcp-runtime/remote"
REMOTE_CREDENTIAL_FILE = "credential"


def remote_ca_data(server: MCPServer) -> dict[str, str]:
    """What the policy ConfigMap carries besides the policy: a remote server's CA bundle (public data)."""
    remote = server.spec.remote
    return {REMOTE_CA_KEY: remote.ca_bundle} if remote is not None and remote.ca_bundle else {}


def gateway_upstream(server: MCPServer) -> str:
    """Where the sidecar forwards: a remote server's URL, `spec.gateway.upstreamURL`, else the app on
    loopback at the route."""
    spec = server.spec
    if spec.remote is not None:
        return spec.remote.url
    if spec.gateway.upstream_url:
        return spec.gateway.upstream_url
    return f"http://127.0.0.1:{spec.port}{route_path(server)}"


def _remote_parts(ctx: RenderContext, args: list[str], mounts: list[Manifest], volumes: list[Manifest]) -> None:
    """A remote server's gateway flags: its credential (a Secret mounted here only) and CA bundle."""
    remote = ctx.server.spec.remote
    assert remote is not None
    if remote.ca_bundle:
        args += ["--ca-file", f"{ctx.options.policy_mount_dir.rstrip('/')}/{REMOTE_CA_KEY}"]
    secret = remote.header_secret
    if secret is None:
        return
    args += ["--upstream-header", secret.header, "--upstream-credential-file",
             f"{REMOTE_CREDENTIAL_DIR}/{REMOTE_CREDENTIAL_FILE}"]
    if secret.prefix:
        args += ["--upstream-header-prefix", secret.prefix]
    mounts.append({"name": "remote-credential", "mountPath": REMOTE_CREDENTIAL_DIR, "readOnly": True})
    volumes.append({"name": "remote-credential", "secret": {
        "secretName": secret.name, "defaultMode": 0o440 if ctx.options.run_as_group is not None else 0o444,
        "items": [{"key": secret.key, "path": REMOTE_CREDENTIAL_FILE}]}})


def _ingest_parts(ctx: RenderContext, args: list[str], mounts: list[Manifest], volumes: list[Manifest]) -> None:
    """Where the sidecar sends its decisions and holds calls for approval, and the key it sends them with."""
    options = ctx.options
    ingest_url, ingest_key = _ingest(ctx)
    if ingest_url:
        args += ["--ingest-url", ingest_url]
        if options.approvals_url:  # the API process, which the CLI and the dashboard ask (docs/approvals.md)
            args += ["--approvals-url", options.approvals_url]
        if ingest_key is not None:
            ingest_dir = options.ingest_key_mount_dir.rstrip("/")
            args += ["--ingest-key-file", f"{ingest_dir}/{INGEST_KEY_FILE}"]
            mounts.append({"name": "ingest-key", "mountPath": ingest_dir, "readOnly": True})
            volumes.append({"name": "ingest-key", "secret": {
                "secretName": ingest_key.name,
                "defaultMode": 0o440 if options.run_as_group is not None else 0o444,
                "items": [{"key": ingest_key.key, "path": INGEST_KEY_FILE}]}})


def _gateway_args(ctx: RenderContext) -> list[str]:
    """`mcp-runtime gateway run`'s flags for the sidecar: upstream, policy and JWKS files, listen, timeouts."""
    spec, options = ctx.server.spec, ctx.options
    args = [
        "gateway", "run",
        "--upstream", gateway_upstream(ctx.server),
        "--policy-file", f"{options.policy_mount_dir.rstrip('/')}/{POLICY_KEY}",
        "--jwks-file", f"{options.jwks_mount_dir.rstrip('/')}/jwks.json",
        "--listen", f"0.0.0.0:{spec.gateway.port}",
        "--path", route_path(ctx.server),
    ]
    if options.watch_policy_via_api:
        args += ["--policy-configmap", f"{ctx.namespace}/{policy_configmap_name(ctx.server.name)}"]
    timeouts = spec.gateway.timeouts
    if timeouts.connect != DEFAULT_CONNECT_TIMEOUT:
        args += ["--connect-timeout", timeouts.connect]
    if timeouts.read != DEFAULT_READ_TIMEOUT:
        args += ["--read-timeout", timeouts.read]
    return args


def _gateway_storage(ctx: RenderContext) -> tuple[list[Manifest], list[Manifest]]:
    """The sidecar's mounts and the pod volumes behind them: policy (plus a remote's CA), JWKS, /tmp."""
    options = ctx.options
    policy_dir, jwks_dir = options.policy_mount_dir.rstrip("/"), options.jwks_mount_dir.rstrip("/")
    policy_items = [{"key": POLICY_KEY, "path": POLICY_KEY}] + [
        {"key": key, "path": key} for key in remote_ca_data(ctx.server)]
    mounts: list[Manifest] = [
        {"name": "policy", "mountPath": policy_dir, "readOnly": True},
        {"name": "jwks", "mountPath": jwks_dir, "readOnly": True},
        {"name": "gateway-tmp", "mountPath": "/tmp"},
    ]
    volumes: list[Manifest] = [
        {"name": "policy", "configMap": {"name": policy_configmap_name(ctx.server.name), "items": policy_items}},
        {"name": "jwks", "configMap": {"name": options.jwks_configmap,
                                       "items": [{"key": options.jwks_key, "path": "jwks.json"}]}},
        {"name": "gateway-tmp", "emptyDir": {}},
    ]
    if options.watch_policy_via_api:
        mounts.append({"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True})
        volumes.append(api_access_volume())
    return mounts, volumes


def _gateway_container(ctx: RenderContext) -> tuple[Manifest, list[Manifest]]:
    spec = ctx.server.spec
    options = ctx.options
    args = _gateway_args(ctx)
    mounts, volumes = _gateway_storage(ctx)
    if spec.remote is not None:
        _remote_parts(ctx, args, mounts, volumes)
    resource = resource_url(ctx.server, options)
    if resource is not None and options.oauth_issuer:
        args += ["--resource-url", resource, "--authorization-server", options.oauth_issuer]
    _ingest_parts(ctx, args, mounts, volumes)
    if options.otlp_endpoint:
        args += ["--otlp-endpoint", options.otlp_endpoint]
    port_name = options.gateway_port_name
    container: Manifest = {
        "name": GATEWAY_CONTAINER,
        "image": options.gateway_image,
        "command": list(options.gateway_command),
        "args": args,
        "ports": [{"name": port_name, "containerPort": spec.gateway.port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port_name}, "initialDelaySeconds": 1,
                           "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port_name}, "initialDelaySeconds": 5,
                          "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    resources = resource_requirements(options.gateway_resources)
    if resources:
        container["resources"] = resources
    return container, volumes
