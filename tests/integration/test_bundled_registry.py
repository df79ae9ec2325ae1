"""The bundled distribution registry: starts on a loopback port, comes back when it dies, stops cleanly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from fixtures.servers import free_port
from mcp_runtime.runtime.registry import BundledRegistry, RegistryError


def test_serves_restarts_and_stops(tmp_path: Path) -> None:
    registry = BundledRegistry(tmp_path, address=f"127.0.0.1:{free_port()}")
    registry.start_sync()
    try:
        assert httpx.get(f"{registry.url}/v2/_catalog").json() == {"repositories": []}
        first = registry.process
        assert first is not None
        os.killpg(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not (registry.restarts == 1 and registry.healthy()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert registry.restarts == 1 and registry.healthy()
        assert registry.process is not None and registry.process.pid != first.pid
    finally:
        registry.stop_sync()
    assert not registry.healthy()
    assert (tmp_path / "registry" / "config.yml").read_text().count(str(tmp_path / "registry" / "storage")) == 1


def test_a_missing_binary_names_the_package(tmp_path: Path) -> None:
    registry = BundledRegistry(tmp_path, binary="no-such-docker-registry")
    with pytest.raises(RegistryError, match="Debian package docker-registry"):
        registry.start_sync()
