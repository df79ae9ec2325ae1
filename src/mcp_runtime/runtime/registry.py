"""The bundled image registry: the CNCF distribution registry (`docker-registry`), run and supervised here.

`mcp-runtime up --runtime podman` starts one on 127.0.0.1 (plain HTTP, loopback only) with its storage in
the platform's data directory; `podman kube play` pulls app images from it and `registry push` pushes to
it. Access control is the platform's (`POST /api/v1/registry/authorize`) because the registry listens on
loopback only: on one machine, whoever can reach it can already run podman.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mcp_runtime.manifests.images import DEFAULT_REGISTRY_ADDRESS

log = logging.getLogger(__name__)

REGISTRY_BINARY = "docker-registry"
READY_TIMEOUT = 20.0
BACKOFF_MAX = 30.0


class RegistryError(RuntimeError):
    """The bundled registry cannot start; the message says what is missing."""


def registry_config(storage_dir: Path, address: str) -> str:
    """The distribution registry's config YAML: filesystem storage, deletes on, no auth, loopback."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  fields:\n    service: mcp-runtime-registry\n"
        "storage:\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        f"  filesystem:\n    rootdirectory: {storage_dir}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: {address}\n"
        "  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )


@dataclass
class BundledRegistry:
    """Runs `docker-registry serve <config>` and restarts it when it dies, until `stop()`.

    `start_sync()` / `stop_sync()` (or `await start()` / `await stop()` from asyncio); a daemon thread
    restarts it if it dies. `address` is `host:port`, what image references start with.
    """

    data_dir: Path
    address: str = DEFAULT_REGISTRY_ADDRESS
    binary: str = REGISTRY_BINARY
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _stopping: bool = field(default=False, init=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "registry" / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "registry" / "registry.log"

    def _spawn(self) -> subprocess.Popen[bytes]:
        path = shutil.which(self.binary)
        if path is None:
            raise RegistryError(
                f"{self.binary!r} is not installed: the bundled registry is the CNCF distribution registry "
                "(Debian package docker-registry); install it or point the platform at an external registry "
                "with `mcp-runtime registry provision --url`"
            )
        storage = self.data_dir / "registry" / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(registry_config(storage, self.address))
        with self.log_path.open("ab") as out:
            return subprocess.Popen([path, "serve", str(self.config_path)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RegistryError(f"the registry exited with code {self.process.returncode}: "
                                    f"{self._log_tail()}")
            if self.healthy(0.5):
                return
            time.sleep(0.1)
        raise RegistryError(f"the registry does not answer on {self.url}/v2/ after {READY_TIMEOUT:.0f}s: "
                            f"{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    # --- lifecycle ----------------------------------------------------------------------------------
    def start_sync(self) -> None:
        """Start it, wait until `/v2/` answers (RegistryError when it cannot), then supervise it from a
        daemon thread: whenever it exits it is restarted with capped backoff, until `stop_sync()`."""
        self._stopping = False
        self._wake.clear()
        self.process = self._spawn()
        try:
            self._wait_ready()
        except RegistryError:
            self.stop_sync()
            raise
        self._thread = threading.Thread(target=self._supervise, name="bundled-registry", daemon=True)
        self._thread.start()

    def stop_sync(self, grace: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=grace)
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            process = self.process
            if process is None:
                return
            if process.poll() is None:
                self._wake.wait(0.5)
                continue
            if self._stopping:
                return
            self.restarts += 1
            log.warning("bundled registry exited with code %s; restarting in %.1fs (%s)", process.returncode,
                        backoff, self._log_tail())
            if self._wake.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
            try:
                self.process = self._spawn()
            except (RegistryError, OSError):
                log.exception("cannot restart the bundled registry")
