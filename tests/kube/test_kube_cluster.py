"""Smoke tests of the REAL test cluster (tests/kube/cluster.sh): what the Kubernetes tests rely on.

Each test asserts a behaviour only a real API server, controller-manager or node gives: the API server's
structural-schema checks and pruning on a CRD, the garbage collector deleting an owned object, RBAC answering
a SubjectAccessReview, and (tier 2) a pod running, served through a Service by kube-proxy and reaching the API
server. The CRD here is a throwaway (`widgets.smoke.mcp-runtime.test`), not the project's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import free_port
from fixtures.kube_cluster import KubeCluster, KubeClusterError

GROUP = "smoke.mcp-runtime.test"


def _crd(plural: str, schema: dict[str, Any]) -> dict[str, Any]:
    kind = plural[:-1].capitalize()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": kind},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": schema}, "subresources": {"status": {}}}],
        },
    }


WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "trust": {"type": "string", "enum": ["low", "medium", "high"]},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}


def _widget(name: str, spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})


@pytest.fixture(scope="module")
def widget_crd(kube_cluster: KubeCluster) -> str:
    kube_cluster.apply(_crd("widgets", WIDGET_SCHEMA))
    kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")
    return f"widgets.{GROUP}"


def test_api_server_reports_the_built_release(kube_cluster: KubeCluster) -> None:
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.37.2"
    assert version["clientVersion"]["gitVersion"] == "v1.37.2"


def test_api_server_rejects_a_crd_whose_schema_is_not_structural(kube_cluster: KubeCluster) -> None:
    # `spec` has properties but no type: apiextensions.k8s.io/v1 requires a structural schema.
    bad = _crd("gadgets", {"type": "object", "properties": {"spec": {"properties": {"size": {"type": "integer"}}}}})
    proc = kube_cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert ("openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
            in proc.stderr)
    assert kube_cluster.get("crd", f"gadgets.{GROUP}") is None


def test_custom_resources_are_validated_and_pruned_by_the_api_server(
        kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str) -> None:
    ns = ["-n", kube_namespace]
    missing = kube_cluster.kubectl(*ns, "create", "-f", "-", input=_widget("no-image", {}), check=False)
    assert missing.returncode != 0
    assert "spec.image: Required value" in missing.stderr

    bad_enum = kube_cluster.kubectl(*ns, "create", "-f", "-", check=False,
                                    input=_widget("bad-trust", {"image": "x", "trust": "absolute"}))
    assert bad_enum.returncode != 0
    assert 'spec.trust: Unsupported value: "absolute"' in bad_enum.stderr

    # An unknown field: refused by strict field validation (kubectl's default), pruned when validation is off.
    unknown = _widget("ok", {"image": "registry.local/ok:1", "trust": "high", "unknown": 1})
    strict = kube_cluster.kubectl(*ns, "create", "-f", "-", input=unknown, check=False)
    assert strict.returncode != 0
    assert 'unknown field "spec.unknown"' in strict.stderr
    kube_cluster.kubectl(*ns, "create", "--validate=false", "-f", "-", input=unknown)
    stored = kube_cluster.get(widget_crd, "ok", kube_namespace)
    assert stored is not None
    assert stored["spec"] == {"image": "registry.local/ok:1", "trust": "high"}


def test_status_subresource_is_separate_from_spec(
        kube_cluster: KubeCluster, kube_namespace: str, widget_crd: str) -> None:
    ns = ["-n", kube_namespace]
    kube_cluster.kubectl(*ns, "create", "-f", "-", input=_widget("s", {"image": "a"}))
    # A status in a main-resource patch is ignored; through /status it is stored.
    kube_cluster.kubectl(*ns, "patch", widget_crd, "s", "--type=merge", "-p", '{"status": {"phase": "Ready"}}')
    assert "status" not in (kube_cluster.get(widget_crd, "s", kube_namespace) or {})
    kube_cluster.kubectl(*ns, "patch", widget_crd, "s", "--subresource=status", "--type=merge",
                         "-p", '{"status": {"phase": "Ready"}}')
    assert (kube_cluster.get(widget_crd, "s", kube_namespace) or {})["status"] == {"phase": "Ready"}


def _owned_configmap(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": name,
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                             "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}],
    }, "data": {"k": "v"}}


def test_garbage_collector_deletes_what_the_deleted_owner_owned(
        kube_cluster: KubeCluster, kube_namespace: str) -> None:
    ns = kube_namespace
    kube_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace=ns)
    owner = kube_cluster.get("configmap", "owner", ns)
    assert owner is not None
    kube_cluster.apply(_owned_configmap("owned", owner), namespace=ns)
    kube_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bystander"}}, namespace=ns)

    kube_cluster.kubectl("-n", ns, "delete", "configmap", "owner")  # background propagation, as a user deletes
    kube_cluster.wait_for("the garbage collector to delete the owned ConfigMap",
                          lambda: kube_cluster.get("configmap", "owned", ns) is None, timeout=90)
    assert kube_cluster.get("configmap", "bystander", ns) is not None


def test_orphan_propagation_keeps_the_dependent(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    ns = kube_namespace
    kube_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace=ns)
    owner = kube_cluster.get("configmap", "owner", ns)
    assert owner is not None
    kube_cluster.apply(_owned_configmap("kept", owner), namespace=ns)
    kube_cluster.kubectl("-n", ns, "delete", "configmap", "owner", "--cascade=orphan")
    # The garbage collector removes the owner reference instead of the object.
    kube_cluster.wait_for("the garbage collector to orphan the dependent", lambda: not (
        kube_cluster.get("configmap", "kept", ns) or {}).get("metadata", {}).get("ownerReferences"), timeout=90)
    assert kube_cluster.get("configmap", "kept", ns) is not None


def _access_review(kube_cluster: KubeCluster, user: str, namespace: str, verb: str, resource: str) -> bool:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
        "user": user, "groups": ["system:authenticated"],
        "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource},
    }}
    out = kube_cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    return bool(json.loads(out.stdout)["status"].get("allowed", False))


def test_rbac_answers_subject_access_reviews(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    ns = kube_namespace
    kube_cluster.apply(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice-reads"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]},
        namespace=ns)
    assert _access_review(kube_cluster, "alice", ns, "get", "configmaps") is True
    assert _access_review(kube_cluster, "alice", ns, "delete", "configmaps") is False
    assert _access_review(kube_cluster, "alice", ns, "get", "secrets") is False
    assert _access_review(kube_cluster, "alice", "kube-system", "get", "configmaps") is False
    assert _access_review(kube_cluster, "bob", ns, "get", "configmaps") is False


def test_the_admin_credentials_are_required(kube_cluster: KubeCluster) -> None:
    # Anonymous requests are refused: the server is not open to whoever reaches the port.
    proc = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                           "--cacert", str(kube_cluster.kubeconfig.parent / "pki" / "ca.crt"),
                           f"{kube_cluster.api_url}/api/v1/namespaces"],
                          capture_output=True, text=True, timeout=20)
    assert proc.stdout == "401"


# --- tier 2: pods -----------------------------------------------------------------------------------

def _pod(name: str, image: str, args: list[str] | None = None, labels: dict[str, str] | None = None,
         restart: str = "Always") -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main", "image": image, "imagePullPolicy": "Never",
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if args:
        container["args"] = args
    else:
        container["ports"] = [{"containerPort": 8080}]
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"restartPolicy": restart, "containers": [container], "terminationGracePeriodSeconds": 1}}


def _phase(cluster: KubeCluster, name: str, ns: str) -> str:
    pod = cluster.get("pod", name, ns) or {}
    return str(pod.get("status", {}).get("phase", ""))


def test_a_pod_runs_and_a_service_reaches_it_through_kube_proxy(
        kube_pods_cluster: KubeCluster, kube_namespace: str) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    image = cluster.tools["KUBE_TESTSERVER_IMAGE"]
    cluster.apply(
        _pod("web", image, labels={"app": "web"}),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        namespace=ns)
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=150)
    assert _phase(cluster, "web", ns) == "Running"
    service_ip = (cluster.get("service", "web", ns) or {})["spec"]["clusterIP"]

    # From the node: kube-proxy's DNAT from the ClusterIP to the pod on the CNI bridge.
    def answered() -> bool:
        proc = subprocess.run(["curl", "-sf", "--max-time", "3", f"http://{service_ip}/via-service"],
                              capture_output=True, text=True, timeout=10)
        return proc.returncode == 0 and json.loads(proc.stdout) == {"hostname": "web", "path": "/via-service"}
    cluster.wait_for(f"the Service {service_ip}:80 to answer from the pod", answered, timeout=60)

    # From another pod: pod -> Service -> pod on the same bridge, and its logs through the kubelet.
    cluster.apply(_pod("client", image, args=["get", f"http://{service_ip}/from-pod"], restart="Never"),
                  namespace=ns)
    cluster.wait_for("the client pod to finish", lambda: _phase(cluster, "client", ns) in ("Succeeded", "Failed"),
                     timeout=120)
    logs = cluster.kubectl("-n", ns, "logs", "client").stdout
    assert _phase(cluster, "client", ns) == "Succeeded", logs
    assert json.loads(logs) == {"hostname": "web", "path": "/from-pod"}


def test_a_pod_reaches_the_api_server_with_its_service_account(
        kube_pods_cluster: KubeCluster, kube_namespace: str) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    image = cluster.tools["KUBE_TESTSERVER_IMAGE"]
    cluster.apply(_pod("api-client", image, args=["get-api", f"/api/v1/namespaces/{ns}/configmaps"],
                       restart="Never"), namespace=ns)
    cluster.wait_for("the api-client pod to finish",
                     lambda: _phase(cluster, "api-client", ns) in ("Succeeded", "Failed"), timeout=120)
    logs = cluster.kubectl("-n", ns, "logs", "api-client").stdout
    # Through the `kubernetes` Service, TLS-verified with the pod's CA, authenticated by its token, and
    # refused by RBAC: the default ServiceAccount may not list ConfigMaps.
    assert _phase(cluster, "api-client", ns) == "Failed", logs
    # The body on stdout and "HTTP 403" on stderr: the log interleaves the two streams in either order.
    lines = logs.splitlines()
    assert "HTTP 403" in lines, logs
    status = json.loads(next(line for line in lines if line.startswith("{")))
    assert status["code"] == 403
    assert f"system:serviceaccount:{ns}:default" in status["message"]


def test_containerd_pulls_from_a_local_plain_http_registry(
        kube_pods_cluster: KubeCluster, kube_namespace: str, tmp_path: Path) -> None:
    # The CNCF distribution registry (Debian's docker-registry) on loopback, the image pushed by skopeo, and
    # a pod that must pull it (imagePullPolicy Always): the path the platform's bundled registry takes.
    cluster, ns = kube_pods_cluster, kube_namespace
    registry_bin, skopeo = shutil.which("docker-registry"), shutil.which("skopeo")
    assert registry_bin and skopeo, "apt-get install docker-registry skopeo (.ci/apt-packages)"
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    with (tmp_path / "registry.log").open("w") as log:
        registry = subprocess.Popen([registry_bin, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        image = f"127.0.0.1:{port}/smoke/testserver:1"
        # An image of its own (the binary at another path: another image ID). Pulling the preloaded test
        # image's ID under this name would make the kubelet record a pull for that ID with only this name's
        # credentials, and from then on refuse the preloaded name with `imagePullPolicy: Never`
        # (ErrImageNeverPull: the kubelet's image pull credential verification, KEP-2535).
        archive = tmp_path / "pushed.tar"
        binary = f"{cluster.tools['KUBE_BIN']}/kube-testserver"
        subprocess.run(["bash", str(Path(__file__).parent / "oci-image.sh"), str(archive), image,
                        "/pushed/kube-testserver", f"{binary}:/pushed/kube-testserver"],
                       check=True, capture_output=True, timeout=60)
        def pushed() -> bool:
            return subprocess.run(
                [skopeo, "copy", "--dest-tls-verify=false", f"oci-archive:{archive}", f"docker://{image}"],
                capture_output=True, timeout=60).returncode == 0
        cluster.wait_for(f"skopeo to push {image}", pushed, timeout=30, interval=1)
        pod = _pod("pulled", image, labels={"app": "pulled"})
        pod["spec"]["containers"][0]["imagePullPolicy"] = "Always"
        cluster.apply(pod, namespace=ns)
        cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/pulled", "--timeout=120s", timeout=150)
        events = json.loads(cluster.kubectl("-n", ns, "get", "events", "--field-selector",
                                            "involvedObject.name=pulled", "-o", "json").stdout)["items"]
        assert any(e["message"].startswith(f'Successfully pulled image "{image}"') for e in events), events
    finally:
        registry.terminate()
        registry.wait(timeout=10)


def test_real_helm_installs_and_uninstalls_a_chart(kube_cluster: KubeCluster, kube_namespace: str,
                                                     tmp_path: Path) -> None:
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n")
    assert "v4.3.2" in kube_cluster.helm("version", "--short").stdout
    kube_cluster.helm("lint", str(chart))
    kube_cluster.helm("install", "smoke", str(chart), "-n", kube_namespace, "--set", "greeting=hi", "--wait")
    releases = json.loads(kube_cluster.helm("list", "-n", kube_namespace, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("smoke", "deployed")]
    assert (kube_cluster.get("configmap", "smoke-greeting", kube_namespace) or {})["data"] == {"greeting": "hi"}
    kube_cluster.helm("uninstall", "smoke", "-n", kube_namespace, "--wait")
    assert kube_cluster.get("configmap", "smoke-greeting", kube_namespace) is None


def test_kubectl_failures_name_the_command(kube_cluster: KubeCluster) -> None:
    with pytest.raises(KubeClusterError, match="kubectl get configmap does-not-exist"):
        kube_cluster.kubectl("get", "configmap", "does-not-exist", "-n", "default")
