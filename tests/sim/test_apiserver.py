"""End-to-end tests of the kube-apiserver stand-in with the real kubectl and the real kubernetes
Python client. One server (node-monitor-grace-period 3s) and a fake kubelet for two nodes are
shared by the module; tests use their own namespaces."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from test_apiserver_support import ApiServer, FakeKubelet, b64, make_pki, wait_for

NODES = ["node-1", "node-2"]
EVICTION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def apiserver(pki: Path, tmp_path_factory: pytest.TempPathFactory):
    server = ApiServer(pki, tmp_path_factory.mktemp("server") / "state").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def core(apiserver: ApiServer) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(apiserver.client()[1])


@pytest.fixture(scope="module")
def apps(apiserver: ApiServer) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(apiserver.client()[1])


@pytest.fixture(scope="module")
def kubelet(apiserver: ApiServer):
    kl = FakeKubelet(apiserver, NODES).start()
    yield kl
    kl.stop()
    assert not kl.errors, kl.errors


def make_namespace(core, name: str) -> str:
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def deployment(name: str, replicas: int, labels: dict[str, str]) -> k8s.V1Deployment:
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="app", image="nginx:1.27")]),
            ),
        ),
    )


def ready_replicas(apps, ns: str, name: str) -> int:
    return apps.read_namespaced_deployment(name, ns).status.ready_replicas or 0


# --- unauthenticated surface, discovery -----------------------------------------------------


def test_anonymous_health_version_and_401(apiserver: ApiServer, core):
    assert apiserver.raw("GET", "/healthz") == (200, "ok")
    assert apiserver.raw("GET", "/readyz") == (200, "ok")
    code, version = apiserver.raw("GET", "/version")
    assert code == 200
    assert (version["gitVersion"], version["major"], version["minor"]) == ("v1.36.2-sim", "1", "36")
    code, status = apiserver.raw("GET", "/api/v1/namespaces")
    assert code == 401
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Unauthorized", 401)
    assert apiserver.raw("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")[0] == 404
    core.create_namespaced_config_map(
        "kube-public",
        k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="cluster-info"), data={"kubeconfig": "x"}),
    )
    code, cm = apiserver.raw("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert code == 200 and cm["data"] == {"kubeconfig": "x"}
    # anonymous may read only that one object
    assert apiserver.raw("GET", "/api/v1/namespaces/kube-public/configmaps")[0] == 401


def test_discovery(apiserver: ApiServer):
    out = apiserver.kubectl("api-resources", "-o", "name").stdout.split()
    for name in (
        "pods",
        "nodes",
        "deployments.apps",
        "leases.coordination.k8s.io",
        "poddisruptionbudgets.policy",
        "certificatesigningrequests.certificates.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "endpointslices.discovery.k8s.io",
    ):
        assert name in out
    code, doc = apiserver.raw(
        "GET", "/api/v1", cert=(str(apiserver.pki / "admin.crt"), str(apiserver.pki / "admin.key"))
    )
    assert code == 200
    eviction = next(r for r in doc["resources"] if r["name"] == "pods/eviction")
    assert (eviction["group"], eviction["version"], eviction["kind"]) == (
        "policy",
        "v1",
        "Eviction",
    )
    assert "v1.36.2-sim" in apiserver.kubectl("version").stdout


# --- nodes ----------------------------------------------------------------------------------


def test_nodes_ready_cordon_label_taint(apiserver: ApiServer, kubelet, core):
    lines = apiserver.kubectl("get", "nodes", "--no-headers").stdout.splitlines()
    status = {line.split()[0]: line.split()[1] for line in lines}
    assert status == {"node-1": "Ready", "node-2": "Ready"}

    apiserver.kubectl("cordon", "node-1")
    assert core.read_node("node-1").spec.unschedulable is True
    assert "Ready,SchedulingDisabled" in apiserver.kubectl("get", "node", "node-1").stdout
    apiserver.kubectl("uncordon", "node-1")
    assert not core.read_node("node-1").spec.unschedulable

    apiserver.kubectl("label", "node", "node-2", "tier=edge")
    assert core.read_node("node-2").metadata.labels["tier"] == "edge"
    assert apiserver.kubectl("get", "nodes", "-l", "tier=edge", "-o", "name").stdout.split() == [
        "node/node-2"
    ]
    apiserver.kubectl("label", "node", "node-2", "tier-")
    assert "tier" not in core.read_node("node-2").metadata.labels

    apiserver.kubectl("taint", "node", "node-2", "dedicated=infra:NoSchedule")
    apiserver.kubectl("taint", "node", "node-2", "other=x:PreferNoSchedule")
    taints = {(t.key, t.value, t.effect) for t in core.read_node("node-2").spec.taints}
    assert taints == {("dedicated", "infra", "NoSchedule"), ("other", "x", "PreferNoSchedule")}
    apiserver.kubectl("taint", "node", "node-2", "dedicated-")
    taints = {(t.key, t.effect) for t in core.read_node("node-2").spec.taints or []}
    assert taints == {("other", "PreferNoSchedule")}
    apiserver.kubectl("taint", "node", "node-2", "other-")
    assert not core.read_node("node-2").spec.taints

    wide = apiserver.kubectl("get", "nodes", "-o", "wide").stdout
    assert "INTERNAL-IP" in wide and "10.0.0.10" in wide and "v1.36.2-sim" in wide


# --- workloads ------------------------------------------------------------------------------


def test_deployment_scheduled_ready_and_listed(apiserver: ApiServer, kubelet, core, apps):
    ns = make_namespace(core, "web")
    apps.create_namespaced_deployment(ns, deployment("web", 3, {"app": "web"}))
    apiserver.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=20s")
    assert ready_replicas(apps, ns, "web") == 3
    pods = core.list_namespaced_pod(ns, label_selector="app=web").items
    assert len(pods) == 3
    assert all(p.status.phase == "Running" and p.spec.node_name in NODES for p in pods)
    assert {p.spec.node_name for p in pods} == set(NODES)  # spread by fewest pods
    rs = apps.list_namespaced_replica_set(ns).items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].kind == "Deployment"
    assert all(p.metadata.owner_references[0].name == rs[0].metadata.name for p in pods)

    wide = apiserver.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:6] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP"]
    assert "NODE" in wide[0]
    assert len(wide) == 4 and all("1/1" in row and "Running" in row for row in wide[1:])

    on_node1 = [p.metadata.name for p in pods if p.spec.node_name == "node-1"]
    listed = apiserver.kubectl(
        "get", "pods", "-n", ns, "--field-selector", "spec.nodeName=node-1", "-o", "name"
    ).stdout.split()
    assert sorted(listed) == sorted(f"pod/{n}" for n in on_node1)
    not_listed = apiserver.kubectl(
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName!=node-1,metadata.namespace=web",
        "-o",
        "name",
    ).stdout.split()
    assert len(not_listed) == 3 - len(on_node1)
    deploy_row = apiserver.kubectl("get", "deploy", "web", "-n", ns, "--no-headers").stdout
    assert deploy_row.split()[:4] == ["web", "3/3", "3", "3"]
    apiserver.kubectl("wait", "--for=condition=Available", "deploy/web", "-n", ns, "--timeout=10s")

    described = apiserver.kubectl("describe", "pod", pods[0].metadata.name, "-n", ns).stdout
    assert f"Successfully assigned {ns}/{pods[0].metadata.name} to " in described
    apiserver.kubectl("expose", "deploy/web", "-n", ns, "--port=80", "--target-port=8080")
    endpoints = wait_for(
        lambda: core.read_namespaced_endpoints("web", ns).subsets, message="endpoints"
    )
    assert sorted(a.ip for a in endpoints[0].addresses) == sorted(p.status.pod_ip for p in pods)
    assert [p.port for p in endpoints[0].ports] == [8080]

    apiserver.kubectl("scale", "deploy/web", "-n", ns, "--replicas=1")
    wait_for(
        lambda: (
            len(
                [p for p in core.list_namespaced_pod(ns).items if not p.metadata.deletion_timestamp]
            )
            == 1
        ),
        message="scale down",
    )
    apps.delete_namespaced_deployment("web", ns)
    wait_for(
        lambda: (
            not core.list_namespaced_pod(ns).items
            and not apps.list_namespaced_replica_set(ns).items
        ),
        message="cascading delete",
    )


def test_eviction_honours_pdb(apiserver: ApiServer, kubelet, core, apps):
    ns = make_namespace(core, "evict")
    apps.create_namespaced_deployment(ns, deployment("db", 3, {"app": "db"}))
    wait_for(lambda: ready_replicas(apps, ns, "db") == 3, message="db ready")
    policy = k8s.PolicyV1Api(core.api_client)
    policy.create_namespaced_pod_disruption_budget(
        ns,
        k8s.V1PodDisruptionBudget(
            metadata=k8s.V1ObjectMeta(name="db"),
            spec=k8s.V1PodDisruptionBudgetSpec(
                min_available=3, selector=k8s.V1LabelSelector(match_labels={"app": "db"})
            ),
        ),
    )
    victim = core.list_namespaced_pod(ns).items[0].metadata.name
    eviction = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=victim, namespace=ns))
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_pod_eviction(victim, ns, eviction)
    assert err.value.status == 429
    status = json.loads(err.value.body)
    assert status["message"] == EVICTION_MESSAGE and status["reason"] == "TooManyRequests"
    assert "needs 3 healthy pods and has 3 currently" in status["details"]["causes"][0]["message"]
    pdb = wait_for(
        lambda: policy.read_namespaced_pod_disruption_budget("db", ns).status, message="pdb status"
    )
    assert (
        pdb.current_healthy,
        pdb.desired_healthy,
        pdb.disruptions_allowed,
        pdb.expected_pods,
    ) == (3, 3, 0, 3)

    policy.patch_namespaced_pod_disruption_budget("db", ns, {"spec": {"minAvailable": 2}})
    originals = [p.metadata.name for p in core.list_namespaced_pod(ns).items]
    kubelet.paused = True  # the evicted pod stays Terminating, its replacement never gets ready
    try:
        core.create_namespaced_pod_eviction(victim, ns, eviction)
        assert core.read_namespaced_pod(victim, ns).metadata.deletion_timestamp is not None
        second = next(name for name in originals if name != victim)
        with pytest.raises(k8s.ApiException) as err:
            core.create_namespaced_pod_eviction(
                second, ns, k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=second, namespace=ns))
            )
        assert err.value.status == 429
        assert "needs 2 healthy pods and has 2 currently" in err.value.body
    finally:
        kubelet.paused = False
    wait_for(
        lambda: victim not in [p.metadata.name for p in core.list_namespaced_pod(ns).items],
        message="evicted pod removed by the kubelet",
    )
    wait_for(lambda: ready_replicas(apps, ns, "db") == 3, message="replacement ready")
    core.delete_namespace(ns)


def test_kubectl_drain(apiserver: ApiServer, kubelet, core, apps):
    ns = make_namespace(core, "drain")
    apps.create_namespaced_deployment(ns, deployment("api", 4, {"app": "api"}))
    wait_for(lambda: ready_replicas(apps, ns, "api") == 4, message="api ready")
    k8s.PolicyV1Api(core.api_client).create_namespaced_pod_disruption_budget(
        ns,
        k8s.V1PodDisruptionBudget(
            metadata=k8s.V1ObjectMeta(name="api"),
            spec=k8s.V1PodDisruptionBudgetSpec(
                max_unavailable=1, selector=k8s.V1LabelSelector(match_labels={"app": "api"})
            ),
        ),
    )
    labels = {"app": "agent"}
    apps.create_namespaced_daemon_set(
        ns,
        k8s.V1DaemonSet(
            metadata=k8s.V1ObjectMeta(name="agent"),
            spec=k8s.V1DaemonSetSpec(
                selector=k8s.V1LabelSelector(match_labels=labels),
                template=k8s.V1PodTemplateSpec(
                    metadata=k8s.V1ObjectMeta(labels=labels),
                    spec=k8s.V1PodSpec(
                        containers=[k8s.V1Container(name="agent", image="agent:1")],
                        volumes=[k8s.V1Volume(name="tmp", empty_dir={})],
                    ),
                ),
            ),
        ),
    )
    wait_for(
        lambda: (apps.read_namespaced_daemon_set("agent", ns).status.number_ready or 0) == 2,
        message="daemonset ready",
    )
    before = [p for p in core.list_namespaced_pod(ns).items if p.spec.node_name == "node-1"]
    assert len(before) >= 2
    try:
        out = apiserver.kubectl(
            "drain",
            "node-1",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=40s",
            timeout=60,
        )
        assert "node/node-1 drained" in out.stdout
        assert core.read_node("node-1").spec.unschedulable is True
        assert "ignoring DaemonSet-managed Pods" in out.stderr
        left = [
            p.metadata.labels["app"]
            for p in core.list_namespaced_pod(ns).items
            if p.spec.node_name == "node-1"
        ]
        assert left == ["agent"]  # the DaemonSet pod stays, as with a real drain
        wait_for(lambda: ready_replicas(apps, ns, "api") == 4, message="recreated elsewhere")
        api_nodes = {
            p.spec.node_name for p in core.list_namespaced_pod(ns, label_selector="app=api").items
        }
        assert api_nodes == {"node-2"}
    finally:
        apiserver.kubectl("uncordon", "node-1")
    core.delete_namespace(ns)


MANIFEST = """
apiVersion: v1
kind: Namespace
metadata:
  name: kube-cni
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cni-config
  namespace: kube-cni
data:
  net-conf.json: '{"Network": "10.244.0.0/16"}'
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cni
  namespace: kube-cni
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cni
rules:
- apiGroups: [""]
  resources: ["nodes", "pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cni
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cni}
subjects:
- {kind: ServiceAccount, name: cni, namespace: kube-cni}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cni
  namespace: kube-cni
  labels: {app: cni}
spec:
  selector:
    matchLabels: {app: cni}
  template:
    metadata:
      labels: {app: cni}
    spec:
      serviceAccountName: cni
      hostNetwork: true
      tolerations:
      - {operator: Exists, effect: NoSchedule}
      containers:
      - name: cni
        image: example.org/cni:IMAGE_TAG
        env:
        - {name: MODE, value: vxlan}
        resources:
          requests: {cpu: 50m, memory: 50Mi}
"""


def test_kubectl_apply_multidoc_twice(apiserver: ApiServer, kubelet, core, tmp_path: Path):
    path = tmp_path / "cni.yaml"
    path.write_text(MANIFEST.replace("IMAGE_TAG", "v1"))
    first = apiserver.kubectl("apply", "-f", str(path)).stdout.splitlines()
    assert len(first) == 6 and all(line.endswith(" created") for line in first), first
    second = apiserver.kubectl("apply", "-f", str(path)).stdout.splitlines()
    assert len(second) == 6 and all(line.endswith(" unchanged") for line in second), second
    apiserver.kubectl("rollout", "status", "ds/cni", "-n", "kube-cni", "--timeout=20s")
    pods = core.list_namespaced_pod("kube-cni").items
    assert sorted(p.spec.node_name for p in pods) == NODES

    path.write_text(MANIFEST.replace("IMAGE_TAG", "v2").replace("vxlan", "host-gw"))
    third = apiserver.kubectl("apply", "-f", str(path)).stdout
    assert "daemonset.apps/cni configured" in third
    assert "configmap/cni-config unchanged" in third
    apiserver.kubectl("rollout", "status", "ds/cni", "-n", "kube-cni", "--timeout=20s")
    pods = core.list_namespaced_pod("kube-cni").items
    assert sorted(p.spec.node_name for p in pods if not p.metadata.deletion_timestamp) == NODES
    images = {p.spec.containers[0].image for p in pods if not p.metadata.deletion_timestamp}
    assert images == {"example.org/cni:v2"}
    env = pods[0].spec.containers[0].env
    assert [(e.name, e.value) for e in env] == [("MODE", "host-gw")]
    # DaemonSet pods tolerate unschedulable nodes and ignore cordons
    apiserver.kubectl("delete", "-f", str(path), "--wait=true", "--timeout=20s")
    wait_for(
        lambda: not [n for n in core.list_namespace().items if n.metadata.name == "kube-cni"],
        message="namespace deleted",
    )


# --- node lifecycle -------------------------------------------------------------------------


def test_node_without_heartbeat_turns_unknown(apiserver: ApiServer, kubelet, core):
    kl = FakeKubelet(apiserver, ["node-lost"]).start()
    try:
        core.create_namespaced_pod(
            "default",
            k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name="pinned"),
                spec=k8s.V1PodSpec(
                    node_name="node-lost",
                    containers=[k8s.V1Container(name="c", image="busybox:1.36")],
                ),
            ),
        )
        wait_for(
            lambda: core.read_namespaced_pod("pinned", "default").status.phase == "Running",
            message="pinned pod running",
        )
        assert "node-lost   Ready" in apiserver.kubectl("get", "nodes").stdout
        kl.stopped.add("node-lost")
        stopped_at = time.time()

        def ready_status() -> str:
            cond = next(
                c for c in core.read_node("node-lost").status.conditions if c.type == "Ready"
            )
            return cond.status if cond.status == "Unknown" else ""

        wait_for(ready_status, timeout=10, message="node Unknown")
        assert time.time() - stopped_at >= 2.0  # not before the 3s grace period (minus a tick)
        node = core.read_node("node-lost")
        cond = next(c for c in node.status.conditions if c.type == "Ready")
        assert cond.reason == "NodeStatusUnknown"
        assert {(t.key, t.effect) for t in node.spec.taints} >= {
            ("node.kubernetes.io/unreachable", "NoExecute")
        }
        assert "node-lost   NotReady" in apiserver.kubectl("get", "nodes").stdout
        pod = core.read_namespaced_pod("pinned", "default")
        ready = next(c for c in pod.status.conditions if c.type == "Ready")
        assert ready.status == "False"
        assert pod.metadata.deletion_timestamp is None  # not deleted automatically
        # a new pod is not scheduled there
        core.delete_node("node-lost")
        wait_for(
            lambda: (
                not core.list_namespaced_pod("default", field_selector="metadata.name=pinned").items
            ),
            message="pod gc",
        )
    finally:
        kl.stop()


# --- bootstrap tokens and CSRs --------------------------------------------------------------


def bootstrap_secret(core, token_id: str, secret: str, expires_in: float) -> None:
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
    core.create_namespaced_secret(
        "kube-system",
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=f"bootstrap-token-{token_id}"),
            type="bootstrap.kubernetes.io/token",
            data={
                "token-id": b64(token_id),
                "token-secret": b64(secret),
                "expiration": b64(expiration),
                "usage-bootstrap-authentication": b64("true"),
                "usage-bootstrap-signing": b64("true"),
                "auth-extra-groups": b64("system:bootstrappers:kubeadm:default-node-token"),
            },
        ),
    )


def test_bootstrap_token_auth(apiserver: ApiServer, core):
    bootstrap_secret(core, "abcdef", "0123456789abcdef", 3600)
    token = "abcdef.0123456789abcdef"
    assert apiserver.raw("GET", "/api", token=token)[0] == 200
    assert apiserver.raw("GET", "/apis/certificates.k8s.io/v1", token=token)[0] == 200
    assert (
        apiserver.raw("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info", token=token)[
            0
        ]
        == 200
    )
    code, status = apiserver.raw("GET", "/api/v1/namespaces/default/pods", token=token)
    assert code == 403 and status["reason"] == "Forbidden"
    assert 'User "system:bootstrap:abcdef" cannot list resource "pods"' in status["message"]
    assert apiserver.raw("GET", "/api", token="abcdef.0000000000000000")[0] == 401
    assert apiserver.raw("GET", "/api", token="zzzzzz.0123456789abcdef")[0] == 401
    assert apiserver.raw("GET", "/api", token="not-a-token")[0] == 401

    bootstrap_secret(core, "expire", "0123456789abcdef", 1.5)
    assert apiserver.raw("GET", "/api", token="expire.0123456789abcdef")[0] == 200
    time.sleep(2)
    assert apiserver.raw("GET", "/api", token="expire.0123456789abcdef")[0] == 401
    wait_for(
        lambda: (
            not core.list_namespaced_secret(
                "kube-system", field_selector="metadata.name=bootstrap-token-expire"
            ).items
        ),
        message="token cleaner removed the expired token",
    )


def test_csr_signed_by_cluster_ca(apiserver: ApiServer, core, tmp_path: Path):
    bootstrap_secret(core, "csrtok", "0123456789abcdef", 3600)
    token = "csrtok.0123456789abcdef"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/O=system:nodes/CN=system:node:node-9",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    request = base64.b64encode((tmp_path / "node.csr").read_bytes()).decode()
    code, created = apiserver.raw(
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {
                "request": request,
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
            },
        },
        token=token,
    )
    assert code == 201, created
    assert created["spec"]["username"] == "system:bootstrap:csrtok"
    name = created["metadata"]["name"]

    def issued():
        code, csr = apiserver.raw(
            "GET", f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}", token=token
        )
        return csr if code == 200 and csr.get("status", {}).get("certificate") else None

    csr = wait_for(issued, message="certificate issued")
    assert [c["type"] for c in csr["status"]["conditions"]] == ["Approved"]
    (tmp_path / "node.crt").write_bytes(base64.b64decode(csr["status"]["certificate"]))
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(apiserver.pki / "ca.crt"), str(tmp_path / "node.crt")],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and ": OK" in verify.stdout
    subject = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
            "-in",
            str(tmp_path / "node.crt"),
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert "CN = system:node:node-9" in subject and "TLS Web Client Authentication" in subject
    # the signed certificate authenticates
    code, _ = apiserver.raw(
        "GET", "/api/v1/nodes", cert=(str(tmp_path / "node.crt"), str(tmp_path / "node.key"))
    )
    assert code == 200

    # a kubelet-client CSR with the wrong subject is refused, not signed
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "bad.key",
            "-out",
            "bad.csr",
            "-subj",
            "/O=system:masters/CN=admin",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    certs = k8s.CertificatesV1Api(core.api_client)
    certs.create_certificate_signing_request(
        k8s.V1CertificateSigningRequest(
            metadata=k8s.V1ObjectMeta(name="bad"),
            spec=k8s.V1CertificateSigningRequestSpec(
                request=base64.b64encode((tmp_path / "bad.csr").read_bytes()).decode(),
                signer_name="kubernetes.io/kube-apiserver-client-kubelet",
                usages=["digital signature", "client auth"],
            ),
        )
    )
    failed = wait_for(
        lambda: certs.read_certificate_signing_request("bad").status.conditions,
        message="bad CSR processed",
    )
    assert (
        failed[0].type == "Failed"
        and not certs.read_certificate_signing_request("bad").status.certificate
    )


# --- REST semantics -------------------------------------------------------------------------


def test_crud_conflicts_selectors_and_patches(apiserver: ApiServer, core):
    ns = make_namespace(core, "crud")
    cm = core.create_namespaced_config_map(
        ns,
        k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="a", labels={"tier": "web", "env": "prod"}),
            data={"k": "v"},
        ),
    )
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="a")))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"

    stale = cm.metadata.resource_version
    cm.data = {"k": "v2"}
    updated = core.replace_namespaced_config_map("a", ns, cm)
    assert int(updated.metadata.resource_version) > int(stale)
    cm.metadata.resource_version = stale
    with pytest.raises(k8s.ApiException) as err:
        core.replace_namespaced_config_map("a", ns, cm)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"

    generated = core.create_namespaced_config_map(
        ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(generate_name="gen-", labels={"tier": "db"}))
    )
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="c")))

    def names(**kw) -> list[str]:
        return sorted(
            c.metadata.name
            for c in core.list_namespaced_config_map(ns, **kw).items
            if c.metadata.name != "kube-root-ca.crt"
        )

    assert names(label_selector="tier in (web,db)") == sorted(["a", generated.metadata.name])
    assert names(label_selector="tier notin (web)") == sorted(["c", generated.metadata.name])
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier,env==prod") == ["a"]
    assert names(label_selector="env!=prod") == sorted(["c", generated.metadata.name])
    assert names(field_selector="metadata.name=c") == ["c"]
    assert names(field_selector="metadata.name!=c,metadata.namespace=crud") == sorted(
        ["a", generated.metadata.name]
    )

    with pytest.raises(k8s.ApiException) as err:
        core.read_namespaced_config_map("missing", ns)
    body = json.loads(err.value.body)
    assert (err.value.status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'configmaps "missing" not found',
    )
    with pytest.raises(k8s.ApiException) as err:
        core.create_namespaced_config_map(
            ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="Bad_Name"))
        )
    assert err.value.status == 422 and json.loads(err.value.body)["reason"] == "Invalid"

    # merge, JSON and strategic merge patches
    core.patch_namespaced_config_map(
        "a", ns, {"metadata": {"labels": {"env": None}}, "data": {"x": "1"}}
    )
    assert core.read_namespaced_config_map("a", ns).metadata.labels == {"tier": "web"}
    core.patch_namespaced_config_map("a", ns, [{"op": "replace", "path": "/data/x", "value": "2"}])
    assert core.read_namespaced_config_map("a", ns).data == {"k": "v2", "x": "2"}
    apiserver.kubectl("annotate", "cm", "a", "-n", ns, "note=hello")
    assert core.read_namespaced_config_map("a", ns).metadata.annotations["note"] == "hello"

    # services get cluster IPs from the range, distinct
    ips = []
    for name in ("s1", "s2"):
        svc = core.create_namespaced_service(
            ns,
            k8s.V1Service(
                metadata=k8s.V1ObjectMeta(name=name),
                spec=k8s.V1ServiceSpec(
                    selector={"app": name}, ports=[k8s.V1ServicePort(port=80, target_port=8080)]
                ),
            ),
        )
        ips.append(svc.spec.cluster_ip)
    assert len(set(ips)) == 2 and all(
        ip.startswith(("10.96.", "10.97.", "10.98.", "10.99.", "10.10", "10.11")) for ip in ips
    )
    assert core.read_namespaced_service("kubernetes", "default").spec.cluster_ip == "10.96.0.1"
    core.delete_namespace(ns)
    wait_for(lambda: not core.list_namespaced_config_map(ns).items, message="namespace purge")


def test_watch_delivers_events(apiserver: ApiServer, core):
    ns = make_namespace(core, "watch")
    events: list[tuple[str, str, str]] = []
    started = threading.Event()

    def run() -> None:
        w = watch.Watch()
        started.set()
        for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=4):
            obj = event["object"]
            if obj.metadata.name.startswith("w"):
                events.append((event["type"], obj.metadata.name, obj.metadata.resource_version))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    time.sleep(0.5)
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w1")))
    core.patch_namespaced_config_map("w1", ns, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("w1", ns)
    thread.join(6)
    assert [(t, n) for t, n, _ in events] == [
        ("ADDED", "w1"),
        ("MODIFIED", "w1"),
        ("DELETED", "w1"),
    ]
    rvs = [int(rv) for _, _, rv in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3

    # resuming from a resourceVersion replays what happened after it
    listed = core.list_namespaced_config_map(ns)
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w2")))
    replay = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            ns,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    assert replay == [("ADDED", "w2")]

    # kubectl get -w sees a change
    proc = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            apiserver.kubeconfig,
            "get",
            "cm",
            "-n",
            ns,
            "-w",
            "--output-watch-events",
            "--request-timeout=3s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="w3")))
    out, _ = proc.communicate(timeout=10)
    assert "ADDED" in out and "w3" in out
    core.delete_namespace(ns)


def test_state_survives_restart(pki: Path, tmp_path: Path):
    server = ApiServer(pki, tmp_path / "state").start()
    try:
        _, api_client = server.client()
        core = k8s.CoreV1Api(api_client)
        made = core.create_namespaced_config_map(
            "default", k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="keep"), data={"a": "1"})
        )
        server.stop()
        assert (tmp_path / "state" / "state.json").exists()
        server.start()
        _, api_client = server.client()
        core = k8s.CoreV1Api(api_client)
        kept = core.read_namespaced_config_map("keep", "default")
        assert (kept.metadata.uid, kept.data) == (made.metadata.uid, {"a": "1"})
        later = core.create_namespaced_config_map(
            "default", k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="later"))
        )
        assert int(later.metadata.resource_version) > int(made.metadata.resource_version)
        assert [n.metadata.name for n in core.list_namespace().items].count("default") == 1
    finally:
        server.stop()


def test_bootstrap_signer_signs_cluster_info_for_each_token(apiserver: ApiServer, core):
    from kube_sim.kubeadm_lib import tokens

    kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n"
    cluster_info = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="cluster-info"), data={"kubeconfig": kubeconfig}
    )
    try:
        core.create_namespaced_config_map("kube-public", cluster_info)
    except k8s.ApiException as err:
        assert err.status == 409  # made by an earlier test: give it this payload
        core.replace_namespaced_config_map("cluster-info", "kube-public", cluster_info)
    bootstrap_secret(core, "signer", "0123456789abcdef", 3600)

    def signature() -> str | None:
        data = core.read_namespaced_config_map("cluster-info", "kube-public").data
        return data.get("jws-kubeconfig-signer")

    wait_for(lambda: signature() is not None, message="cluster-info signed for the new token")
    assert tokens.jws_verify(signature(), kubeconfig, "signer", "0123456789abcdef")
    assert not tokens.jws_verify(signature(), kubeconfig, "signer", "ffffffffffffffff")
    core.delete_namespaced_secret("bootstrap-token-signer", "kube-system")
    wait_for(lambda: signature() is None, message="signature dropped with its token")
