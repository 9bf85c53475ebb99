"""Support for the kube-apiserver stand-in tests (fixtures and helpers; kept out of conftest.py
so it cannot collide with other stand-ins' test support): a throw-away PKI, the API server
as a subprocess, kubectl and kubernetes-client helpers, and a tiny fake kubelet."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_client_cert(pki: Path, name: str, cn: str, orgs: tuple[str, ...] = ()) -> tuple[str, str]:
    subject = "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=pki,
    )
    (pki / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        str(int(time.time() * 1000)),
        "-days",
        "2",
        "-out",
        f"{name}.crt",
        "-extfile",
        "client.cnf",
        cwd=pki,
    )
    return str(pki / f"{name}.crt"), str(pki / f"{name}.key")


def make_pki(d: Path) -> Path:
    """CA, API server certificate (SAN 127.0.0.1) and an admin client certificate."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=kubernetes",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
        cwd=d,
    )
    (d / "server.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "1",
        "-days",
        "2",
        "-out",
        "apiserver.crt",
        "-extfile",
        "server.cnf",
        cwd=d,
    )
    make_client_cert(d, "admin", "kubernetes-admin", ("system:masters",))
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ApiServer:
    """The stand-in running as ``python3 -m kube_sim.apiserver`` in a subprocess."""

    pki: Path
    state_dir: Path
    grace: str = "3s"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        path = self.state_dir.parent / f"kubeconfig-{self.port}"
        if not path.exists():
            path.write_text(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [
                            {
                                "name": "sim",
                                "cluster": {
                                    "server": self.url,
                                    "certificate-authority": str(self.pki / "ca.crt"),
                                },
                            }
                        ],
                        "users": [
                            {
                                "name": "admin",
                                "user": {
                                    "client-certificate": str(self.pki / "admin.crt"),
                                    "client-key": str(self.pki / "admin.key"),
                                },
                            }
                        ],
                        "contexts": [
                            {"name": "sim", "context": {"cluster": "sim", "user": "admin"}}
                        ],
                        "current-context": "sim",
                    }
                )
            )
        return str(path)

    def start(self) -> ApiServer:
        self.log_path = self.state_dir.parent / f"apiserver-{self.port}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_sim.apiserver",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--tls-cert-file",
                str(self.pki / "apiserver.crt"),
                "--tls-private-key-file",
                str(self.pki / "apiserver.key"),
                "--client-ca-file",
                str(self.pki / "ca.crt"),
                "--cluster-signing-cert-file",
                str(self.pki / "ca.crt"),
                "--cluster-signing-key-file",
                str(self.pki / "ca.key"),
                "--state-dir",
                str(self.state_dir),
                "--node-monitor-grace-period",
                self.grace,
                "--service-cluster-ip-range",
                "10.96.0.0/12",
                "--controller-tick",
                "0.5s",
                "--v",
                "2",
            ],
            env=env,
            stdout=open(self.log_path, "ab"),  # noqa: SIM115 - owned by the child process
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 15
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apiserver exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", context=ctx, timeout=2) as r:
                    if r.read() == b"ok":
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError("apiserver did not become ready")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [KUBECTL, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def client(self):
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=self.kubeconfig)
        return client, api_client

    def raw(
        self,
        method: str,
        path: str,
        body: object | None = None,
        token: str | None = None,
        cert: tuple[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict | str]:
        """One HTTPS request without the admin certificate unless ``cert`` is given."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if cert:
            ctx.load_cert_chain(*cert)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                code, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            code, text = err.code, err.read().decode()
        try:
            return code, json.loads(text)
        except ValueError:
            return code, text


class FakeKubelet:
    """Does for some nodes what the kubelet stand-in does: registers the Node, renews its Lease,
    reports pods Running and Ready, and removes pods marked for deletion."""

    def __init__(self, server: ApiServer, nodes: list[str], labels: dict[str, str] | None = None):
        from kubernetes import client

        _, api_client = server.client()
        self.k = client
        self.core = client.CoreV1Api(api_client)
        self.coord = client.CoordinationV1Api(api_client)
        self.nodes = list(nodes)
        self.labels = labels or {}
        self.stopped: set[str] = set()
        self.paused = False  # True: heartbeats go on, pods are left alone
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def register(self, name: str, index: int) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **self.labels,
                },
            },
            "spec": {},
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                    {"type": "Hostname", "address": name},
                ],
                "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "nodeInfo": {
                    "kubeletVersion": "v1.36.2-sim",
                    "osImage": "Debian GNU/Linux 12",
                    "kernelVersion": "6.1.0",
                    "containerRuntimeVersion": "sim://1.0",
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                    "kernelVersion_": "",
                },
            },
        }
        del body["status"]["nodeInfo"]["kernelVersion_"]
        try:
            self.core.create_node(body)
        except self.k.ApiException as exc:
            if exc.status != 409:
                raise

    def start(self) -> FakeKubelet:
        for index, name in enumerate(self.nodes):
            self.register(name, index)
            self.heartbeat(name)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)

    def heartbeat(self, name: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        body = {
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
        }
        try:
            lease = self.coord.read_namespaced_lease(name, "kube-node-lease")
            lease.spec.renew_time = now
            self.coord.replace_namespaced_lease(name, "kube-node-lease", lease)
        except self.k.ApiException as exc:
            if exc.status != 404:
                raise
            self.coord.create_namespaced_lease("kube-node-lease", body)

    def _loop(self) -> None:
        last_beat = 0.0
        while not self._halt.wait(0.2):
            try:
                if time.time() - last_beat > 1:
                    last_beat = time.time()
                    for name in self.nodes:
                        if name not in self.stopped:
                            self.heartbeat(name)
                if not self.paused:
                    self.sync_pods()
            except Exception as exc:  # keep going, but remember what broke
                self.errors.append(repr(exc))

    def sync_pods(self) -> None:
        for index, name in enumerate(self.nodes):
            if name in self.stopped:
                continue
            pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}")
            for pod in pods.items:
                meta = pod.metadata
                if meta.deletion_timestamp is not None:
                    with contextlib.suppress(self.k.ApiException):
                        self.core.delete_namespaced_pod(
                            meta.name, meta.namespace, grace_period_seconds=0
                        )
                    continue
                if pod.status.phase == "Running":
                    continue
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                conds = [
                    {"type": t, "status": "True", "lastTransitionTime": now}
                    for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                ]
                status = {
                    "status": {
                        "phase": "Running",
                        "conditions": conds,
                        "hostIP": f"10.0.0.{10 + index}",
                        "podIP": f"10.244.{index}.{abs(hash(meta.name)) % 250 + 2}",
                        "startTime": now,
                        "containerStatuses": [
                            {
                                "name": c.name,
                                "image": c.image,
                                "imageID": "",
                                "ready": True,
                                "restartCount": 0,
                                "started": True,
                                "state": {"running": {"startedAt": now}},
                            }
                            for c in pod.spec.containers
                        ],
                    }
                }
                with contextlib.suppress(self.k.ApiException):
                    self.core.patch_namespaced_pod_status(meta.name, meta.namespace, status)


def wait_for(predicate, timeout: float = 15, interval: float = 0.2, message: str = ""):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting: {message} (last={last!r})")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
