"""What `mcp-runtime up --runtime podman` adds to the one-process platform, in one object.

    stack = PodmanStack(data_dir)                 # or registry_address=..., external_registry=...
    stack.prepare(echo=print)                     # podman present; base + platform images (cached)
    settings.registry_host = stack.registry_host
    embedded = EmbeddedPlatform(settings, public_url=url, runtime_factory=stack.runtime_factory)
    stack.attach(embedded.platform)               # policies, JWKS, policy pushes
    stack.start()                                 # the bundled registry (supervised), before uvicorn runs
    try: uvicorn.Server(config).run()             # EmbeddedPlatform's lifespan deploys stored servers
    finally: stack.stop()

The platform image build needs this package's source checkout (it builds a wheel); with an installed
wheel and no checkout, build it once elsewhere and `podman load` it, or pass `gateway_image`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_runtime.manifests.images import DEFAULT_REGISTRY_ADDRESS
from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE
from mcp_runtime.platform.core import Platform
from mcp_runtime.runtime.base_image import (
    PYTHON_BASE_IMAGE,
    BaseImageSpec,
    build_base_image,
    build_platform_image,
    image_exists,
)
from mcp_runtime.runtime.builders import Builder, BuildError
from mcp_runtime.runtime.podman import PodmanRuntime, PodmanRuntimeError
from mcp_runtime.runtime.process import StatusCallback
from mcp_runtime.runtime.registry import BundledRegistry


class PodmanStack:
    """The bundled registry, the sidecar image and the podman runtime for one `up`."""

    def __init__(self, data_dir: Path, *, registry_address: str = DEFAULT_REGISTRY_ADDRESS,
                 external_registry: str | None = None, gateway_image: str = DEFAULT_GATEWAY_IMAGE,
                 ingest_url: str | None = None, ingest_api_key: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.registry = None if external_registry else BundledRegistry(self.data_dir, address=registry_address)
        self.registry_host = external_registry or registry_address
        self.gateway_image = gateway_image
        self.ingest_url, self.ingest_api_key = ingest_url, ingest_api_key
        self.runtime: PodmanRuntime | None = None

    def prepare(self, echo: Callable[[str], Any] = lambda _: None) -> None:
        """Check podman, and build what is missing: the Debian + Python base (mmdebstrap, ~1.5 min once)
        and the platform image the sidecars run (rebuilt when this package's sources changed)."""
        podman = shutil.which("podman")
        if podman is None:
            raise PodmanRuntimeError("podman is not installed: apt-get install podman runc catatonit "
                                     "docker-registry (see docs/images.md)")
        builder = Builder("podman", podman)
        try:
            if self.gateway_image == DEFAULT_GATEWAY_IMAGE:
                if not image_exists(PYTHON_BASE_IMAGE, builder):
                    echo(f"building {PYTHON_BASE_IMAGE} with mmdebstrap (once; about a minute and a half)")
                    started = time.monotonic()
                    build_base_image(BaseImageSpec(name=PYTHON_BASE_IMAGE, python=True), builder=builder)
                    echo(f"built {PYTHON_BASE_IMAGE} in {time.monotonic() - started:.0f}s")
                if build_platform_image(self.gateway_image, base=PYTHON_BASE_IMAGE, builder=builder):
                    echo(f"built {self.gateway_image} (the gateway sidecar image)")
            elif not image_exists(self.gateway_image, builder):
                raise PodmanRuntimeError(f"gateway image {self.gateway_image} is not in podman's storage")
        except BuildError as exc:
            raise PodmanRuntimeError(str(exc)) from None

    def runtime_factory(self, on_status: StatusCallback) -> PodmanRuntime:
        """For `EmbeddedPlatform(runtime_factory=...)`."""
        self.runtime = PodmanRuntime(self.data_dir, on_status=on_status, registry_host=self.registry_host,
                                     gateway_image=self.gateway_image, ingest_url=self.ingest_url,
                                     ingest_api_key=self.ingest_api_key)
        return self.runtime

    def attach(self, platform: Platform) -> None:
        """Wire the runtime to the control plane: compiled policies, signing keys, policy pushes, and the
        OAuth issuer and public URL every sidecar names in its protected resource metadata."""
        if self.runtime is None:
            raise RuntimeError("create the runtime first (EmbeddedPlatform(runtime_factory=stack.runtime_factory))")
        oauth = (platform.oauth.servers_url, platform.oauth.issuer) if platform.oauth is not None else None
        self.runtime.attach(policy_for=platform.policies.document, jwks=platform.keyring.jwks,
                            subscribe=lambda callback: platform.publisher.subscribe(callback, replay=False),
                            oauth=oauth)

    def start(self) -> None:
        if self.registry is not None:
            self.registry.start_sync()

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.stop_sync()
