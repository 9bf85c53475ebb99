"""install -> a real cluster (its control plane in containers, pods answering HTTP through a
NodePort, DNS, pod-to-pod traffic across nodes) -> converge -> refuse a blind re-install ->
uninstall, through cfy."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from k8s_cluster.hosts.local import LocalProvider
from tests.testbed import (
    KUBERNETES_VERSION,
    SUBNET,
    get_json,
    host_traces,
    kubectl,
    on_host,
    workload_manifest,
)

BLUEPRINT = "blueprints/k8s-cluster.yaml"
DEPLOYMENT = "k8s"


@pytest.fixture(scope="module")
def cluster(cfy, inputs_file):
    """One cluster of 1 control plane + 2 workers for the tests of this module."""
    try:
        result = cfy("install", BLUEPRINT, "-b", DEPLOYMENT, "-i", str(inputs_file))
        print(f"\ninstall of 1 control plane + 2 workers: {result.seconds:.1f} s wall time")
        yield cfy.outputs(DEPLOYMENT)
    finally:
        cfy.tear_down(DEPLOYMENT)


def node_table(kubeconfig: str) -> dict[str, dict]:
    nodes = json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json"))["items"]
    table = {}
    for item in nodes:
        ready = next(c["status"] for c in item["status"]["conditions"] if c["type"] == "Ready")
        roles = sorted(
            k.split("/", 1)[1] for k in item["metadata"]["labels"] if k.startswith("node-role")
        )
        table[item["metadata"]["name"]] = {"ready": ready, "roles": roles}
    return table


def test_install_gives_ready_nodes_with_roles_and_correct_outputs(cluster, cfy):
    kubeconfig = cluster["kubeconfig_path"]
    assert Path(kubeconfig).stat().st_mode & 0o777 == 0o600
    table = node_table(kubeconfig)
    control_plane = cluster["control_plane_node"]
    workers = cluster["worker_nodes"]
    assert len(workers) == 2
    assert table == {
        control_plane["name"]: {"ready": "True", "roles": ["control-plane"]},
        workers[0]["name"]: {"ready": "True", "roles": ["worker"]},
        workers[1]["name"]: {"ready": "True", "roles": ["worker"]},
    }
    assert cluster["api_endpoint"] == f"https://{control_plane['address']}:6443"
    # kubectl on this machine reaches the API through the endpoint in the outputs
    server = json.loads(kubectl(kubeconfig, "version", "-o", "json"))["serverVersion"]
    assert server["gitVersion"] == f"v{KUBERNETES_VERSION}"


def test_the_pod_network_starts_at_the_first_try_on_every_node(cluster):
    """flannel talks to the API server at its own address, not through the Service address
    kube-proxy programs later: no flannel pod failed and restarted while its node came up."""
    listed = kubectl(cluster["kubeconfig_path"], "get", "pods", "-n", "kube-flannel", "-o", "json")
    pods = json.loads(listed)["items"]
    assert len(pods) == 3
    address = cluster["control_plane_node"]["address"]
    for pod in pods:
        flannel = next(c for c in pod["spec"]["containers"] if c["name"] == "kube-flannel")
        assert {"name": "KUBERNETES_SERVICE_HOST", "value": address} in flannel["env"]
        restarts = {s["name"]: s["restartCount"] for s in pod["status"]["containerStatuses"]}
        assert restarts == {"kube-flannel": 0}, (pod["spec"]["nodeName"], restarts)


def test_every_node_runs_the_bundles_kubelet_on_containerd_2(cluster, bundle):
    nodes = json.loads(kubectl(cluster["kubeconfig_path"], "get", "nodes", "-o", "json"))["items"]
    runtimes = {n["status"]["nodeInfo"]["containerRuntimeVersion"] for n in nodes}
    kubelets = {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}
    assert runtimes == {f"containerd://{bundle.summary['packages']['containerd'].split('-')[0]}"}
    assert kubelets == {f"v{KUBERNETES_VERSION}"}


def test_the_control_plane_runs_as_containers(cluster, cfy):
    provider = LocalProvider(DEPLOYMENT, cfy.state_dir / DEPLOYMENT, subnet=SUBNET)
    name = cluster["control_plane_node"]["name"]
    listing = on_host(provider.lxc_path, provider.container_name(name), "crictl ps -o json")
    running = {
        c["metadata"]["name"]
        for c in json.loads(listing)["containers"]
        if c["state"] == "CONTAINER_RUNNING"
    }
    assert {"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler"} <= running


def test_pods_answer_through_a_node_port_resolve_services_and_reach_each_other(
    cluster, bundle, tmp_path
):
    kubeconfig = cluster["kubeconfig_path"]
    manifest = tmp_path / "web.json"
    manifest.write_text(
        json.dumps(workload_manifest("web", bundle.test_image, replicas=2, spread=True))
    )
    kubectl(kubeconfig, "apply", "-f", str(manifest))
    kubectl(
        kubeconfig,
        "expose",
        "deployment",
        "web",
        "--type=NodePort",
        "--port=80",
        "--target-port=8080",
    )
    kubectl(kubeconfig, "rollout", "status", "deployment/web", "--timeout=120s")
    service = json.loads(kubectl(kubeconfig, "get", "service", "web", "-o", "json"))
    port = service["spec"]["ports"][0]["nodePort"]
    pods = json.loads(kubectl(kubeconfig, "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    names = {p["metadata"]["name"] for p in pods}

    # from this machine, through kube-proxy on every node, to the pods wherever they run
    addresses = [cluster["control_plane_node"]["address"]] + [
        w["address"] for w in cluster["worker_nodes"]
    ]
    answered: set[str] = set()
    deadline = time.monotonic() + 60  # kube-proxy balances each connection at random
    while answered != names and time.monotonic() < deadline:
        for address in addresses:
            answered.add(get_json(f"http://{address}:{port}/")["hostname"])
    assert answered == names

    # CoreDNS resolves the Service's name to its cluster IP, inside a pod
    first, second = pods
    resolved = kubectl(
        kubeconfig,
        "exec",
        first["metadata"]["name"],
        "--",
        "/testapp",
        "resolve",
        "web.default.svc.cluster.local",
    )
    assert resolved.split() == [service["spec"]["clusterIP"]]
    # the two pods run on different workers and reach each other over the pod network
    assert first["spec"]["nodeName"] != second["spec"]["nodeName"]
    kubectl(
        kubeconfig,
        "exec",
        first["metadata"]["name"],
        "--",
        "/testapp",
        "dial",
        f"{second['status']['podIP']}:8080",
    )
    kubectl(kubeconfig, "delete", "service,deployment", "web")


def test_every_join_token_is_gone_after_install(cluster):
    secrets = json.loads(
        kubectl(cluster["kubeconfig_path"], "get", "secrets", "-n", "kube-system", "-o", "json")
    )["items"]
    tokens = [
        s["metadata"]["name"] for s in secrets if s["type"] == "bootstrap.kubernetes.io/token"
    ]
    assert tokens == []


def test_no_secret_reaches_cfys_events(cluster, cfy):
    transcript = "\n".join(cfy.transcript)
    kubeconfig = Path(cluster["kubeconfig_path"]).read_text()
    client_key = re.search(r"client-key-data: (\S+)", kubeconfig).group(1)
    assert client_key not in transcript
    assert not re.search(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b", transcript), "a bootstrap token leaked"
    assert "PRIVATE KEY" not in transcript
    events = cfy("events", "list", "--tail", "-b", DEPLOYMENT, check=False)
    assert client_key not in events.stdout


def test_install_workflow_again_converges_without_change(cluster, cfy):
    before = node_table(cluster["kubeconfig_path"])
    cfy("executions", "start", "install", "-b", DEPLOYMENT)
    assert cfy.outputs(DEPLOYMENT) == cluster
    assert node_table(cluster["kubeconfig_path"]) == before


def test_blind_reinstall_refuses_instead_of_orphaning_hosts(cluster, cfy, inputs_file):
    before = host_traces(cfy.state_dir, DEPLOYMENT)["containers"]
    result = cfy("install", BLUEPRINT, "-b", DEPLOYMENT, "-i", str(inputs_file), check=False)
    assert result.returncode != 0
    assert "already has hosts" in result.stdout + result.stderr
    assert host_traces(cfy.state_dir, DEPLOYMENT)["containers"] == before
    # cfy dropped the old deployment's state, so the user uninstalls what the message names:
    cfy("uninstall", "-b", DEPLOYMENT)
    hosts = [cluster["control_plane_node"]["name"]] + [w["name"] for w in cluster["worker_nodes"]]
    assert host_traces(cfy.state_dir, DEPLOYMENT, hosts) == {
        "containers": [],
        "links": [],
        "nat_rules": [],
        "state": [],
    }
