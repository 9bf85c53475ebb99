"""check_cluster, heal and auto_heal through cfy, on a cluster of 1 control plane + 3 workers
whose machines fail the ways real ones do: silent power-off, a hang, a stopped kubelet."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from k8s_cluster.hosts.local import LocalProvider
from tests.testbed import (
    CFY,
    ROOT,
    SUBNET,
    Kubectl,
    create_object,
    keepsake_pod,
    kubectl,
    wait_for,
    workload_manifest,
)

BLUEPRINT = "blueprints/k8s-cluster.yaml"
DEPLOYMENT = "heal"
REPLICAS = 6
GRACE = 5  # the Deployment's terminationGracePeriodSeconds, and heal's pod_eviction_grace_period


def ready(node: dict) -> str:
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


class Cluster:
    """The deployment under test, seen through cfy, kubectl and the local provider."""

    def __init__(self, cfy, tmp_path, image: str):
        self.cfy = cfy
        self.tmp_path = tmp_path
        self.image = image
        self.outputs = cfy.outputs(DEPLOYMENT)
        self.kubeconfig = self.outputs["kubeconfig_path"]
        self.provider = LocalProvider(DEPLOYMENT, cfy.state_dir / DEPLOYMENT, subnet=SUBNET)
        manifest = tmp_path / "web.yaml"
        manifest.write_text(yaml.safe_dump(workload_manifest("web", image, REPLICAS)))
        kubectl(self.kubeconfig, "apply", "-f", str(manifest))

    def instances(self) -> dict[str, dict]:
        """Host instances by host name."""
        listed = json.loads(self.cfy("node-instances", "-b", DEPLOYMENT).stdout)
        return {
            i["runtime_properties"]["node"]["name"]: i
            for i in listed
            if i["node_id"].endswith("_host") and "node" in i["runtime_properties"]
        }

    def workers(self) -> list[str]:
        return sorted(name for name in self.instances() if name.startswith("worker-"))

    def instance_id(self, name: str) -> str:
        return self.instances()[name]["id"]

    def nodes(self) -> dict[str, dict]:
        items = json.loads(kubectl(self.kubeconfig, "get", "nodes", "-o", "json"))["items"]
        return {
            n["metadata"]["name"]: {
                "uid": n["metadata"]["uid"],
                "ready": next(
                    c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"
                ),
            }
            for n in items
        }

    def pods(self) -> list[dict]:
        return json.loads(kubectl(self.kubeconfig, "get", "pods", "-l", "app=web", "-o", "json"))[
            "items"
        ]

    def wait(self, what: str, check, timeout: float = 180) -> float:
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{what}: not after {timeout} s\n{self.state()}")
            time.sleep(1)
        return time.monotonic() - started

    def wait_for_pod_ip(self, name: str, timeout: float = 120) -> str:
        """The IP of a pod once it runs."""

        def running_ip() -> str:
            pod = json.loads(kubectl(self.kubeconfig, "get", "pod", name, "-o", "json"))
            running = pod["status"].get("phase") == "Running"
            return pod["status"].get("podIP", "") if running else ""

        self.wait(f"pod {name} running", running_ip, timeout)
        return running_ip()

    def state(self) -> str:
        """What the cluster looks like, for a failure's message."""
        return Kubectl.run(self.kubeconfig, "get", "nodes,pods", "-o", "wide", check=False)

    def all_ready(self) -> bool:
        nodes = self.nodes()
        return len(nodes) == 4 and all(n["ready"] == "True" for n in nodes.values())

    def web_running(self) -> bool:
        pods = self.pods()
        return len(pods) == REPLICAS and all(
            p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
            for p in pods
        )

    def run(self, workflow: str, *params: str, check: bool = True):
        args = [a for p in params for a in ("-p", p)]
        return self.cfy("executions", "start", workflow, "-b", DEPLOYMENT, *args, check=check)

    def heal_parameters(self, name: str) -> list[str]:
        return [f"node_instance_id={self.instance_id(name)}", f"pod_eviction_grace_period={GRACE}"]

    def heal(self, name: str, *params: str, check: bool = True):
        return self.run("heal", *self.heal_parameters(name), *params, check=check)

    def start_heal(self, name: str) -> subprocess.Popen:
        """A heal in the background, in a process group of its own (to be killed)."""
        params = [a for p in self.heal_parameters(name) for a in ("-p", p)]
        return subprocess.Popen(
            [CFY, "executions", "start", "heal", "-b", DEPLOYMENT, *params],
            cwd=ROOT,
            env=self.cfy.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def runs(self, name: str, command: str) -> bool:
        """Whether a process of that command line runs on the host now."""
        container = self.provider.container_name(name)
        found = subprocess.run(
            [
                "lxc-attach",
                "-P",
                str(self.provider.lxc_path),
                "-n",
                container,
                "--",
                "pgrep",
                "-f",
                command,
            ],
            capture_output=True,
            timeout=30,
        )
        return found.returncode == 0

    def lxc(self, name: str, *command: str) -> None:
        container = self.provider.container_name(name)
        subprocess.run(
            ["lxc-attach", "-P", str(self.provider.lxc_path), "-n", container, "--", *command],
            check=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def cluster(cfy, inputs_file, bundle, tmp_path_factory):
    extra = json.dumps({"worker_count": 3, "node_monitor_grace_period": "10s"})
    try:
        cfy("install", BLUEPRINT, "-b", DEPLOYMENT, "-i", str(inputs_file), "-i", extra)
        env = Cluster(cfy, tmp_path_factory.mktemp("heal"), bundle.test_image)
        env.wait("the Deployment running", env.web_running)
        yield env
    finally:
        cfy.tear_down(DEPLOYMENT)


@pytest.fixture
def healthy(cluster):
    """Every test starts and ends with every Node Ready and the Deployment running."""
    cluster.wait("every Node Ready", cluster.all_ready)
    cluster.wait("the Deployment running", cluster.web_running)
    yield cluster
    cluster.wait("every Node Ready after the test", cluster.all_ready, timeout=240)
    cluster.wait("the Deployment running after the test", cluster.web_running)


def test_check_cluster_reports_every_host_healthy(healthy):
    result = healthy.run("check_cluster")
    output = result.stdout + result.stderr
    assert "HOST" in output and "NODE READY" in output and "Every host is healthy" in output
    for name, instance in healthy.instances().items():
        report = instance["runtime_properties"]["health"]
        assert (report["host"], report["ssh"], report["kubelet"], report["node_ready"]) == (
            name,
            "ok",
            "active",
            "True",
        )
        assert report["unhealthy_since"] is None


def test_heal_of_a_healthy_worker_does_nothing(healthy):
    before = healthy.nodes()
    worker = healthy.workers()[0]
    result = healthy.heal(worker)
    assert "is healthy" in result.stdout + result.stderr
    assert "Nothing was changed" in result.stdout + result.stderr
    assert healthy.nodes() == before


def test_heal_of_the_single_control_plane_is_refused(healthy):
    before = (healthy.nodes(), healthy.instances())
    control_plane = healthy.outputs["control_plane_node"]["name"]
    result = healthy.heal(control_plane, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "single control plane" in output and "Nothing was changed" in output
    assert "cfy uninstall" in output  # the recovery path
    assert (healthy.nodes(), healthy.instances()) == before
    assert healthy.provider.state(control_plane) == "RUNNING"


@pytest.mark.parametrize(
    ("target", "message"),
    [("no_such_instance", "neither a host instance"), ("", "node_instance_id is required")],
)
def test_heal_of_an_unknown_instance_is_refused(healthy, target, message):
    result = healthy.run("heal", f"node_instance_id={target}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output and "Nothing was changed" in output
    assert "worker_host_" in output  # it names the hosts there are


def check_then_heal(cluster, worker: str, fail, label: str, capsys):
    """Fail the worker; check_cluster must report it and heal replace it. The check's result."""
    address = cluster.instances()[worker]["runtime_properties"]["host"]["address"]
    before = cluster.nodes()
    fail(worker)

    check = cluster.run("check_cluster")
    report = cluster.instances()[worker]["runtime_properties"]["health"]
    assert report["ssh"] != "ok" and report["unhealthy_since"] is not None
    assert f"Unhealthy: {worker}" in check.stdout + check.stderr

    started = time.monotonic()
    result = cluster.heal(worker)
    assert "replace the host" in result.stdout + result.stderr
    cluster.wait("every Node Ready", cluster.all_ready)
    with capsys.disabled():
        print(
            f"\n{label} worker: check_cluster {check.seconds:.1f} s; heal start to every Node "
            f"Ready {time.monotonic() - started:.1f} s"
        )
    assert_replaced(cluster, worker, before, address)
    return check


def test_powered_off_worker_is_found_and_replaced(healthy, capsys):
    check_then_heal(
        healthy, healthy.workers()[0], healthy.provider.power_off, "powered-off", capsys
    )


def test_hung_worker_is_checked_in_seconds_and_replaced(healthy, capsys):
    check = check_then_heal(healthy, healthy.workers()[1], healthy.provider.freeze, "hung", capsys)
    assert check.seconds < 30, f"check_cluster took {check.seconds:.1f} s on a hung host"


def test_stopped_kubelet_gets_the_node_software_reinstalled_on_the_same_host(healthy):
    """The host still answers, so its pods' data is still there: like a drain, heal refuses
    to lose a pod no controller manages or emptyDir data unless told (nothing changed)."""
    worker = healthy.workers()[2]
    host_key = healthy.instances()[worker]["runtime_properties"]["host"]["host_key"]
    create_object(
        healthy.kubeconfig, keepsake_pod("keepsake", worker, healthy.image), healthy.tmp_path
    )
    healthy.wait_for_pod_ip("keepsake")
    before = healthy.nodes()
    healthy.lxc(worker, "systemctl", "stop", "kubelet")

    refused = healthy.heal(worker, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "default/keepsake: no controller manages it" in output, output[-3000:]
    assert "emptyDir volume(s) scratch" in output and "Nothing was changed" in output
    assert healthy.nodes()[worker]["uid"] == before[worker]["uid"]

    result = healthy.heal(worker, "force=true", "delete_emptydir_data=true")
    output = result.stdout + result.stderr
    assert "reinstall the node software on the same host" in output
    assert "kubelet inactive" in output
    healthy.wait("every Node Ready", healthy.all_ready)
    # the same machine: a new one would have made itself a new SSH host key
    assert healthy.instances()[worker]["runtime_properties"]["host"]["host_key"] == host_key
    assert healthy.nodes()[worker]["uid"] != before[worker]["uid"]
    # the Node joined anew with a new pod range: pods run there, with addresses of that range
    cidr = json.loads(kubectl(healthy.kubeconfig, "get", "node", worker, "-o", "json"))["spec"][
        "podCIDR"
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pinned", "namespace": "default"},
        "spec": {
            "nodeName": worker,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": healthy.image}],
        },
    }
    manifest = healthy.tmp_path / "pinned.json"
    manifest.write_text(json.dumps(pod))
    kubectl(healthy.kubeconfig, "apply", "-f", str(manifest))
    try:
        ip = healthy.wait_for_pod_ip("pinned")
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidr), (ip, cidr)
    finally:
        kubectl(healthy.kubeconfig, "delete", "pod", "pinned", "--wait=false")


class HealProgress:
    """How far a heal of a powered-off worker has gone, as the cluster and this machine show
    it: its steps in order. The old host is known by its container's config file: a
    replacement of the same name writes a new one."""

    STEPS = ("node deleted", "host removed", "replacement created", "join started")

    def __init__(self, cluster, worker: str):
        self.cluster, self.worker = cluster, worker
        self.config = cluster.provider.lxc_path / cluster.provider.container_name(worker) / "config"
        self.original = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        """The config file's inode and time: a new file may reuse the old inode number."""
        try:
            found = self.config.stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns

    def reached(self, step: str) -> bool:
        if step == "node deleted":
            return self.worker not in self.cluster.nodes()
        identity = self._identity()
        if step == "host removed":
            return identity != self.original
        replaced = identity not in (None, self.original)
        running = replaced and self.cluster.provider.state(self.worker) == "RUNNING"
        if step == "replacement created":
            return running
        return running and self.cluster.runs(self.worker, "kubeadm join")


@pytest.mark.parametrize("step", HealProgress.STEPS)
def test_a_heal_killed_at_each_step_converges_when_run_again(healthy, step):
    """The heal's process is killed (as a closed terminal or a crashed orchestrator would)
    right after the step; the same heal run again finishes the job, a third finds nothing."""
    worker = healthy.workers()[0]
    instance = healthy.instance_id(worker)
    address = healthy.instances()[worker]["runtime_properties"]["host"]["address"]
    before = healthy.nodes()
    healthy.provider.power_off(worker)
    heal = healthy.start_heal(worker)
    progress = HealProgress(healthy, worker)
    try:
        wait_for(lambda: progress.reached(step), f"the heal's step: {step}", 180, interval=0.05)
    finally:
        os.killpg(heal.pid, signal.SIGKILL)
        heal.wait()

    # the instance is still found by its Node name, and check_cluster shows it
    assert healthy.instance_id(worker) == instance
    check = healthy.run("check_cluster")
    assert instance in check.stdout + check.stderr
    healthy.heal(worker)
    healthy.wait("every Node Ready", healthy.all_ready)
    assert_replaced(healthy, worker, before, address)
    again = healthy.heal(worker)
    assert "is healthy" in again.stdout + again.stderr
    assert bootstrap_tokens(healthy.kubeconfig) == []  # none left by the killed join


def test_auto_heal_refuses_when_too_many_workers_fail_and_heals_one(healthy, capsys):
    first, second, _ = healthy.workers()
    before = healthy.nodes()
    address = healthy.instances()[first]["runtime_properties"]["host"]["address"]
    for worker in (first, second):
        healthy.provider.power_off(worker)
    # the control plane notices (node_monitor_grace_period): a Node Ready now is one that reported
    down = (first, second)
    healthy.wait("both Nodes not Ready", lambda: all(not_ready(healthy, w) for w in down))

    refused = healthy.run("auto_heal", "unhealthy_threshold=0", check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "2 of 3 workers are unhealthy" in output and "network partition" in output
    assert {healthy.provider.state(w) for w in (first, second)} == {"STOPPED"}
    assert healthy.nodes().keys() == before.keys()

    healthy.provider.create_host(second)  # that machine comes back by itself
    healthy.wait(f"{second} Ready", lambda: healthy.nodes()[second]["ready"] == "True")

    started = time.monotonic()
    healthy.run("auto_heal", "unhealthy_threshold=0", f"pod_eviction_grace_period={GRACE}")
    healthy.wait("every Node Ready", healthy.all_ready)
    with capsys.disabled():
        print(f"\nauto_heal of 1 of 3 workers: {time.monotonic() - started:.1f} s")
    assert_replaced(healthy, first, {**before, second: healthy.nodes()[second]}, address)


def bootstrap_tokens(kubeconfig: str) -> list[str]:
    secrets = json.loads(kubectl(kubeconfig, "get", "secrets", "-n", "kube-system", "-o", "json"))
    return [s["metadata"]["name"] for s in secrets["items"] if "bootstrap" in s["type"]]


def not_ready(cluster, name: str) -> bool:
    return cluster.nodes()[name]["ready"] != "True"


def assert_replaced(cluster, name: str, before: dict, address: str) -> None:
    """A new Node of the same name and address, the other Nodes untouched, the pods back."""
    nodes = cluster.nodes()
    assert set(nodes) == set(before), "a Node was added, or one of the old host left behind"
    assert nodes[name]["uid"] != before[name]["uid"]
    for other in set(before) - {name}:
        assert nodes[other]["uid"] == before[other]["uid"]
    assert cluster.instances()[name]["runtime_properties"]["host"]["address"] == address
    assert cluster.provider.state(name) == "RUNNING"
    cluster.wait("the Deployment running", cluster.web_running)
