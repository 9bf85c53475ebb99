"""End-to-end test bed: the real cfy CLI, real SSH and real LXC hosts made by the suite's own
`local` provider, with the kube-sim stand-ins (kube_sim/) in place of kubeadm, kubelet and
kube-apiserver, installed from a package repository served over HTTP the way a mirror is."""

from __future__ import annotations

import functools
import http.server
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from k8s_cluster.hosts import lxc_network
from k8s_cluster.hosts.local import LocalProvider

ROOT = Path(__file__).resolve().parents[2]
CFY = str(Path(sys.executable).with_name("cfy"))
# the test hosts' bridge network; another value lets two test sessions run side by side
SUBNET = os.environ.get("K8S_E2E_SUBNET", "10.79.0.0/24")
GATEWAY = str(next(ipaddress.ip_network(SUBNET).hosts()))


def _why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "end-to-end tests need root (LXC hosts)"
    for tool in ("lxc-start", "debootstrap", "dpkg-scanpackages", "kubectl"):
        if not shutil.which(tool):
            return f"end-to-end tests need {tool} (run bin/setup)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _why_not_runnable()
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if reason and not os.environ.get("CI"):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def sim_repository(tmp_path_factory) -> Path:
    """The stand-in package repository, built by the documented command."""
    out = tmp_path_factory.mktemp("sim") / "repository"
    subprocess.run(
        [sys.executable, "-m", "kube_sim.build_repo", "--out", str(out)], cwd=ROOT, check=True
    )
    return out


@pytest.fixture(scope="session")
def repository_url(sim_repository) -> str:
    """Serve the repository over HTTP on all addresses; hosts reach it at the bridge gateway."""
    handler = functools.partial(QuietHandler, directory=str(sim_repository))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{GATEWAY}:{server.server_address[1]}/"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Cfy:
    """Runs the cfy CLI as a user would, in a private Cloudify work folder."""

    def __init__(self, workdir: Path, state_dir: Path):
        self.env = dict(os.environ, CFY_WORKDIR=str(workdir), K8S_CLUSTER_STATE_DIR=str(state_dir))
        self.state_dir = state_dir
        self.transcript: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: int = 1500):
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

    def outputs(self, blueprint: str) -> dict:
        result = self("deployments", "outputs", "-b", blueprint)  # JSON in local mode
        return json.loads(result.stdout)


@pytest.fixture(scope="session")
def cfy(tmp_path_factory) -> Cfy:
    base = tmp_path_factory.mktemp("cfy")
    return Cfy(base / "cloudify", base / "state")


@pytest.fixture(scope="session")
def inputs_file(tmp_path_factory, repository_url) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "inputs.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "package_repository": repository_url,
                "kubernetes_version": "1.36",
                "cni_manifest": str(ROOT / "kube_sim" / "manifests" / "cni.yaml"),
                "local_settings": {"subnet": SUBNET},
            }
        )
    )
    return path


def kubectl(kubeconfig: str, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def host_traces(state_dir: Path, deployment: str, hosts: list[str] = ()) -> dict[str, list[str]]:
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
        "nat_rules": [line for line in nat.splitlines() if bridge in line or SUBNET in line],
        "state": sorted(str(p) for p in deployment_dir.iterdir())
        if deployment_dir.exists()
        else [],
    }


@pytest.fixture(scope="module", autouse=True)
def no_host_left_behind(cfy):
    """Each test module uninstalls what it installed. A host left running (a failed uninstall
    in a teardown) fails the module, and is removed so the next modules start clean."""
    yield
    left = {}
    for deployment_dir in sorted(cfy.state_dir.glob("*")):
        provider = LocalProvider(deployment_dir.name, deployment_dir, subnet=SUBNET)
        names = provider.host_names()
        for name in names:
            provider.destroy_host(name)
        if names:
            left[deployment_dir.name] = names
    assert not left, f"hosts left behind by this module's uninstall: {left}"
