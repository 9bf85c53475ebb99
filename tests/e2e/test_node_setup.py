"""What the suite set up on real hosts (the session's shared cluster, whose containerd and runc
come from release archives): containerd 2 from the release, configured with kubeadm's pause
image; the bundle's images imported and pinned; the kubelet and kube-proxy settings a
container host on cgroup v1 needs, and only those."""

from __future__ import annotations

import json

import pytest
import tomllib
import yaml

from k8s_cluster.hosts.local import LocalProvider
from tests.testbed import SHARED_DEPLOYMENT, SHARED_SUBNET, kubectl, on_host


@pytest.fixture(scope="module")
def run_on(shared_cluster, cfy):
    """A command on one of the shared cluster's hosts."""
    provider = LocalProvider(
        SHARED_DEPLOYMENT, cfy.state_dir / SHARED_DEPLOYMENT, subnet=SHARED_SUBNET
    )

    def run(host: str, command: str, check: bool = True) -> str:
        return on_host(provider.lxc_path, provider.container_name(host), command, check)

    return run


def hosts(cluster: dict) -> list[str]:
    return [cluster["control_plane_node"]["name"], *(w["name"] for w in cluster["worker_nodes"])]


def test_containerd_and_runc_come_from_the_release_archives(shared_cluster, run_on, bundle):
    containerd = bundle.summary["packages"]["containerd"].split("-")[0]
    runc = bundle.summary["packages"]["runc"].split("-")[0]
    for host in hosts(shared_cluster):
        assert f"v{containerd}" in run_on(host, "/usr/local/bin/containerd --version")
        assert run_on(host, "/usr/local/sbin/runc --version").startswith(f"runc version {runc}")
        assert run_on(host, "dpkg-query -W -f='${Status}' containerd", check=False) in (
            "",
            "unknown ok not-installed",
        )
        assert run_on(host, "systemctl is-active containerd").strip() == "active"


def test_containerd_runs_kubeadms_pause_image_and_keeps_oom_scores(shared_cluster, run_on):
    host = shared_cluster["control_plane_node"]["name"]
    config = tomllib.loads(run_on(host, "containerd config dump"))["plugins"]
    pause = run_on(host, "kubeadm config images list 2>/dev/null | grep /pause:").strip()
    assert pause.startswith("registry.k8s.io/pause:")
    assert config["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == pause
    runtime = config["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    # these hosts (LXC) lack CAP_SYS_RESOURCE: pods keep an OOM score containerd can set
    assert runtime["restrict_oom_score_adj"] is True
    info = json.loads(run_on(host, "crictl info -o json"))["config"]
    assert info["restrictOOMScoreAdj"] is True  # what the running CRI plugin took


def test_the_bundles_images_are_imported_and_pinned(shared_cluster, run_on, bundle):
    control_plane = shared_cluster["control_plane_node"]["name"]
    worker = shared_cluster["worker_nodes"][0]["name"]
    for host, expected in ((control_plane, set(bundle.summary["images"])), (worker, None)):
        listed = json.loads(run_on(host, "crictl images -o json"))["images"]
        pinned = {tag for image in listed if image.get("pinned") for tag in image["repoTags"]}
        if expected is not None:
            assert expected <= pinned
        else:  # a worker does not hold the control plane's images
            assert not any("kube-apiserver" in tag or "etcd" in tag for tag in pinned)
            assert any("kube-proxy" in tag for tag in pinned)


def test_kubelet_settings_of_a_container_host_on_cgroup_v1(shared_cluster, run_on):
    host = shared_cluster["worker_nodes"][0]["name"]
    cgroup_v1 = run_on(host, "stat -fc %T /sys/fs/cgroup").strip() != "cgroup2fs"
    config = yaml.safe_load(run_on(host, "cat /var/lib/kubelet/config.yaml"))
    assert config.get("failCgroupV1") is (False if cgroup_v1 else None)
    assert config["localStorageCapacityIsolation"] is False
    assert config["failSwapOn"] is False
    assert config["imageGCHighThresholdPercent"] == 100


def test_kube_proxy_leaves_the_machines_conntrack_table_alone(shared_cluster):
    kubeconfig = shared_cluster["kubeconfig_path"]
    configmap = json.loads(
        kubectl(kubeconfig, "get", "-n", "kube-system", "cm/kube-proxy", "-o=json")
    )
    settings = yaml.safe_load(configmap["data"]["config.conf"])
    assert settings["conntrack"]["maxPerCore"] == 0 and settings["conntrack"]["min"] == 0
