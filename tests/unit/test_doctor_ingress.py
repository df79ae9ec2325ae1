"""`cluster doctor`'s ingress-controller check on the Deployments `cluster config --ingress traefik` renders:
it passes only when that Traefik has a ready pod (a Deployment whose image cannot be pulled serves nothing),
and finds it in whatever namespace it was installed for its IngressClass."""

from __future__ import annotations

from typing import Any

from mcp_runtime.kube.doctor import DoctorOptions, Level, _Doctor
from mcp_runtime.kube.ingress import TraefikOptions, render_traefik


class Objects:
    """The two reads the check makes (list by namespace / by labels), over a fixed set of objects."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = objects

    def list(self, kind: str, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in (label_selector or "").split(",") if term)
        return [o for o in self.objects if o["kind"] == kind
                and namespace in (None, o["metadata"].get("namespace"))
                and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]


def installed(opts: TraefikOptions, ready: int) -> list[dict[str, Any]]:
    objects = [o for o in render_traefik(opts) if o["kind"] in ("Namespace", "Deployment")]
    for obj in objects:
        if obj["kind"] == "Deployment":
            obj["status"] = {"readyReplicas": ready} if ready else {}
    return objects


def check(objects: list[dict[str, Any]], ingress_class: str = "traefik") -> tuple[Level, str, str | None]:
    doctor = _Doctor(Objects(*objects), DoctorOptions(ingress_class=ingress_class))  # type: ignore[arg-type]
    return doctor.ingress_controller()


def test_a_traefik_without_a_ready_pod_fails_with_where_to_look() -> None:
    level, detail, fix = check(installed(TraefikOptions(), ready=0))
    assert level is Level.fail
    assert detail == "Traefik traefik/traefik has no ready pod (0/1): Ingresses are not served"
    assert fix is not None and fix.startswith("kubectl -n traefik describe pods")


def test_a_ready_traefik_passes_in_the_namespace_it_was_installed_in_for_its_class() -> None:
    opts = TraefikOptions(namespace="edge", ingress_class="public")
    assert check(installed(opts, ready=1), "public") == (Level.passed, "Traefik edge/traefik runs (1/1 ready)", None)
    # Another class's Traefik, outside traefik and kube-system, is not this class's controller.
    assert check(installed(opts, ready=1), "traefik")[0] is Level.warn


def test_no_traefik_at_all_warns_with_the_install_command() -> None:
    level, detail, fix = check([])
    assert (level, detail) == (Level.warn, "no Traefik Deployment found in traefik or kube-system")
    assert fix is not None and fix.startswith("mcp-runtime cluster config --ingress traefik")
