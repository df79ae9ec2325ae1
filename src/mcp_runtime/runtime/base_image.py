"""Images without any image registry: a Debian base made with mmdebstrap, and the platform image on top.

`build_base_image` makes a Debian rootfs with `mmdebstrap` (only Debian mirrors are needed) and imports it
with `podman import` / `docker import`. `build_platform_image` builds the image the gateway sidecar runs:
that base + a virtualenv with this package installed from wheels built on the host (`pip wheel`, which
uses the host's package index configuration, so no index is needed inside the build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE, DEFAULT_NONROOT_UID
from mcp_runtime.runtime.builders import Builder, BuildError, build_image, find_builder, run_tool

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "MCP_RUNTIME_DEBIAN_MIRROR"
BASE_IMAGE = "localhost/mcp-runtime-base:bookworm"
PYTHON_BASE_IMAGE = "localhost/mcp-runtime-python:bookworm"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_PACKAGES = ("ca-certificates",)
PYTHON_PACKAGES = ("python3", "python3-venv")
SOURCE_LABEL = "org.mcpruntime.source-digest"


@dataclass(frozen=True)
class BaseImageSpec:
    name: str
    python: bool = False
    suite: str = DEFAULT_SUITE
    mirror: str | None = None
    extra_packages: tuple[str, ...] = ()

    @property
    def packages(self) -> list[str]:
        return [*BASE_PACKAGES, *(PYTHON_PACKAGES if self.python else ()), *self.extra_packages]


def default_base_name(python: bool) -> str:
    return PYTHON_BASE_IMAGE if python else BASE_IMAGE


def _importer(builder: Builder | None) -> Builder:
    builder = builder or find_builder()
    if builder.name == "buildah":  # buildah has no import; podman shares its storage
        podman = shutil.which("podman")
        if podman is None:
            raise BuildError("importing a rootfs needs podman or docker (buildah cannot import a tarball)")
        return Builder("podman", podman)
    return builder


def image_exists(name: str, builder: Builder | None = None) -> bool:
    from mcp_runtime.runtime.builders import local_image_exists

    return local_image_exists(name, builder)


def build_base_image(spec: BaseImageSpec, *, builder: Builder | None = None, stream: bool = False) -> str:
    """mmdebstrap a minimal Debian (+ Python) rootfs and import it as `spec.name`; returns the name."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise BuildError("mmdebstrap is not installed (Debian: apt-get install mmdebstrap); or, with access to "
                         "an image registry, use FROM docker.io/library/python:3.11-slim instead")
    importer = _importer(builder)
    mirror = spec.mirror or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
    with tempfile.TemporaryDirectory(prefix="mcp-runtime-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        cmd = [mmdebstrap, "--variant=minbase", f"--include={','.join(spec.packages)}",
               "--aptopt=Acquire::Retries \"3\"",
               "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
               "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
               spec.suite, str(rootfs), mirror]
        run_tool(cmd, what="mmdebstrap", stream=stream)
        changes = [f"ENV PATH={PATH_ENV}", "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']
        import_cmd = [importer.path, "import"]
        for change in changes:
            import_cmd += ["--change", change]
        run_tool([*import_cmd, str(rootfs), spec.name], what=f"{importer.name} import")
    return spec.name


PLATFORM_CONTAINERFILE = """\
ARG BASE_IMAGE={base}
FROM ${{BASE_IMAGE}}
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/mcp-runtime \\
 && /opt/mcp-runtime/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \\
      --find-links /tmp/wheels 'mcp-runtime[kube]' \\
 && rm -rf /tmp/wheels \\
 && ln -s /opt/mcp-runtime/bin/mcp-runtime /usr/local/bin/mcp-runtime
ENV PATH=/opt/mcp-runtime/bin:{path} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
LABEL {label}={digest}
USER {uid}:{uid}
ENTRYPOINT ["mcp-runtime"]
"""


def source_root() -> Path:
    """The checkout this package runs from (needed to build its wheel)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "pyproject.toml").is_file():
        raise BuildError(f"no pyproject.toml above {Path(__file__).parent}: building the platform image needs a "
                         "source checkout of mcp-runtime")
    return root


def source_digest(root: Path) -> str:
    """A digest of the package sources: the platform image is rebuilt only when they change."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([root / "pyproject.toml", *(root / "src").rglob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def image_label(name: str, label: str, builder: Builder | None = None) -> str | None:
    builder = builder or find_builder()
    fmt = "{{ index .Config.Labels \"" + label + "\" }}"
    proc = subprocess.run([builder.path, "image", "inspect", "--format", fmt, name], capture_output=True,
                          text=True, check=False)
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value and value != "<no value>" else None


def build_platform_image(name: str = DEFAULT_GATEWAY_IMAGE, *, base: str = PYTHON_BASE_IMAGE,
                         builder: Builder | None = None, force: bool = False, stream: bool = False) -> bool:
    """Build the platform image (`mcp-runtime` on `base`) unless one from the same sources exists.

    Returns True when it built. Wheels come from `pip wheel` on the host, with the host's index settings.
    With the `kube` extra: the same image runs the operator (kopf) and the platform API on Kubernetes.
    """
    builder = builder or find_builder()
    root = source_root()
    digest = source_digest(root)
    if not force and image_label(name, SOURCE_LABEL, builder) == digest:
        return False
    previous = image_id(name, builder)
    with tempfile.TemporaryDirectory(prefix="mcp-runtime-image-") as tmp:
        context = Path(tmp)
        wheels = context / "wheels"
        run_tool([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                  "--wheel-dir", str(wheels), f"{root}[kube]"], what="pip wheel", stream=stream)
        (context / "Containerfile").write_text(PLATFORM_CONTAINERFILE.format(
            base=base, path=PATH_ENV, label=SOURCE_LABEL, digest=digest, uid=DEFAULT_NONROOT_UID))
        build_image(name, context, builder=builder, build_args={"BASE_IMAGE": base}, stream=stream)
    if previous and previous != image_id(name, builder):
        # the superseded build is now untagged: remove it (fails harmlessly if a container still uses it)
        subprocess.run([builder.path, "rmi", previous], capture_output=True, check=False)
    return True


def image_id(name: str, builder: Builder) -> str | None:
    proc = subprocess.run([builder.path, "image", "inspect", "--format", "{{.Id}}", name], capture_output=True,
                          text=True, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None
