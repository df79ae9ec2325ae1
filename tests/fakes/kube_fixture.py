"""pytest fixture: a running FAKE Kubernetes API server and a kubeconfig pointing at it ($KUBECONFIG)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer


@pytest.fixture
def fake_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeApiServer]:
    with FakeKubeApiServer() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        fake.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield fake
