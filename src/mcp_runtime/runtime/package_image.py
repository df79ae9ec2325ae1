"""Images for stdio package servers (`stdio.package`): the package preinstalled, so nothing downloads at pod start.

The image is the platform image (it holds `mcp-runtime`, whose `bridge stdio` is the app container's
entrypoint) plus the package, fetched on the host with the host's own registry settings, as the platform
image's wheels are:

- `npm:<pkg>@<version>`: `npm install` on the host of the package, Node 22 (`node@22`, the official binary
  as npm publishes it) and npm itself (for `npx`) into `/opt/mcp-stdio`, the image's working directory.
  The server's command stays `npx -y <pkg>@<version>`: npx finds the package installed in that project and
  runs it; `NPM_CONFIG_OFFLINE` makes any attempt to fetch something fail instead of downloading.
- `pypi:<pkg>==<version>`: wheels of the package and of `uv` built on the host (`pip wheel`); the image
  installs `uv` (for `uvx`) and keeps the wheels, and `uvx <pkg>==<version>` installs from them, offline
  (`UV_OFFLINE`, `UV_NO_INDEX`, `UV_FIND_LINKS`).

`package_plan` is pure (the Containerfile and the host commands); `build_package_image` runs it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE, DEFAULT_NONROOT_UID
from mcp_runtime.resources.server import package_command
from mcp_runtime.runtime.builders import Builder, BuildError, build_image, run_tool

STDIO_DIR = "/opt/mcp-stdio"
PACKAGE_LABEL = "org.mcpruntime.stdio-package"
NODE_SPEC = "node@22"
NPM_SPEC = "npm@10"
UV_SPEC = "uv"

_NPM_CONTAINERFILE = """\
ARG BASE_IMAGE={base}
FROM ${{BASE_IMAGE}}
COPY --chown=0:0 app {dir}
ENV PATH={dir}/node_modules/.bin:$PATH NPM_CONFIG_OFFLINE=true NPM_CONFIG_CACHE=/tmp/.npm \\
    NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
RUN node --version && npx --version
WORKDIR {dir}
LABEL {label}={package}
USER {uid}:{uid}
"""

_PYPI_CONTAINERFILE = """\
ARG BASE_IMAGE={base}
FROM ${{BASE_IMAGE}}
USER 0:0
COPY wheels {dir}/wheels
RUN python3 -m venv {dir}/uv \\
 && {dir}/uv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check --find-links {dir}/wheels uv \\
 && {dir}/uv/bin/uvx --version
ENV PATH={dir}/uv/bin:$PATH UV_OFFLINE=1 UV_NO_INDEX=1 UV_FIND_LINKS={dir}/wheels UV_CACHE_DIR=/tmp/.uv \\
    UV_TOOL_DIR=/tmp/.uv-tools UV_TOOL_BIN_DIR=/tmp/.uv-bin UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/bin/python3
WORKDIR {dir}
LABEL {label}={package}
USER {uid}:{uid}
"""


@dataclass(frozen=True)
class PackagePlan:
    """How to build the image of one package spec: the host commands (run in the build context, in
    order) and the Containerfile."""

    package: str
    host_commands: tuple[tuple[str, ...], ...]
    containerfile: str
    files: tuple[tuple[str, str], ...] = ()
    """(path in the context, content) written before the host commands run."""


def package_plan(package: str, *, base: str = DEFAULT_GATEWAY_IMAGE, npm: str = "npm",
                 python: str = sys.executable) -> PackagePlan:
    """The plan for `npm:<pkg>@<version>` or `pypi:<pkg>==<version>` (ValueError for anything else)."""
    command = package_command(package)  # validates the spec: a version is required
    spec = command[-1]
    values = {"base": base, "dir": STDIO_DIR, "label": PACKAGE_LABEL, "package": json.dumps(package),
              "uid": DEFAULT_NONROOT_UID}
    if package.startswith("npm:"):
        manifest = json.dumps({"name": "mcp-stdio-server", "private": True,
                               "description": f"{package}, preinstalled by mcp-runtime"})
        install = (npm, "install", "--prefix", "app", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error",
                   NODE_SPEC, NPM_SPEC, spec)
        return PackagePlan(package, (install,), _NPM_CONTAINERFILE.format(**values),
                           files=(("app/package.json", manifest + "\n"),))
    wheels = (python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", "wheels",
              spec, UV_SPEC)
    return PackagePlan(package, (wheels,), _PYPI_CONTAINERFILE.format(**values))


def build_package_image(tag: str, package: str, *, base: str = DEFAULT_GATEWAY_IMAGE, builder: Builder | None = None,
                        platform: str | None = None, stream: bool = False) -> Builder:
    """Fetch the package on the host and build `tag` from `base` with it preinstalled; returns the builder."""
    try:
        plan = package_plan(package, base=base)
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    tool = plan.host_commands[0][0]
    if shutil.which(tool) is None:
        raise BuildError(f"{tool} is not installed: building the image of {package} fetches it on this machine "
                         f"first (Debian: apt-get install {'npm' if package.startswith('npm:') else 'python3-pip'})")
    with tempfile.TemporaryDirectory(prefix="mcp-runtime-package-") as tmp:
        context = Path(tmp)
        for relative, content in plan.files:
            path = context / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        for command in plan.host_commands:
            run_tool([*command], what=f"fetching {package} ({Path(command[0]).name})", stream=stream, cwd=context)
        (context / "Containerfile").write_text(plan.containerfile)
        return build_image(tag, context, build_args={"BASE_IMAGE": base}, builder=builder, platform=platform,
                           stream=stream)
