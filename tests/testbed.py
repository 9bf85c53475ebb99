"""The test bed of every test that needs Kubernetes: real clusters on the suite's local (LXC)
hosts, installed through the real cfy CLI from an offline bundle built from upstream source by
the documented command, its repository and images served over HTTP the way a mirror is."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from k8s_cluster.hosts import lxc_network
from k8s_cluster.hosts.local import LocalProvider

ROOT = Path(__file__).resolve().parents[1]
CFY = str(Path(sys.executable).with_name("cfy"))
KUBERNETES_VERSION = os.environ.get("K8S_E2E_KUBERNETES_VERSION", "1.37.2")
# the test hosts' bridge networks; other values let two test sessions run side by side
SUBNET = os.environ.get("K8S_E2E_SUBNET", "10.79.0.0/24")
SHARED_SUBNET = os.environ.get("K8S_E2E_SHARED_SUBNET", "10.80.0.0/24")
GATEWAY = str(next(ipaddress.ip_network(SUBNET).hosts()))
SHARED_GATEWAY = str(next(ipaddress.ip_network(SHARED_SUBNET).hosts()))
SHARED_DEPLOYMENT = "shared"
BUNDLE_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "k8s-e2e-bundle-build.log"


def build_bundle() -> tuple[Path, float]:
    """The offline bundle, by the README's command (cached by version: seconds when warm)."""
    started = time.monotonic()
    with BUNDLE_LOG.open("w") as log:
        result = subprocess.run(
            [str(ROOT / "bin" / "build-bundle"), "build", KUBERNETES_VERSION],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    output = BUNDLE_LOG.read_text()
    assert result.returncode == 0, f"bin/build-bundle failed:\n{output[-5000:]}"
    folder = next(
        line.split(": ", 1)[1].rsplit(" (", 1)[0]
        for line in output.splitlines()
        if line.startswith("bundle v")
    )
    return Path(folder), time.monotonic() - started


def serving_address() -> str:
    """This machine's address on its default route: the orchestrator and the hosts (through
    their bridge's gateway) both reach it, as they would a mirror on the site's network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("198.51.100.1", 9))  # a UDP connect sends nothing: it picks the route
        return probe.getsockname()[0]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{serving_address()}:{server.server_address[1]}", server


def bundle_inputs(bundle: Path, url: str, subnet: str) -> dict:
    return {
        "package_repository": f"{url}/repository/",
        "image_bundle": f"{url}/images/",
        "cni_manifest": str(bundle / "manifests" / "flannel.yaml"),
        "kubernetes_version": ".".join(KUBERNETES_VERSION.split(".")[:2]),
        "local_settings": {"subnet": subnet},
    }


def release_runtime(bundle: Path, url: str) -> dict:
    """container_runtime from the bundle's releases/, laid out as containerd's and runc's own
    release downloads are (what the default container_runtime fetches from GitHub)."""
    packages = json.loads((bundle / "bundle.json").read_text())["packages"]
    return {
        "source": "release",
        "containerd_version": packages["containerd"].split("-")[0],
        "containerd_url": f"{url}/releases/containerd/v{{version}}/"
        "containerd-{version}-linux-{arch}.tar.gz",
        "runc_version": packages["runc"].split("-")[0],
        "runc_url": f"{url}/releases/runc/v{{version}}/runc.{{arch}}",
    }


def hold_session(basetemp: Path):
    """Marks this test session alive for as long as the returned file stays open."""
    lock = (basetemp / ".session.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _session_alive(session_root: Path) -> bool:
    try:
        lock = (session_root / ".session.lock").open()
    except FileNotFoundError:
        return False
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def remove_hosts_of_ended_sessions(basetemp: Path) -> list[str]:
    """Destroys the hosts and networks that earlier test sessions made and, being killed, never
    removed: a killed session's bridge would hold its subnet, and its hosts memory, forever.
    Sessions still running (another pytest on this machine) hold their lock and are left alone."""
    sessions = basetemp.parent  # pytest-of-<user>: one pytest-N folder per session
    identities = set(lxc_network.deployment_bridges())
    for depth in ("*/*", "*/*/*"):
        for record in sessions.glob(f"pytest-*/{depth}/local-hosts.json"):
            if record.parent.resolve() == record.parent:  # not through pytest's *current links
                identities.add(str(record.parent))
    removed = []
    for identity in sorted(identities):
        state_dir = Path(identity)
        if not state_dir.is_relative_to(sessions) or state_dir.is_relative_to(basetemp):
            continue
        if _session_alive(sessions / state_dir.relative_to(sessions).parts[0]):
            continue
        _destroy_deployment(state_dir)
        removed.append(identity)
    return removed


def _destroy_deployment(state_dir: Path) -> None:
    subnet = "10.77.0.0/24"  # any: the bridge and rules are named after the state folder alone
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        subnet = json.loads((state_dir / "local-hosts.json").read_text())["subnet"]
    provider = LocalProvider(state_dir.name, state_dir, subnet=subnet)
    for name in provider.host_names():
        provider.destroy_host(name)
    lxc_network.remove_network(provider.network)


class Cfy:
    """Runs the cfy CLI as a user would, in a private Cloudify work folder."""

    def __init__(self, workdir: Path, state_dir: Path):
        self.env = dict(os.environ, CFY_WORKDIR=str(workdir), K8S_CLUSTER_STATE_DIR=str(state_dir))
        self.workdir = workdir
        self.state_dir = state_dir
        self.transcript: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: int = 1800):
        started = time.monotonic()
        result = subprocess.run(
            [CFY, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        result.seconds = time.monotonic() - started
        self.transcript.append(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(
                f"cfy {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-6000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        return result

    def tear_down(self, deployment: str):
        """A test's teardown: uninstall whatever the test left running, pods a drain would
        refuse to lose included (as a user who means it says force and delete_emptydir_data)."""
        told = ("-p", "force=true", "-p", "delete_emptydir_data=true")
        return self("uninstall", "-b", deployment, *told, check=False)

    def outputs(self, blueprint: str) -> dict:
        result = self("deployments", "outputs", "-b", blueprint)  # JSON in local mode
        return json.loads(result.stdout)


class Kubectl:
    """The bundle's kubectl, the client that matches the cluster."""

    path: Path = Path("kubectl")

    @classmethod
    def run(cls, kubeconfig: str, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [str(cls.path), "--kubeconfig", kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert not check or result.returncode == 0, result.stderr
        return result.stdout


def kubectl(kubeconfig: str, *args: str) -> str:
    return Kubectl.run(kubeconfig, *args)


def wait_for(check, what: str, timeout: float = 120, interval: float = 0.5):
    """Poll `check` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)
    return value


def get_json(url: str, timeout: float = 60) -> dict:
    """GET a JSON document, retrying while nothing answers yet (kube-proxy programs a new
    Service's rules on every node within seconds, not at once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return json.load(answer)
        except OSError as err:  # URLError is one
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout:g} s: {err}"
            time.sleep(1)


def host_traces(
    state_dir: Path, deployment: str, hosts: list[str] = (), subnet: str = SUBNET
) -> dict[str, list[str]]:
    """Everything a deployment's local hosts leave on this machine."""
    lxc_dir = state_dir / deployment / "lxc"
    identity = str(state_dir / deployment)  # what the local provider names things after
    bridge = lxc_network.bridge_name(identity)
    names = {bridge, *(lxc_network.veth_name(identity, host) for host in hosts)}
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    nat = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    deployment_dir = state_dir / deployment
    return {
        "containers": sorted(p.name for p in lxc_dir.iterdir()) if lxc_dir.is_dir() else [],
        "links": [line for line in links.splitlines() if any(n in line for n in names)],
        "nat_rules": [line for line in nat.splitlines() if bridge in line or subnet in line],
        "state": sorted(str(p) for p in deployment_dir.iterdir())
        if deployment_dir.exists()
        else [],
    }


def on_host(lxc_path: Path, container: str, command: str, check: bool = True) -> str:
    """Run a shell command on a local host, as its console would."""
    result = subprocess.run(
        ["lxc-attach", "-P", str(lxc_path), "-n", container, "--", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def workload_manifest(
    name: str, image: str, replicas: int, port: int = 8080, spread: bool = False
) -> dict:
    """A Deployment of the bundle's test image answering HTTP; `spread`: never two pods on one
    node."""
    labels = {"app": name}
    spreading = {
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "nodeTaintsPolicy": "Honor",  # not the control plane, whose taint keeps pods off
                "labelSelector": {"matchLabels": labels},
            }
        ]
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    **(spreading if spread else {}),
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "env": [{"name": "PORT", "value": str(port)}],
                            "ports": [{"containerPort": port}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": port},
                                "periodSeconds": 2,
                            },
                        }
                    ],
                },
            },
        },
    }


def keepsake_pod(name: str, node: str, image: str) -> dict:
    """A pod that kubectl drain refuses to lose by default: no controller manages it, and it
    keeps data in an emptyDir volume (`scratch`)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": image,
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    }


def create_object(kubeconfig: str, manifest: dict, folder: Path) -> None:
    path = folder / f"{manifest['metadata']['name']}.json"
    path.write_text(json.dumps(manifest))
    kubectl(kubeconfig, "apply", "-f", str(path))
