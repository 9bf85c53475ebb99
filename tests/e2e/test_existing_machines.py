"""The `existing` provider through cfy, on machines this test makes itself, outside the suite:
Debian LXC system containers with sshd and a non-root user `deploy` with sudo (made by the
local provider's machine code under a state folder of the test's own, as a hypervisor would
make them), then handed to the suite as existing_machines. Their host keys are given as inputs,
or found in ~/.ssh/known_hosts (a home folder of the test's own). The suite never deletes them.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from k8s_cluster.hosts import Host
from k8s_cluster.hosts.local import LocalProvider
from tests import testbed
from tests.testbed import kubectl, on_host

BLUEPRINT = "blueprints/k8s-cluster.yaml"
DEPLOYMENT = "k8s-existing"
SUBNET = "10.81.0.0/24"
USER = "deploy"
CONTROL_PLANE, WORKERS, SPARE = "m-cp", ["m-w1", "m-w2"], "m-w3"
KNOWN_HOSTS_ONLY = "m-w2"  # its host key is not in the inputs: ~/.ssh/known_hosts has it
CLEAN = (
    "test ! -e /etc/kubernetes/admin.conf && test ! -e /etc/kubernetes/kubelet.conf"
    ' && test -z "$(ls -A /etc/kubernetes/manifests 2>/dev/null)"'
    " && test ! -d /var/lib/etcd/member && ! systemctl is-active -q kubelet"
    ' && ! ip link show cni0 2>/dev/null && test -z "$(crictl ps -aq 2>/dev/null)"'
    " && echo clean"
)


@dataclass
class Machines:
    factory: LocalProvider
    hosts: dict[str, Host]

    def run(self, name: str, command: str, check: bool = True) -> str:
        container = self.factory.container_name(name)
        return on_host(self.factory.lxc_path, container, command, check=check)

    def listed(self, names: list[str], wrong_key_for: str = "") -> list[dict]:
        """existing_machines for `names`; wrong_key_for gets another machine's host key."""
        entries = []
        for name in names:
            role = "control-plane" if name == CONTROL_PLANE else "worker"
            entry = {"address": self.hosts[name].address, "role": role, "name": name}
            if name == wrong_key_for:
                entry["host_key"] = self.hosts[CONTROL_PLANE].host_key
            elif name != KNOWN_HOSTS_ONLY:
                entry["host_key"] = self.hosts[name].host_key
            entries.append(entry)
        return entries


@pytest.fixture(scope="module")
def machines(tmp_path_factory) -> Machines:
    folder = tmp_path_factory.mktemp("machines")
    factory = LocalProvider("machines", folder / "hypervisor", subnet=SUBNET, ssh_user=USER)
    names = [CONTROL_PLANE, *WORKERS, SPARE]
    try:
        with ThreadPoolExecutor(len(names)) as pool:
            hosts = dict(zip(names, pool.map(factory.create_host, names), strict=True))
        yield Machines(factory, hosts)
    finally:
        for name in factory.host_names():
            factory.destroy_host(name)


@pytest.fixture(scope="module")
def cfy(tmp_path_factory, machines) -> testbed.Cfy:
    """cfy with a home folder whose ~/.ssh/known_hosts trusts one machine's host key."""
    base = tmp_path_factory.mktemp("existing-cfy")
    runner = testbed.Cfy(base / "cloudify", base / "state")
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    host = machines.hosts[KNOWN_HOSTS_ONLY]
    (home / ".ssh" / "known_hosts").write_text(f"{host.address} {host.host_key}\n")
    runner.env["HOME"] = str(home)
    return runner


def inputs(tmp_path: Path, bundle, machines: Machines, workers: int, **listing) -> str:
    settings = testbed.bundle_inputs(bundle.path, bundle.url, SUBNET)
    del settings["local_settings"]
    settings.update(
        infrastructure_provider="existing",
        worker_count=workers,
        ssh_user=USER,
        ssh_private_key_file=str(machines.factory.key_file),
        existing_machines=machines.listed([CONTROL_PLANE, *WORKERS, SPARE], **listing),
    )
    path = tmp_path / f"inputs-{workers}-{len(listing)}.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def untouched(machines: Machines) -> dict[str, str]:
    """Per machine, what the suite installed on it (nothing, on a machine never prepared)."""
    probe = "ls /etc/apt/sources.list.d/ /etc/kubernetes 2>/dev/null; command -v kubeadm || true"
    return {name: machines.run(name, probe).strip() for name in machines.hosts}


def node_ready(kubeconfig: str) -> dict[str, str]:
    items = json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json"))["items"]
    return {
        n["metadata"]["name"]: next(
            c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"
        )
        for n in items
    }


def test_a_wrong_host_key_is_refused_before_any_machine_changes(cfy, bundle, machines, tmp_path):
    before = untouched(machines)
    listing = inputs(tmp_path, bundle, machines, 2, wrong_key_for=WORKERS[0])
    result = cfy("install", BLUEPRINT, "-b", "k8s-wrong-key", "-i", listing, check=False)
    output = result.stdout + result.stderr
    try:
        assert result.returncode != 0
        address = machines.hosts[WORKERS[0]].address
        assert f"{WORKERS[0]} ({USER}@{address}): host key mismatch" in output, output[-3000:]
        assert "Nothing was changed" in output
        assert untouched(machines) == before
    finally:
        cfy.tear_down("k8s-wrong-key")
    assert untouched(machines) == before  # nor by the uninstall of the refused deployment


@pytest.fixture(scope="module")
def cluster(cfy, bundle, machines, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("existing-inputs")
    try:
        cfy("install", BLUEPRINT, "-b", DEPLOYMENT, "-i", inputs(folder, bundle, machines, 2))
        yield cfy.outputs(DEPLOYMENT)
    finally:
        cfy.tear_down(DEPLOYMENT)


def test_install_joins_the_listed_machines_as_their_own_user(cluster, machines):
    assert node_ready(cluster["kubeconfig_path"]) == dict.fromkeys(
        [CONTROL_PLANE, *WORKERS], "True"
    )
    assert cluster["control_plane_node"]["address"] == machines.hosts[CONTROL_PLANE].address
    # the suite logged in as deploy (and became root through sudo), never as root
    logins = machines.run(WORKERS[0], "journalctl --no-pager -q _COMM=sshd | grep Accepted")
    assert f"Accepted publickey for {USER} " in logins and " for root " not in logins


def test_scale_out_takes_the_next_listed_machine(cfy, cluster):
    cfy("executions", "start", "scale", "-b", DEPLOYMENT,
        "-p", "scalable_entity_name=workers", "-p", "delta=1")  # fmt: skip
    ready = node_ready(cluster["kubeconfig_path"])
    assert ready == dict.fromkeys([CONTROL_PLANE, *WORKERS, SPARE], "True")


def test_heal_of_a_stopped_kubelet_reinstalls_on_the_same_machine(cfy, cluster, machines):
    worker = WORKERS[0]
    listed = json.loads(cfy("node-instances", "-b", DEPLOYMENT).stdout)
    instance = next(
        i["id"]
        for i in listed
        if i["node_id"] == "worker_host"
        and i["runtime_properties"].get("node", {}).get("name") == worker
    )
    machines.run(worker, "systemctl stop kubelet")
    result = cfy("executions", "start", "heal", "-b", DEPLOYMENT,
                 "-p", f"node_instance_id={instance}")  # fmt: skip
    assert "reinstall the node software on the same host" in result.stdout + result.stderr
    testbed.wait_for(
        lambda: node_ready(cluster["kubeconfig_path"]).get(worker) == "True",
        f"{worker} Ready again",
        120,
    )
    assert machines.factory.is_running(worker)


def test_uninstall_leaves_every_machine_clean_and_a_second_install_works(
    cfy, cluster, bundle, machines, tmp_path
):
    cfy("uninstall", "-b", DEPLOYMENT)
    for name in machines.hosts:
        assert machines.factory.is_running(name), f"{name} was deleted"
        assert machines.run(name, CLEAN).strip() == "clean", name
    cfy("install", BLUEPRINT, "-b", "k8s-again", "-i", inputs(tmp_path, bundle, machines, 1))
    try:
        kubeconfig = cfy.outputs("k8s-again")["kubeconfig_path"]
        assert node_ready(kubeconfig) == dict.fromkeys([CONTROL_PLANE, WORKERS[0]], "True")
    finally:
        cfy("uninstall", "-b", "k8s-again")
    for name in machines.hosts:
        assert machines.run(name, CLEAN).strip() == "clean", name
