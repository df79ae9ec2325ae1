"""Build, tag and push images with whatever this machine has: docker, podman or buildah (+ skopeo).

Everything is a subprocess of the user's own tool, so their registries, credentials and caches apply.
Pushes to a plain-HTTP registry on loopback (the bundled one) turn TLS verification off for that push only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mcp_runtime.manifests.images import has_registry_host, is_insecure_registry

BUILDERS = ("docker", "podman", "buildah")
PLATFORM_ENV = "MCP_DOCKER_PLATFORM"
DOCKER_DEFAULT_PLATFORM = "linux/amd64"


class BuildError(RuntimeError):
    """A build or push that failed; the message carries the tool's last output lines."""


@dataclass(frozen=True)
class Builder:
    name: str  # docker | podman | buildah
    path: str

    def build_command(self, tag: str, context: Path, containerfile: Path | None, platform: str | None,
                      build_args: Mapping[str, str]) -> list[str]:
        verb = ["bud"] if self.name == "buildah" else ["build"]
        cmd = [self.path, *verb, "-t", tag]
        if containerfile is not None:
            cmd += ["-f", str(containerfile)]
        if platform:
            cmd += ["--platform", platform]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        if self.name != "docker":
            cmd += ["--network", "host"]  # reach the host's package index / proxy during RUN steps
        return [*cmd, str(context)]


BUILDER_ENV = "MCP_RUNTIME_BUILDER"


def _docker_answers(path: str) -> bool:
    try:
        return subprocess.run([path, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_builder(preferred: str | None = None) -> Builder:
    """`preferred` (or $MCP_RUNTIME_BUILDER), else the first of docker (when its daemon answers), podman,
    buildah on PATH; a clear error when there is none."""
    preferred = preferred or os.environ.get(BUILDER_ENV) or None
    if preferred:
        path = shutil.which(preferred)
        if path is None:
            raise BuildError(f"{preferred} is not installed (asked for by --builder or ${BUILDER_ENV})")
        return Builder(preferred, path)
    found = [(name, shutil.which(name)) for name in BUILDERS]
    available = [(name, path) for name, path in found if path]
    for name, path in available:
        if name == "docker" and len(available) > 1 and not _docker_answers(path):
            continue  # a docker CLI without a daemon: use podman or buildah instead
        return Builder(name, path)
    raise BuildError("no image builder found: install docker, podman or buildah "
                     "(Debian: apt-get install podman) and try again")


def default_platform(builder: Builder, explicit: str | None) -> str | None:
    """--platform, else MCP_DOCKER_PLATFORM, else linux/amd64 for docker (matches common k8s nodes)."""
    if explicit:
        return explicit
    if os.environ.get(PLATFORM_ENV):
        return os.environ[PLATFORM_ENV]
    return DOCKER_DEFAULT_PLATFORM if builder.name == "docker" else None


def find_containerfile(context: Path, explicit: Path | None) -> Path:
    if explicit is not None:
        path = explicit if explicit.is_absolute() else Path.cwd() / explicit
        if not path.is_file():
            raise BuildError(f"{explicit} does not exist")
        return path
    for name in ("Containerfile", "Dockerfile"):
        if (context / name).is_file():
            return context / name
    raise BuildError(f"no Containerfile or Dockerfile in {context}: pass --file")


def run_tool(cmd: Sequence[str], *, what: str, stream: bool = False, env: Mapping[str, str] | None = None,
             timeout: float | None = None, cwd: Path | None = None) -> str:
    """Run a build tool; on failure raise BuildError with its last lines. `stream` shows its output live."""
    full_env = {**os.environ, **(env or {})}
    if stream:
        proc = subprocess.run(list(cmd), env=full_env, timeout=timeout, check=False, cwd=cwd)
        if proc.returncode != 0:
            raise BuildError(f"{what} failed (exit code {proc.returncode}): {' '.join(cmd[:3])} ...")
        return ""
    proc2 = subprocess.run(list(cmd), env=full_env, timeout=timeout, check=False, capture_output=True, text=True,
                           cwd=cwd)
    if proc2.returncode != 0:
        tail = " | ".join((proc2.stderr or proc2.stdout).strip().splitlines()[-6:])
        raise BuildError(f"{what} failed (exit code {proc2.returncode}): {tail}")
    return proc2.stdout


def build_image(tag: str, context: Path, *, containerfile: Path | None = None, platform: str | None = None,
                build_args: Mapping[str, str] | None = None, builder: Builder | None = None,
                stream: bool = False) -> Builder:
    """Build `context` into the local image `tag`; returns the builder used."""
    builder = builder or find_builder()
    if not context.is_dir():
        raise BuildError(f"build context {context} is not a directory")
    cmd = builder.build_command(tag, context, find_containerfile(context, containerfile),
                                default_platform(builder, platform), build_args or {})
    run_tool(cmd, what=f"{builder.name} build", stream=stream)
    return builder


def local_image_exists(image: str, builder: Builder | None = None) -> bool:
    builder = builder or find_builder()
    if builder.name == "docker":
        cmd = [builder.path, "image", "inspect", image]
    elif builder.name == "podman":
        cmd = [builder.path, "image", "exists", image]
    else:
        cmd = [builder.path, "inspect", "--type", "image", image]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def tag_image(source: str, target: str, builder: Builder | None = None) -> None:
    builder = builder or find_builder()
    run_tool([builder.path, "tag", source, target], what=f"{builder.name} tag")


def push_image(local: str, target: str, builder: Builder | None = None) -> str:
    """Push the local image `local` as `target`. Uses skopeo from podman/buildah storage when present
    (no daemon needed), else the builder's own push. Returns the tool used."""
    builder = builder or find_builder()
    host = target.split("/", 1)[0]
    insecure = is_insecure_registry(host)
    skopeo = shutil.which("skopeo")
    if builder.name in ("podman", "buildah") and skopeo:
        cmd = [skopeo, "copy", "--quiet"]
        if insecure:
            cmd.append("--dest-tls-verify=false")
        cmd += [f"containers-storage:{_storage_name(local)}", f"docker://{target}"]
        run_tool(cmd, what="skopeo copy")
        return "skopeo"
    if builder.name == "docker":
        if local != target:
            tag_image(local, target, builder)
        run_tool([builder.path, "push", target], what="docker push")
        return "docker"
    cmd = [builder.path, "push"]
    if insecure:
        cmd.append("--tls-verify=false")
    run_tool([*cmd, local, f"docker://{target}"], what=f"{builder.name} push")
    return builder.name


def _storage_name(image: str) -> str:
    """containers-storage names short images `localhost/<name>`; full references are kept."""


    return image if has_registry_host(image) else f"localhost/{image}"
