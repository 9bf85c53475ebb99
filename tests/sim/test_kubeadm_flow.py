"""kubeadm init / token / join / reset and the kubelet, end to end on this machine.

Each "host" is a directory used as KUBE_SIM_ROOT, and services run as plain processes
(KUBE_SIM_NO_SYSTEMD=1) - both test-only switches of the stand-ins. The API server is the real
stand-in (kube_sim.apiserver) when it is present in the tree, and always also a minimal fake
defined at the bottom of this file (run as `python3 THIS_FILE --port ...` by kubeadm through
KUBE_SIM_APISERVER_CMD), which speaks the same REST paths and shapes.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kube_sim.common import kubeconfig, pki
from kube_sim.common.rest import ApiClient, ApiError

REPO = Path(__file__).resolve().parents[2]
HAVE_REAL_APISERVER = importlib.util.find_spec("kube_sim.apiserver") is not None
BACKENDS = [
    "fake",
    pytest.param(
        "real",
        marks=pytest.mark.skipif(
            not HAVE_REAL_APISERVER, reason="kube_sim.apiserver is not in this tree"
        ),
    ),
]

INIT_CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 15m
  description: init token
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: {port}
nodeRegistration:
  name: cp-0
  kubeletExtraArgs:
  - name: node-ip
    value: 127.0.0.1
  - name: node-labels
    value: topology.kubernetes.io/zone=a
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
clusterName: rehearsal
encryptionAlgorithm: ECDSA-P256
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  certSANs: [k8s.example.com]
controllerManager:
  extraArgs:
  - name: node-monitor-grace-period
    value: 20s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
healthzPort: 0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Host:
    root: Path
    env: dict[str, str]
    cri: socket.socket

    def kubeadm(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kube_sim.kubeadm", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def path(self, host_path: str) -> Path:
        return Path(str(self.root) + host_path)

    def client(self, conf: str = "/etc/kubernetes/admin.conf") -> ApiClient:
        creds = kubeconfig.credentials(kubeconfig.parse(self.path(conf).read_text()))
        return ApiClient.from_credentials(creds, timeout=10)

    def kill_services(self) -> None:
        for pidfile in self.path("/run/kube-sim").glob("*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(pidfile.read_text()), 9)


def make_host(base: Path, name: str, backend: str) -> Host:
    root = base / name
    (root / "proc/sys/net/ipv4").mkdir(parents=True)
    (root / "proc/sys/net/ipv4/ip_forward").write_text("1\n")
    sock_path = root / "var/run/containerd/containerd.sock"
    sock_path.parent.mkdir(parents=True)
    cri = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cri.bind(str(sock_path))
    cri.listen(8)
    env = dict(os.environ)
    env.update(
        KUBE_SIM_ROOT=str(root),
        KUBE_SIM_NO_SYSTEMD="1",
        PYTHONPATH=str(REPO),
    )
    env.pop("KUBE_SIM_APISERVER_CMD", None)
    if backend == "fake":
        env["KUBE_SIM_APISERVER_CMD"] = f"{sys.executable} {Path(__file__).resolve()}"
    return Host(root, env, cri)


def wait_for(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except ApiError as exc:
            last = exc
            last_value = None
        else:
            last_value = last
        if last_value:
            return last_value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@dataclass
class Cluster:
    cp: Host
    base: Path
    backend: str
    init: subprocess.CompletedProcess[str]
    port: int


@pytest.fixture(scope="module", params=BACKENDS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    backend = request.param
    base = tmp_path_factory.mktemp(f"flow-{backend}")
    cp = make_host(base, "cp", backend)
    port = free_port()
    config_file = base / "init.yaml"
    config_file.write_text(INIT_CONFIG.format(port=port))
    try:
        result = cp.kubeadm("init", "--config", str(config_file))
        assert result.returncode == 0, result.stdout + result.stderr
        yield Cluster(cp, base, backend, result, port)
    finally:
        cp.kubeadm("reset", "-f")
        cp.kill_services()


@pytest.fixture(scope="module")
def worker(cluster: Cluster) -> Iterator[Host]:
    host = make_host(cluster.base, "w1", cluster.backend)
    created = cluster.cp.kubeadm("token", "create", "--ttl", "10m", "--print-join-command")
    assert created.returncode == 0, created.stderr
    command = created.stdout.split()
    assert command[:2] == ["kubeadm", "join"]
    try:
        result = host.kubeadm(*command[1:], "--node-name", "w-1")
        assert result.returncode == 0, result.stdout + result.stderr
        yield host
    finally:
        host.kubeadm("reset", "-f")
        host.kill_services()


def node_ready(client: ApiClient, name: str) -> dict[str, Any] | None:
    node = client.get(f"/api/v1/nodes/{name}")
    for cond in node.get("status", {}).get("conditions", []):
        if cond["type"] == "Ready" and cond["status"] == "True":
            return node
    return None


def test_init_output_files_and_objects(cluster: Cluster) -> None:
    out = cluster.init.stdout
    assert "Your Kubernetes control-plane has initialized successfully!" in out
    assert re.search(
        rf"kubeadm join 127\.0\.0\.1:{cluster.port} --token abcdef\.0123456789abcdef \\\n"
        r"\t--discovery-token-ca-cert-hash sha256:[0-9a-f]{64}",
        out,
    )
    for phase in (
        "[preflight]",
        "[certs]",
        "[kubeconfig]",
        "[kubelet-start]",
        "[api-check]",
        "[upload-config]",
        "[mark-control-plane]",
        "[bootstrap-token]",
    ):
        assert phase in out
    cp = cluster.cp
    for name in (
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ):
        assert cp.path(f"/etc/kubernetes/{name}").stat().st_mode & 0o777 == 0o600
    for name in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "sa.key", "sa.pub"):
        assert cp.path(f"/etc/kubernetes/pki/{name}").exists()
    assert cp.path("/var/lib/kubelet/config.yaml").exists()
    flags = cp.path("/var/lib/kubelet/kubeadm-flags.env").read_text()
    assert "--hostname-override=cp-0" in flags and "--node-ip=127.0.0.1" in flags
    unit = cp.path("/etc/systemd/system/kube-apiserver-sim.service").read_text()
    assert "-m kube_sim.apiserver" in unit and f"--port {cluster.port}" in unit
    assert "--node-monitor-grace-period 20s" in unit
    assert "--service-cluster-ip-range 10.96.0.0/12" in unit

    client = cp.client()
    node = wait_for(lambda: node_ready(client, "cp-0"), what="cp-0 Ready")
    labels = node["metadata"]["labels"]
    assert labels["node-role.kubernetes.io/control-plane"] == ""
    assert labels["kubernetes.io/hostname"] == "cp-0"
    assert labels["topology.kubernetes.io/zone"] == "a"
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in [
        {k: t[k] for k in ("key", "effect")} for t in node["spec"]["taints"]
    ]
    status = node["status"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"].endswith("-sim")
    assert int(status["capacity"]["pods"]) == 110

    kubeadm_config = client.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert "kubernetesVersion: v1.36.2" in kubeadm_config["data"]["ClusterConfiguration"]
    kubelet_config = client.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    assert "kind: KubeletConfiguration" in kubelet_config["data"]["kubelet"]
    info = client.get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert "jws-kubeconfig-abcdef" in info["data"]
    secret = client.get("/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    lease = wait_for(
        lambda: client.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/cp-0"),
        what="lease",
    )
    first = lease["spec"]["renewTime"]
    wait_for(
        lambda: (
            client.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/cp-0")[
                "spec"
            ]["renewTime"]
            != first
        ),
        timeout=10,
        what="lease renewal",
    )


def test_second_init_is_refused(cluster: Cluster) -> None:
    again = cluster.cp.kubeadm("init", "--config", str(cluster.base / "init.yaml"))
    assert again.returncode == 1
    assert "error execution phase preflight" in again.stderr
    assert "[ERROR FileAvailable--etc-kubernetes-admin.conf]" in again.stderr
    assert f"[ERROR Port-{cluster.port}]" in again.stderr


def test_tokens_create_list_delete(cluster: Cluster) -> None:
    cp = cluster.cp
    created = cp.kubeadm("token", "create", "--ttl", "15m", "--description", "for w-9")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    listed = cp.kubeadm("token", "list")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if line.startswith(token))
    assert "for w-9" in line and "authentication,signing" in line
    assert re.search(r"\s1[45]m\s", line)
    info = cp.client().get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert f"jws-kubeconfig-{token[:6]}" in info["data"]
    duplicate = cp.kubeadm("token", "create", token)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    deleted = cp.kubeadm("token", "delete", token[:6])
    assert deleted.returncode == 0
    assert deleted.stdout.strip() == f'bootstrap token "{token[:6]}" deleted'
    assert token not in cp.kubeadm("token", "list").stdout
    info = cp.client().get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert f"jws-kubeconfig-{token[:6]}" not in info["data"]
    missing = cp.kubeadm("token", "delete", "zzzzzz")
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert cp.kubeadm("token", "delete", "NOT-A-TOKEN").returncode == 1


def test_join_refusals(cluster: Cluster) -> None:
    host = make_host(cluster.base, "refused", cluster.backend)
    ca_hash = pki.ca_cert_hash(cluster.cp.path("/etc/kubernetes/pki/ca.crt").read_text())
    endpoint = f"127.0.0.1:{cluster.port}"
    wrong = host.kubeadm(
        "join",
        endpoint,
        "--token",
        "abcdef.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        "sha256:" + "0" * 64,
        "--node-name",
        "w-x",
    )
    assert wrong.returncode == 1
    assert "none of the public keys" in wrong.stderr and "are pinned" in wrong.stderr
    config = host.root / "join.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        "discovery:\n  bootstrapToken:\n"
        f"    apiServerEndpoint: {endpoint}\n    token: zzzzzz.0123456789abcdef\n"
        f"    caCertHashes: [{ca_hash}]\n"
        "nodeRegistration: {name: w-x}\ntimeouts: {discovery: 1s}\n"
    )
    unknown = host.kubeadm("join", "--config", str(config))
    assert unknown.returncode == 1
    assert "there is no JWS signed token in the cluster-info ConfigMap" in unknown.stderr
    assert not host.path("/etc/kubernetes/kubelet.conf").exists()


def test_worker_joined(cluster: Cluster, worker: Host) -> None:
    client = cluster.cp.client()
    node = wait_for(lambda: node_ready(client, "w-1"), what="w-1 Ready")
    assert "node-role.kubernetes.io/control-plane" not in node["metadata"]["labels"]
    assert not node.get("spec", {}).get("taints")
    assert (
        worker.path("/etc/kubernetes/pki/ca.crt").read_text()
        == cluster.cp.path("/etc/kubernetes/pki/ca.crt").read_text()
    )
    kubelet = kubeconfig.parse(worker.path("/etc/kubernetes/kubelet.conf").read_text())
    user = kubelet["users"][0]["user"]
    assert user["client-certificate"] == "/var/lib/kubelet/pki/kubelet-client-current.pem"
    pem = worker.path("/var/lib/kubelet/pki/kubelet-client-current.pem").read_text()
    subject = subprocess.run(
        ["openssl", "x509", "-noout", "-subject"],
        input=pem,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "O = system:nodes" in subject and "CN = system:node:w-1" in subject
    again = worker.kubeadm(
        *cluster.cp.kubeadm("token", "create", "--print-join-command").stdout.split()[1:],
        "--node-name",
        "w-1",
    )
    assert again.returncode == 1
    assert "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]" in again.stderr


def test_pods_run_and_terminate(cluster: Cluster, worker: Host) -> None:
    client = cluster.cp.client()
    wait_for(lambda: node_ready(client, "w-1"), what="w-1 Ready")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {
            "nodeName": "w-1",
            "terminationGracePeriodSeconds": 3,
            "containers": [{"name": "web", "image": "nginx:1.27"}],
        },
    }
    client.post("/api/v1/namespaces/default/pods", pod)

    def running() -> dict[str, Any] | None:
        current = client.get("/api/v1/namespaces/default/pods/web-0")
        status = current.get("status") or {}
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        if status.get("phase") == "Running" and ready and ready[0]["status"] == "True":
            return current
        return None

    current = wait_for(running, what="pod Running")
    status = current["status"]
    assert status["podIP"].startswith("10.244.")
    assert status["hostIP"] == worker_ip(client)
    assert status["containerStatuses"][0]["ready"] is True
    assert "running" in status["containerStatuses"][0]["state"]
    started = time.monotonic()
    client.delete("/api/v1/namespaces/default/pods/web-0")

    def gone() -> bool:
        try:
            client.get("/api/v1/namespaces/default/pods/web-0")
        except ApiError as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=20, what="pod deleted by the kubelet")
    # The grace period was honoured (deletionTimestamp has whole seconds: 3s -> at least 2s).
    assert time.monotonic() - started >= 1.9


def worker_ip(client: ApiClient) -> str:
    node = client.get("/api/v1/nodes/w-1")
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def test_reset_stops_heartbeats(cluster: Cluster, worker: Host) -> None:
    result = worker.kubeadm("reset", "-f")
    assert result.returncode == 0, result.stderr
    assert "[reset] Stopping the kubelet service" in result.stdout
    assert not worker.path("/etc/kubernetes/kubelet.conf").exists()
    assert not any(worker.path("/var/lib/kubelet").iterdir())
    assert not worker.path("/etc/kubernetes/pki/ca.crt").exists()
    client = cluster.cp.client()
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/w-1"
    before = client.get(path)["spec"]["renewTime"]
    time.sleep(4)
    assert client.get(path)["spec"]["renewTime"] == before
    assert client.get("/api/v1/nodes/w-1")  # reset does not delete the Node


# ---------------------------------------------------------------------------------------------
# The minimal fake API server (used when kube_sim.apiserver is absent, and always as "fake").
# ---------------------------------------------------------------------------------------------
class FakeStore:
    def __init__(self, ca_pem: str, ca_key: str) -> None:
        self.ca_pem, self.ca_key = ca_pem, ca_key
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.version = 0

    def bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return obj


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return patch
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class FakeHandler(BaseHTTPRequestHandler):
    store: FakeStore
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, code: int, message: str) -> None:
        reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists"}
        self.send(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "reason": reasons.get(code, ""),
                "code": code,
            },
        )

    def user(self) -> str:
        cert = self.connection.getpeercert()  # type: ignore[attr-defined]
        if cert:
            return "x509"
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:]
            token_id, _, token_secret = token.partition(".")
            secret = self.store.objects.get(
                ("api/v1", "secrets", "kube-system", f"bootstrap-token-{token_id}")
            )
            if not secret:
                return "invalid"
            data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
            if data.get("token-secret") != token_secret:
                return "invalid"
            expiration = data.get("expiration")
            if expiration and expiration < _now():
                return "invalid"
            return "bootstrap"
        return "anonymous"

    def route(self) -> tuple[tuple[str, str, str, str], str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        segs = [s for s in url.path.split("/") if s]
        prefix_len = 2 if segs[:1] == ["api"] else 3
        prefix, rest = "/".join(segs[:prefix_len]), segs[prefix_len:]
        ns = ""
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        resource = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        return (prefix, resource, ns, name), sub, parse_qs(url.query)

    def body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def handle_method(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path in ("/readyz", "/healthz", "/livez"):
            self.send(200, b"ok")
            return
        user = self.user()
        if user == "invalid":
            self.fail(401, "Unauthorized")
            return
        key, sub, query = self.route()
        _prefix, resource, ns, name = key
        cluster_info = resource == "configmaps" and ns == "kube-public" and name == "cluster-info"
        if user == "anonymous" and not (cluster_info and method == "GET"):
            self.fail(401, "Unauthorized")
            return
        if user == "bootstrap" and not (
            (cluster_info and method == "GET")
            or (resource == "certificatesigningrequests" and method in ("GET", "POST"))
        ):
            self.fail(403, f"{resource} is forbidden for bootstrap tokens")
            return
        with self.store.lock:
            self.dispatch(method, key, sub, query)

    def dispatch(
        self, method: str, key: tuple[str, str, str, str], sub: str, query: dict[str, list[str]]
    ) -> None:
        store = self.store
        prefix, resource, ns, name = key
        obj = store.objects.get(key)
        if method == "GET" and not name:
            items = [
                o
                for (p, r, n, _), o in sorted(store.objects.items())
                if p == prefix and r == resource and (not ns or n == ns)
            ]
            for selector in query.get("fieldSelector", []):
                field, _, value = selector.partition("=")
                if field == "spec.nodeName":
                    items = [o for o in items if (o.get("spec") or {}).get("nodeName") == value]
            self.send(
                200,
                {
                    "kind": "List",
                    "apiVersion": "v1",
                    "items": items,
                    "metadata": {"resourceVersion": str(store.version)},
                },
            )
        elif method == "GET":
            if obj is None:
                self.fail(404, f'{resource} "{name}" not found')
            else:
                if resource == "certificatesigningrequests":
                    self.sign(obj)
                self.send(200, obj)
        elif method == "POST":
            new = self.body()
            meta = new.setdefault("metadata", {})
            name = meta.get("name") or (meta.get("generateName", "x-") + uuid.uuid4().hex[:5])
            meta["name"] = name
            key = (prefix, resource, ns, name)
            if key in store.objects:
                self.fail(409, f'{resource} "{name}" already exists')
                return
            if ns:
                meta["namespace"] = ns
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            store.objects[key] = store.bump(new)
            self.send(201, new)
        elif obj is None:
            self.fail(404, f'{resource} "{name}" not found')
        elif method == "PUT":
            new = self.body()
            wanted = (new.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != obj["metadata"]["resourceVersion"]:
                self.fail(409, "the object has been modified")
                return
            new["metadata"] = {**obj["metadata"], **new.get("metadata", {})}
            store.objects[key] = store.bump(new)
            self.send(200, new)
        elif method == "PATCH":
            merged = _merge(obj, self.body())
            store.objects[key] = store.bump(merged)
            self.send(200, merged)
        elif method == "DELETE":
            body = self.body() or {}
            grace = body.get("gracePeriodSeconds")
            if grace is None and query.get("gracePeriodSeconds"):
                grace = int(query["gracePeriodSeconds"][0])
            if resource == "pods" and grace is None:
                grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if resource == "pods" and grace and not obj["metadata"].get("deletionTimestamp"):
                moment = datetime.now(timezone.utc) + timedelta(seconds=grace)
                obj["metadata"]["deletionTimestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
                obj["metadata"]["deletionGracePeriodSeconds"] = grace
                self.send(200, store.bump(obj))
            else:
                del store.objects[key]
                self.send(200, obj)

    def sign(self, csr: dict[str, Any]) -> None:
        status = csr.setdefault("status", {})
        if status.get("certificate"):
            return
        request = base64.b64decode(csr["spec"]["request"]).decode()
        cert = pki.sign_csr(request, self.store.ca_pem, self.store.ca_key, usage="client")
        status["certificate"] = base64.b64encode(cert.encode()).decode()
        status["conditions"] = [{"type": "Approved", "status": "True", "reason": "AutoApproved"}]

    def do_GET(self) -> None:
        self.handle_method("GET")

    def do_POST(self) -> None:
        self.handle_method("POST")

    def do_PUT(self) -> None:
        self.handle_method("PUT")

    def do_PATCH(self) -> None:
        self.handle_method("PATCH")

    def do_DELETE(self) -> None:
        self.handle_method("DELETE")


def fake_main(argv: list[str]) -> None:
    """Serve the fake API server with kube-apiserver-sim's command-line flags."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and i + 1 < len(argv):
            opts[argv[i][2:]] = argv[i + 1]
            i += 2
        else:
            i += 1
    store = FakeStore(
        Path(opts["cluster-signing-cert-file"]).read_text(),
        Path(opts["cluster-signing-key-file"]).read_text(),
    )
    FakeHandler.store = store
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(opts["tls-cert-file"], opts["tls-private-key-file"])
    context.load_verify_locations(opts["client-ca-file"])
    context.verify_mode = ssl.CERT_OPTIONAL
    server = ThreadingHTTPServer((opts.get("bind", "127.0.0.1"), int(opts["port"])), FakeHandler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    fake_main(sys.argv[1:])
