"""scale through cfy in local mode: out and in, PodDisruptionBudgets held, blocked drains stop
cleanly, a failed scale-out rolls back, and every join uses a fresh token."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import threading
import time

import pytest
import yaml
from kubernetes import client, config

from tests.testbed import SUBNET, create_object, keepsake_pod, kubectl

BLUEPRINT = "blueprints/k8s-cluster.yaml"
DEPLOYMENT = "k8s-scale"
APP = {"app": "web"}


@pytest.fixture(scope="module")
def cluster(cfy, inputs_file, tmp_path_factory):
    inputs = yaml.safe_load(inputs_file.read_text())
    inputs["local_settings"]["boot_timeout"] = 30  # a host that never answers fails soon
    path = tmp_path_factory.mktemp("scale") / "inputs.yaml"
    path.write_text(yaml.safe_dump(inputs))
    try:
        cfy("install", BLUEPRINT, "-b", DEPLOYMENT, "-i", str(path))
        yield cfy.outputs(DEPLOYMENT)["kubeconfig_path"]
    finally:
        cfy.tear_down(DEPLOYMENT)


def scale(cfy, delta: int, *params: str, check: bool = True):
    args = ["-p", "scalable_entity_name=workers", "-p", f"delta={delta}"]
    for param in params:
        args += ["-p", param]
    return cfy("executions", "start", "scale", "-b", DEPLOYMENT, *args, check=check)


def nodes(kubeconfig: str) -> dict[str, tuple[str, bool]]:
    """Node name -> (Ready status, unschedulable)."""
    items = json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json"))["items"]
    return {
        n["metadata"]["name"]: (
            next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"),
            bool(n["spec"].get("unschedulable")),
        )
        for n in items
    }


def workers_in_outputs(cfy) -> list[str]:
    return sorted(w["name"] for w in cfy.outputs(DEPLOYMENT)["worker_nodes"])


def bootstrap_tokens(kubeconfig: str) -> list[str]:
    secrets = json.loads(kubectl(kubeconfig, "get", "secrets", "-n", "kube-system", "-o", "json"))
    return [s["metadata"]["name"] for s in secrets["items"] if "bootstrap" in s["type"]]


def assert_cluster_matches_outputs(cfy, kubeconfig: str, worker_count: int) -> None:
    workers = workers_in_outputs(cfy)
    assert len(workers) == worker_count
    table = nodes(kubeconfig)
    assert sorted(name for name in table if name.startswith("worker-")) == workers
    assert all(ready == "True" and not cordoned for ready, cordoned in table.values()), table


def test_scale_out_2_to_4_joins_with_fresh_tokens(cfy, cluster):
    # install left no token behind: the new workers can only join with tokens made now
    assert bootstrap_tokens(cluster) == []
    result = scale(cfy, 2)
    print(f"\nscale-out +2 on a cluster of 2 workers: {result.seconds:.1f} s")
    assert_cluster_matches_outputs(cfy, cluster, 4)
    assert bootstrap_tokens(cluster) == []


def test_scale_in_4_to_1_keeps_the_disruption_budget(cfy, cluster, bundle):
    api = client.AppsV1Api(config.new_client_from_config(config_file=cluster))
    core = client.CoreV1Api(api.api_client)
    policy = client.PolicyV1Api(api.api_client)
    create_web(api, policy, bundle.test_image, replicas=4, min_available=3)
    wait_ready_pods(core, 4)
    samples: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_ready_pods, args=(core, samples, stop))
    sampler.start()
    try:
        scale(cfy, -3, "drain_timeout=120")
    finally:
        stop.set()
        sampler.join()
    assert_cluster_matches_outputs(cfy, cluster, 1)
    assert len(samples) > 10 and min(samples) >= 3, samples
    wait_ready_pods(core, 4)


def test_a_blocking_budget_stops_scale_in_and_changes_nothing(cfy, cluster):
    policy = client.PolicyV1Api(config.new_client_from_config(config_file=cluster))
    policy.patch_namespaced_pod_disruption_budget("web", "default", {"spec": {"minAvailable": 4}})
    before = workers_in_outputs(cfy)
    result = scale(cfy, -1, "drain_timeout=10", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "default/web-" in output, output[-3000:]
    assert workers_in_outputs(cfy) == before
    assert_cluster_matches_outputs(cfy, cluster, 1)  # still Ready, and uncordoned again
    policy.patch_namespaced_pod_disruption_budget("web", "default", {"spec": {"minAvailable": 3}})


def test_a_failed_scale_out_rolls_back_and_can_be_rerun(cfy, cluster):
    before_workers = workers_in_outputs(cfy)
    before_nodes = set(nodes(cluster))
    used = {w["address"] for w in cfy.outputs(DEPLOYMENT)["worker_nodes"]}
    used.add(cfy.outputs(DEPLOYMENT)["control_plane_node"]["address"])
    network = ipaddress.ip_network(SUBNET)
    next_address = next(str(a) for a in list(network.hosts())[9:] if str(a) not in used)
    rule = ["OUTPUT", "-d", next_address, "-p", "tcp", "--dport", "22", "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)  # the new host never answers SSH
    try:
        result = scale(cfy, 1, check=False)
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)
    assert result.returncode != 0
    assert "did not answer SSH" in result.stdout + result.stderr
    assert workers_in_outputs(cfy) == before_workers
    assert set(nodes(cluster)) == before_nodes
    containers = sorted(p.name for p in (cfy.state_dir / DEPLOYMENT / "lxc").iterdir())
    assert len(containers) == 1 + len(before_workers), containers
    scale(cfy, 1)  # the same command, once the fault is gone
    assert_cluster_matches_outputs(cfy, cluster, len(before_workers) + 1)


def test_scale_in_loses_a_bare_pod_or_emptydir_data_only_when_told(cfy, cluster, bundle, tmp_path):
    """As kubectl drain: refused by default with the pod named and nothing changed; each of
    force and delete_emptydir_data allows exactly its own loss."""
    worker = workers_in_outputs(cfy)[-1]
    instance = "worker_host_" + worker.split("-", 1)[1]
    create_object(cluster, keepsake_pod("keepsake", worker, bundle.test_image), tmp_path)
    before = workers_in_outputs(cfy)
    chosen = f"include_instances=[{instance}]"

    refused = scale(cfy, -1, chosen, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "default/keepsake: no controller manages it" in output, output[-3000:]
    assert "emptyDir volume(s) scratch" in output and "Nothing was changed" in output
    assert workers_in_outputs(cfy) == before
    assert_cluster_matches_outputs(cfy, cluster, len(before))  # not even cordoned

    forced = scale(cfy, -1, chosen, "force=true", check=False)
    output = forced.stdout + forced.stderr
    assert forced.returncode != 0 and "no controller manages it" not in output
    assert "emptyDir volume(s) scratch" in output, output[-3000:]
    assert workers_in_outputs(cfy) == before

    scale(cfy, -1, chosen, "force=true", "delete_emptydir_data=true")
    assert worker not in workers_in_outputs(cfy)
    assert_cluster_matches_outputs(cfy, cluster, len(before) - 1)
    assert "keepsake" not in kubectl(cluster, "get", "pods", "-o", "name")


# --- a workload with a disruption budget ------------------------------------------------------


def create_web(api, policy, image: str, replicas: int, min_available: int) -> None:
    container = client.V1Container(name="web", image=image)
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=APP),
        spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=1),
    )
    api.create_namespaced_deployment(
        "default",
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=APP),
                template=template,
            ),
        ),
    )
    policy.create_namespaced_pod_disruption_budget(
        "default",
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=min_available, selector=client.V1LabelSelector(match_labels=APP)
            ),
        ),
    )


def ready_pods(core) -> int:
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    return sum(
        1
        for pod in pods
        if not pod.metadata.deletion_timestamp
        and pod.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    )


def wait_ready_pods(core, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ready_pods(core) < count:
        assert time.monotonic() < deadline, f"fewer than {count} web pods Ready"
        time.sleep(0.5)


def sample_ready_pods(core, samples: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        samples.append(ready_pods(core))
        time.sleep(0.3)
