"""The podman runtime: each server runs as the Pod the operator renders, started with `podman kube play`.

The Pod comes from the shared renderer (`render_server(...).pod()`): the app container plus the
`mcp-gateway` sidecar running `mcp-runtime gateway run`. Three things differ from Kubernetes, each because
of how podman 4.3 plays a Pod on one machine:

- Volumes. podman turns a configMap volume into a *named* volume (copied once, and global: two servers
  with the same name in different namespaces would share it) and an emptyDir into a named volume shared
  by every pod that uses the same volume name. So the policy, the JWKS and the scratch directories become
  per-server host directories under `<data_dir>/podman/<namespace>/<name>/`. The runtime rewrites
  `policy/policy.json` there atomically (temp file + rename) whenever the platform publishes a new policy
  document; the sidecar's file watcher sees the rename and reloads in well under a second.
- Ports. The sidecar's port is published on 127.0.0.1 at a free host port (`hostPort`); that is the
  server's address (`upstream_url`). Every other declared port (the app's) is dropped from the played Pod:
  podman 4's `kube play` would publish it on all host interfaces at the same port number. So all traffic
  is governed, and any number of servers with the same app port run side by side. A virtual
  server's gateway in `up` reaches the app at the pod's address (`app_url`) and governs with the server's
  own policy, as the sidecar does (docs/virtual-servers.md).
- Probes. podman 4.3 turns probes into exec healthchecks (needing curl/nc inside the image, named ports
  unresolved) driven by systemd timers; they are dropped and the runtime probes the sidecar's `/readyz`
  from the host instead, and reads container states with `podman pod inspect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml

from mcp_runtime.manifests import (
    APP_CONTAINER,
    GATEWAY_CONTAINER,
    RenderError,
    RenderOptions,
    SecretKey,
    gateway_upstream,
    object_name,
    render_server,
    route_path,
)
from mcp_runtime.manifests.images import DEFAULT_REGISTRY_ADDRESS, is_insecure_registry
from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE, DEFAULT_NONROOT_UID
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPServer, ServerPhase
from mcp_runtime.runtime.process import RuntimeStatus, StatusCallback, pick_free_port
from mcp_runtime.runtime.sidecar_proxy import SidecarProxy

log = logging.getLogger(__name__)

READY_TIMEOUT = 180.0
WATCH_INTERVAL = 2.0
POLICY_FILE = "policy.json"
JWKS_FILE = "jwks.json"
INGEST_KEY_FILE = "api-key"

PolicyLookup = Callable[[str, str], "PolicyDocument | None"]
JwksSource = Callable[[], Mapping[str, Any]]
PolicyCallback = Callable[[str, str, "PolicyDocument | None"], None]
"""callback(namespace, server_name, document): document None means the server is gone."""


class PodmanRuntimeError(ValueError):
    """A server the podman runtime cannot run (or podman failing); the message says what to change."""


def write_atomic(path: Path, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
    """Write a file all at once (temp file in the same directory + rename), so a watcher never reads half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass
class PodmanServer:
    """One deployed server: where its files are, its pod, and what the runtime last saw."""

    namespace: str
    name: str
    pod_name: str
    directory: Path
    route: str
    host_port: int
    image: str
    app_upstream: str = ""  # where the sidecar reaches the app inside the pod (loopback)
    pod_ip: str | None = None  # the pod's address on podman's network, once it runs
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    status: RuntimeStatus = field(default_factory=lambda: RuntimeStatus(ServerPhase.pending, "starting"))
    policy_revision: str = ""  # the revision of the policy file written last

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}{self.route}"

    @property
    def app_url(self) -> str | None:
        """The app as seen from the host: the sidecar's upstream with the pod's address for loopback."""
        if self.pod_ip is None:
            return None
        url = urlsplit(self.app_upstream)
        if url.hostname not in ("127.0.0.1", "localhost"):
            return None  # an upstream outside the pod (spec.gateway.upstreamURL): only the sidecar knows it
        return urlunsplit(url._replace(netloc=f"{self.pod_ip}:{url.port or 80}"))

    @property
    def readyz_url(self) -> str:
        return f"http://127.0.0.1:{self.host_port}/readyz"

    @property
    def manifest_path(self) -> Path:
        return self.directory / "pod.yaml"

    def container(self, which: str) -> str:
        return f"{self.pod_name}-{which}"


class PodmanRuntime:
    """Runs servers as podman pods (app + gateway sidecar), one instance per `mcp-runtime up --runtime podman`.

    Args:
        data_dir: the platform's data directory; pod files live in `<data_dir>/podman/`.
        policy_for: the current compiled policy of a server (the platform's `policies.document`); before
            the platform has compiled one, the server's own policy without grants (deny by default) is used.
        jwks: the platform's public signing keys (`keyring.jwks`), mounted into every sidecar.
        on_status: called with every status change (the platform writes it into MCPServer.status).
        registry_host: prefixed to short image names (the bundled registry by default).
        gateway_image: the platform image with `mcp-runtime` for the sidecar (`mcp-runtime image platform`).
        ingest_url / ingest_api_key: analytics; the URL must be reachable from inside pods
            (`http://host.containers.internal:<port>/api/v1/ingest/events` for a platform on this host
            listening on a non-loopback address).
        run_as_user: numeric user of both containers (files the runtime writes are owned by it).
        public_url / oauth_issuer: `up`'s URL and the platform's OAuth issuer; set (by `attach`), every
            sidecar is an OAuth protected resource at `<public_url><route>` (RFC 9728 metadata, 401s naming it).
    """

    has_gateway_sidecar = True
    """Each pod governs its own traffic: route `upstream_url` without a second gateway in front."""

    def __init__(self, data_dir: Path, *, policy_for: PolicyLookup | None = None,
                 jwks: JwksSource | Mapping[str, Any] | None = None, on_status: StatusCallback | None = None,
                 registry_host: str | None = DEFAULT_REGISTRY_ADDRESS, gateway_image: str = DEFAULT_GATEWAY_IMAGE,
                 ingest_url: str | None = None, ingest_api_key: str | None = None,
                 run_as_user: int = DEFAULT_NONROOT_UID, podman: str = "podman",
                 ready_timeout: float = READY_TIMEOUT, public_url: str | None = None,
                 oauth_issuer: str | None = None) -> None:
        self.root = Path(data_dir) / "podman"
        self.root.mkdir(parents=True, exist_ok=True)
        self._policy_for = policy_for
        self._jwks = jwks
        self._on_status = on_status
        self.registry_host = registry_host
        self.gateway_image = gateway_image
        self.ingest_url = ingest_url
        self.ingest_api_key = ingest_api_key
        self.run_as_user = run_as_user
        self.public_url, self.oauth_issuer = public_url, oauth_issuer
        self.podman = podman
        self._ready_timeout = ready_timeout
        self._servers: dict[tuple[str, str], PodmanServer] = {}
        self._policy_lock = threading.Lock()  # policies arrive from the API's threads, deploys on the loop
        self.proxy = SidecarProxy()
        """Serve this at each server's route in `up`: it passes requests to the pod's sidecar unchanged."""

    def attach(self, *, policy_for: PolicyLookup, jwks: JwksSource,
               subscribe: Callable[[PolicyCallback], Callable[[], None]],
               oauth: tuple[str, str] | None = None) -> Callable[[], None]:
        """Take policies and keys from the control plane and hear of every new policy; returns unsubscribe.

        `subscribe(callback)` registers `callback(namespace, name, document)` for every later policy
        (the composition root passes the platform's policy publisher). `oauth`: (public URL, issuer)
        when the platform is an OAuth authorization server."""
        self._policy_for = policy_for
        self._jwks = jwks
        if oauth is not None:
            self.public_url, self.oauth_issuer = oauth
        return subscribe(self.on_policy)

    # --- the interface `up` uses (same shape as ProcessRuntime) --------------------------------------

    def check(self, server: MCPServer) -> str | None:
        """Why this server cannot run here (None when it can)."""
        if shutil.which(self.podman) is None:
            return (f"{self.podman} is not installed: the podman runtime runs servers with `podman kube play` "
                    "(Debian: apt-get install podman runc catatonit)")
        if not server.spec.image and server.spec.stdio is not None:
            return (f"stdio server {server.metadata.name!r} has no image: in podman its command runs in an image "
                    "that also holds `mcp-runtime` (the bridge is the entrypoint); `server build image "
                    f"{server.metadata.name} --tag TAG` builds one with a package (npm:/pypi:) preinstalled on the "
                    "platform image, then deploy with --image")
        if not server.spec.image:
            return (f"server {server.metadata.name!r} has no image: the podman runtime runs container images; "
                    "build and push one (`server build image`, `registry push`) and deploy with --image")
        if not server.spec.gateway.enabled:
            return ("the podman runtime only runs governed servers (spec.gateway.enabled: true): without the "
                    "gateway sidecar nothing would check who calls the tools")
        return None

    async def deploy(self, server: MCPServer) -> None:
        """Play (or replace) the server's pod. Returns once podman started it; readiness shows in status."""
        reason = self.check(server)
        if reason is not None:
            raise PodmanRuntimeError(reason)
        namespace = server.metadata.namespace or "default"
        name = server.metadata.name
        previous = self._servers.pop((namespace, name), None)
        if previous is not None:
            await self._stop_watch(previous)
        managed = self._prepare(server, namespace, previous.host_port if previous else None)
        self._servers[(namespace, name)] = managed
        self._catch_up_policy(managed)
        self._report(managed, ServerPhase.pending, f"starting pod {managed.pod_name} ({managed.image})")
        command = [self.podman, "kube", "play", "--replace", "--quiet"]
        host = managed.image.split("/", 1)[0] if "/" in managed.image else ""
        if host and is_insecure_registry(host):
            command.append("--tls-verify=false")
        code, output = await _run([*command, str(managed.manifest_path)])
        if code != 0:
            message = f"podman kube play failed: {_tail(output)}"
            self._report(managed, ServerPhase.error, message)
            raise PodmanRuntimeError(message)
        managed.pod_ip = await self._pod_ip(managed)
        managed.task = asyncio.create_task(self._watch(managed), name=f"podman {namespace}/{name}")
        self.proxy.set_route(managed.route, managed.upstream_url, f"http://127.0.0.1:{managed.host_port}")

    async def delete(self, namespace: str, name: str) -> None:
        """Stop and remove the pod and its files."""
        managed = self._servers.pop((namespace, name), None)
        if managed is None:
            return
        await self._stop_watch(managed)
        self.proxy.remove_route(managed.route)
        await _run([self.podman, "pod", "rm", "--force", "--ignore", "--time", "5", managed.pod_name])
        shutil.rmtree(managed.directory, ignore_errors=True)

    async def shutdown(self) -> None:
        """Stop every pod (Ctrl-C on `up`)."""
        await asyncio.gather(*(self.delete(ns, name) for ns, name in list(self._servers)))
        await self.proxy.close()

    def upstream_url(self, namespace: str, name: str) -> str | None:
        """The server's governed address: its sidecar on 127.0.0.1 at its route."""
        managed = self._servers.get((namespace, name))
        return managed.upstream_url if managed else None

    def app_url(self, namespace: str, name: str) -> str | None:
        """The app container's own address, for a gateway that governs with the server's policy itself (a
        virtual server's member in `up`): the pod's IP on podman's network, where the app listens
        (HOST=0.0.0.0). Local processes can reach that address anyway; nothing is published for it."""
        managed = self._servers.get((namespace, name))
        return managed.app_url if managed else None

    def status(self, namespace: str, name: str) -> RuntimeStatus | None:
        managed = self._servers.get((namespace, name))
        return managed.status if managed else None

    def pod_name(self, namespace: str, name: str) -> str | None:
        managed = self._servers.get((namespace, name))
        return managed.pod_name if managed else None

    def logs(self, namespace: str, name: str, tail: int = 200, container: str = APP_CONTAINER) -> list[str]:
        """The last lines of the app container's log (or the sidecar's with container=mcp-gateway)."""
        managed = self._servers.get((namespace, name))
        if managed is None:
            return []
        proc = subprocess.run([self.podman, "logs", "--tail", str(tail), managed.container(container)],
                              capture_output=True, text=True, check=False)
        return (proc.stdout + proc.stderr).splitlines()[-tail:]

    async def follow(self, namespace: str, name: str) -> AsyncIterator[str]:
        """New log lines of the app container until the server is deleted."""
        managed = self._servers.get((namespace, name))
        if managed is None:
            return
        proc = await asyncio.create_subprocess_exec(
            self.podman, "logs", "--follow", "--tail", "0", managed.container(APP_CONTAINER),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert proc.stdout is not None
        try:
            while (namespace, name) in self._servers:
                try:
                    raw = await asyncio.wait_for(proc.stdout.readline(), timeout=1.0)
                except TimeoutError:
                    continue
                if not raw:
                    return
                yield raw.decode(errors="replace").rstrip("\n")
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # --- policy push -------------------------------------------------------------------------------

    def on_policy(self, namespace: str, name: str, document: PolicyDocument | None) -> None:
        """A PolicyPublisher subscriber: rewrite the server's policy file; the sidecar reloads it."""
        managed = self._servers.get((namespace, name))
        if managed is None or document is None:
            return
        with self._policy_lock:
            self._write_policy(managed, document)

    def _catch_up_policy(self, managed: PodmanServer) -> None:
        """A policy published while the pod was being prepared found no server to write to (a redeploy's
        own new policy, compiled in the API's thread as the runtime prepares the pod): without this the new
        pod kept the policy `_prepare` read until the next change. Now that the server is registered, every
        later policy reaches its file (`on_policy`); write the current one if it is not the prepared one."""
        if self._policy_for is None:
            return
        with self._policy_lock:
            current = self._policy_for(managed.namespace, managed.name)
            if current is not None and current.revision != managed.policy_revision:
                log.info("policy of %s/%s changed while its pod was prepared: writing %s", managed.namespace,
                         managed.name, current.revision[:12])
                self._write_policy(managed, current)

    def _write_policy(self, managed: PodmanServer, document: PolicyDocument) -> None:
        write_atomic(managed.directory / "policy" / POLICY_FILE, document.to_json(), 0o644, self._owner)
        managed.policy_revision = document.revision

    # --- building the pod ------------------------------------------------------------------------------

    @property
    def _owner(self) -> tuple[int, int]:
        return (self.run_as_user, self.run_as_user)

    def _policy(self, server: MCPServer, namespace: str) -> PolicyDocument:
        document = self._policy_for(namespace, server.metadata.name) if self._policy_for else None
        if document is None:
            placed = server.model_copy(deep=True)
            placed.metadata.namespace = namespace
            document = compile_policy(placed, [], [])
        return document

    def _jwks_document(self) -> Mapping[str, Any]:
        source = self._jwks
        if source is None:
            raise PodmanRuntimeError("the podman runtime needs the platform's JWKS to verify session tokens")
        return source() if callable(source) else source

    def _prepare(self, server: MCPServer, namespace: str, host_port: int | None) -> PodmanServer:
        name = server.metadata.name
        policy = self._policy(server, namespace)
        options = RenderOptions(
            gateway_image=self.gateway_image, registry_host=self.registry_host, image_pull_policy="IfNotPresent",
            default_namespace=namespace, ingest_url=self.ingest_url, ingress_enabled=False,
            run_as_user=self.run_as_user, run_as_group=self.run_as_user,
            public_url=self.public_url, oauth_issuer=self.oauth_issuer,
            ingest_key_secret=SecretKey("mcp-runtime-ingest", INGEST_KEY_FILE) if self.ingest_api_key else None,
        )
        try:
            pod = render_server(server, policy, options).pod()
        except RenderError as exc:
            raise PodmanRuntimeError(str(exc)) from None
        directory = self.root / _safe(namespace) / _safe(name)
        shutil.rmtree(directory, ignore_errors=True)
        managed = PodmanServer(
            namespace=namespace, name=name, pod_name=object_name(f"{namespace}-{name}"), directory=directory,
            route=route_path(server), host_port=host_port or pick_free_port(),
            image=pod["spec"]["containers"][0]["image"], app_upstream=gateway_upstream(server),
        )
        for sub in ("policy", "jwks", "ingest"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self._write_policy(managed, policy)
        write_atomic(directory / "jwks" / JWKS_FILE, json.dumps(self._jwks_document()).encode(), 0o644,
                     self._owner)
        if self.ingest_api_key:
            write_atomic(directory / "ingest" / INGEST_KEY_FILE, self.ingest_api_key.encode(), 0o400, self._owner)
        self._adapt_pod(pod, managed, server)
        managed.manifest_path.write_text(yaml.safe_dump(pod, sort_keys=False))
        return managed

    def _adapt_pod(self, pod: dict[str, Any], managed: PodmanServer, server: MCPServer) -> None:
        """Host directories for volumes, a published sidecar port, no probes (see the module docstring)."""
        pod["metadata"]["name"] = managed.pod_name
        spec = pod["spec"]
        host_dirs = {"policy": "policy", "jwks": "jwks", "ingest-key": "ingest"}
        volumes = []
        for volume in spec["volumes"]:
            vname = volume["name"]
            if vname in host_dirs:
                path = managed.directory / host_dirs[vname]
            elif "emptyDir" in volume:
                path = managed.directory / vname
                path.mkdir(parents=True, exist_ok=True)
                os.chmod(path, 0o1777)
            else:
                volumes.append(volume)
                continue
            if os.geteuid() == 0:
                os.chown(path, *self._owner)
            volumes.append({"name": vname, "hostPath": {"path": str(path), "type": "Directory"}})
        spec["volumes"] = volumes
        for container in spec["containers"]:
            container.pop("readinessProbe", None)
            container.pop("livenessProbe", None)
            # podman 4 publishes every containerPort without a hostPort on all host interfaces, at the same
            # port (the app's 8088: reachable from the network ungoverned, and a second pod cannot start).
            # Only the sidecar's port is published, on loopback; the pod's own address still reaches the app.
            ports = [port for port in container.get("ports", []) if container["name"] == GATEWAY_CONTAINER
                     and port["containerPort"] == server.spec.gateway.port]
            for port in ports:
                port["hostPort"] = managed.host_port
                port["hostIP"] = "127.0.0.1"
            if ports:
                container["ports"] = ports
            else:
                container.pop("ports", None)

    # --- watching ------------------------------------------------------------------------------------

    def _report(self, managed: PodmanServer, phase: ServerPhase, message: str) -> None:
        if managed.status.phase == phase and managed.status.message == message:
            return
        managed.status = RuntimeStatus(phase, message, managed.upstream_url, 0, None)
        if self._on_status is not None:
            try:
                self._on_status(managed.namespace, managed.name, managed.status)
            except Exception:
                log.exception("status callback failed for %s/%s", managed.namespace, managed.name)

    async def _stop_watch(self, managed: PodmanServer) -> None:
        managed.stopping = True
        if managed.task is not None:
            managed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await managed.task

    async def _pod_ip(self, managed: PodmanServer) -> str | None:
        """The IP of the pod's infra container on podman's network (None with host networking or on error)."""
        code, infra = await _run([self.podman, "pod", "inspect", "--format", "{{.InfraContainerID}}",
                                  managed.pod_name])
        if code != 0 or not infra.strip():
            return None
        code, output = await _run([self.podman, "inspect", "--format", "{{json .NetworkSettings.Networks}}",
                                   infra.strip()])
        try:
            networks = json.loads(output) if code == 0 else {}
        except ValueError:
            return None
        for network in (networks or {}).values():
            address = (network or {}).get("IPAddress")
            if address:
                return str(address)
        return None

    async def inspect(self, managed: PodmanServer) -> dict[str, str]:
        """Container name -> state (running, exited, created, ...), from `podman pod inspect`."""
        code, output = await _run([self.podman, "pod", "inspect", managed.pod_name])
        if code != 0:
            return {}
        try:
            data = json.loads(output)
        except ValueError:
            return {}
        if isinstance(data, list):
            data = data[0] if data else {}
        states: dict[str, str] = {}
        for container in data.get("Containers") or []:
            cname = str(container.get("Name", ""))
            if cname.startswith(f"{managed.pod_name}-"):
                states[cname[len(managed.pod_name) + 1:]] = str(container.get("State", "")).lower()
        return states

    async def _watch(self, managed: PodmanServer) -> None:
        """Ready once both containers run and the sidecar's /readyz answers 200; then keep watching."""
        try:
            await self._watch_pod(managed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("watching pod %s failed", managed.pod_name)
            self._report(managed, ServerPhase.error, f"the runtime cannot watch pod {managed.pod_name}: {exc}")

    async def _watch_pod(self, managed: PodmanServer) -> None:
        started = time.monotonic()
        ever_ready = False
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not managed.stopping:
                states = await self.inspect(managed)
                down = [c for c in (APP_CONTAINER, GATEWAY_CONTAINER) if states.get(c) not in ("running", None)]
                ready = False
                if states and not down:
                    with contextlib.suppress(httpx.HTTPError):
                        ready = (await client.get(managed.readyz_url)).status_code == 200
                if ready:
                    ever_ready = True
                    self._report(managed, ServerPhase.ready, f"serving on {managed.upstream_url}")
                elif down:
                    which = down[0]
                    lines = await asyncio.to_thread(self.logs, managed.namespace, managed.name, 8, which)
                    what = "crashed" if ever_ready else "did not start"
                    self._report(managed, ServerPhase.error,
                                 f"container {which} {what} ({states.get(which)}); last log lines:\n"
                                 + "\n".join(lines))
                elif not ever_ready and time.monotonic() - started > self._ready_timeout:
                    self._report(managed, ServerPhase.error,
                                 f"the gateway sidecar did not become ready on {managed.readyz_url} after "
                                 f"{self._ready_timeout:.0f}s")
                await asyncio.sleep(0.25 if not ever_ready else WATCH_INTERVAL)


def _safe(part: str) -> str:
    return object_name(part)


def _tail(output: str, lines: int = 6) -> str:
    return " | ".join(output.strip().splitlines()[-lines:]) or "(no output)"


async def _run(command: list[str]) -> tuple[int, str]:
    """Run podman; output goes to a temp file, not a pipe: conmon, which podman leaves running for each
    container, inherits podman's stdout, so reading a pipe to EOF would wait for the pod to stop."""
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_exec(*command, stdout=out, stderr=asyncio.subprocess.STDOUT,
                                                    stdin=asyncio.subprocess.DEVNULL)
        code = await proc.wait()
        out.seek(0)
        return code, out.read().decode(errors="replace")
