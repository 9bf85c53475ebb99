"""Rendered configuration files, parsed back and checked field by field."""

import dataclasses

import jinja2
import pytest
import tomllib
import yaml

from k8s_cluster import node
from k8s_cluster.images import Archive, ImageBundle
from k8s_cluster.inputs import validate
from k8s_cluster.render import render

INIT_VALUES = dict(
    node_name="cp-abc123",
    address="10.77.0.10",
    api_port=6443,
    cri_socket=node.CRI_SOCKET,
    cluster_name="k8s",
    kubernetes_version="v1.36.2",
    pod_cidr="10.244.0.0/16",
    service_cidr="10.96.0.0/12",
    cert_sans=["10.77.0.10", "cp-abc123"],
    node_monitor_grace_period="40s",
    node_lease_seconds=40,
    token="abcdef.0123456789abcdef",
    token_ttl="15m",
    token_description="init",
    image_pull_policy="IfNotPresent",
    ignore_preflight_errors=[],
    patches_dir=node.PATCHES_DIR,
    container_hosts=False,
    dns_image_tag=None,
    etcd_image_tag=None,
)

JOIN_VALUES = dict(
    api_endpoint="10.77.0.10:6443",
    token="abcdef.0123456789abcdef",
    ca_cert_hash="sha256:" + "a" * 64,
    node_name="worker-x1",
    cri_socket=node.CRI_SOCKET,
    address="10.77.0.11",
    image_pull_policy="IfNotPresent",
    ignore_preflight_errors=[],
    patches_dir=node.PATCHES_DIR,
)


def documents(text: str) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}


def test_init_configuration_fields():
    docs = documents(render("kubeadm-init.yaml.j2", **INIT_VALUES))
    init = docs["InitConfiguration"]
    assert init["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    token = init["bootstrapTokens"][0]
    assert token["token"] == "abcdef.0123456789abcdef"
    assert token["ttl"] == "15m"
    assert token["usages"] == ["signing", "authentication"]
    assert token["groups"] == ["system:bootstrappers:kubeadm:default-node-token"]
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.77.0.10", "bindPort": 6443}
    registration = init["nodeRegistration"]
    assert registration["name"] == "cp-abc123"
    assert registration["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.77.0.10"}]
    assert registration["imagePullPolicy"] == "IfNotPresent"
    assert "ignorePreflightErrors" not in registration
    assert init["patches"] == {"directory": "/var/lib/k8s-cluster/kubeadm-patches"}


def test_cluster_configuration_fields():
    cluster = documents(render("kubeadm-init.yaml.j2", **INIT_VALUES))["ClusterConfiguration"]
    assert cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cluster["kubernetesVersion"] == "v1.36.2"
    assert cluster["clusterName"] == "k8s"
    assert cluster["controlPlaneEndpoint"] == "10.77.0.10:6443"
    assert cluster["networking"] == {
        "podSubnet": "10.244.0.0/16",
        "serviceSubnet": "10.96.0.0/12",
        "dnsDomain": "cluster.local",
    }
    assert cluster["apiServer"]["certSANs"] == ["10.77.0.10", "cp-abc123"]
    assert cluster["controllerManager"]["extraArgs"] == [
        {"name": "node-monitor-grace-period", "value": "40s"}
    ]


def test_kubelet_uses_the_systemd_cgroup_driver_like_containerd():
    kubelet = documents(render("kubeadm-init.yaml.j2", **INIT_VALUES))["KubeletConfiguration"]
    assert kubelet["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert kubelet["cgroupDriver"] == "systemd"
    containerd = tomllib.loads(
        render(
            "containerd-config.toml.j2", sandbox_image="pause:3.10", restrict_oom_score_adj=False
        )
    )
    assert containerd["version"] == 3
    runtime = containerd["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["containerd"]["default_runtime_name"] == "runc"
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    images = containerd["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == "pause:3.10"


def test_join_configuration_fields():
    text = render("kubeadm-join.yaml.j2", **JOIN_VALUES)
    join = documents(text)["JoinConfiguration"]
    assert join["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert join["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "10.77.0.10:6443",
        "token": "abcdef.0123456789abcdef",
        "caCertHashes": ["sha256:" + "a" * 64],
    }
    assert join["nodeRegistration"]["name"] == "worker-x1"
    assert join["nodeRegistration"]["kubeletExtraArgs"] == [
        {"name": "node-ip", "value": "10.77.0.11"}
    ]
    assert join["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert join["nodeRegistration"]["imagePullPolicy"] == "IfNotPresent"
    assert "ignorePreflightErrors" not in join["nodeRegistration"]
    assert join["patches"] == {"directory": "/var/lib/k8s-cluster/kubeadm-patches"}


def test_values_with_yaml_specials_stay_strings():
    values = dict(INIT_VALUES, cluster_name="k8s: prod # yes", token_description="a\nb")
    docs = documents(render("kubeadm-init.yaml.j2", **values))
    assert docs["ClusterConfiguration"]["clusterName"] == "k8s: prod # yes"
    assert docs["InitConfiguration"]["bootstrapTokens"][0]["description"] == "a\nb"


def test_host_files():
    modules = render("kubernetes-modules.conf.j2", modules=node.KERNEL_MODULES)
    assert [line for line in modules.splitlines() if not line.startswith("#")] == [
        "overlay",
        "br_netfilter",
    ]
    sysctl = render("kubernetes-sysctl.conf.j2", sysctls=node.SYSCTLS)
    pairs = dict(line.replace(" ", "").split("=") for line in sysctl.splitlines() if "=" in line)
    assert pairs == node.SYSCTLS
    source = render(
        "kubernetes-apt.list.j2",
        uri="https://pkgs.k8s.io/core:/stable:/v1.36/deb/",
        keyring="/etc/apt/keyrings/k.asc",
    )
    assert source.splitlines()[-1] == (
        "deb [signed-by=/etc/apt/keyrings/k.asc] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /"
    )


def test_missing_value_is_an_error_not_an_empty_field():
    values = dict(INIT_VALUES)
    del values["pod_cidr"]
    with pytest.raises(jinja2.UndefinedError):
        render("kubeadm-init.yaml.j2", **values)


# --- Image pull policy, preflight checks, patches, container hosts -------------------------------


def init_docs(**changes: object) -> dict[str, dict]:
    return documents(render("kubeadm-init.yaml.j2", **dict(INIT_VALUES, **changes)))


def join_registration(**changes: object) -> dict:
    text = render("kubeadm-join.yaml.j2", **dict(JOIN_VALUES, **changes))
    return documents(text)["JoinConfiguration"]["nodeRegistration"]


@pytest.mark.parametrize("policy", ["Never", "IfNotPresent"])
def test_image_pull_policy_is_rendered_as_given(policy: str) -> None:
    registration = init_docs(image_pull_policy=policy)["InitConfiguration"]["nodeRegistration"]
    assert registration["imagePullPolicy"] == policy
    assert join_registration(image_pull_policy=policy)["imagePullPolicy"] == policy


def test_image_pull_policy_follows_the_image_bundle() -> None:
    spec = validate({})
    assert node.image_pull_policy(spec) == "IfNotPresent"
    bundle = ImageBundle("/b", True, (Archive("registry.k8s.io/pause:3.10.2", "p.tar"),))
    with_bundle = dataclasses.replace(spec, image_bundle=bundle)
    assert node.image_pull_policy(with_bundle) == "Never"
    registration = init_docs(image_pull_policy=node.image_pull_policy(with_bundle))[
        "InitConfiguration"
    ]["nodeRegistration"]
    assert registration["imagePullPolicy"] == "Never"


def test_ignored_preflight_errors_only_when_given() -> None:
    registration = init_docs()["InitConfiguration"]["nodeRegistration"]
    assert "ignorePreflightErrors" not in registration
    checks = ["SystemVerification", "Swap"]
    registration = init_docs(ignore_preflight_errors=checks)["InitConfiguration"][
        "nodeRegistration"
    ]
    assert registration["ignorePreflightErrors"] == checks
    # The list sits in nodeRegistration, beside the other fields, not in place of them.
    assert registration["name"] == "cp-abc123"
    assert registration["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.77.0.10"}]
    assert "ignorePreflightErrors" not in join_registration()
    assert join_registration(ignore_preflight_errors=checks)["ignorePreflightErrors"] == checks


def test_patches_directory_is_rendered_as_given() -> None:
    docs = init_docs(patches_dir="/srv/patches dir")
    assert docs["InitConfiguration"]["patches"] == {"directory": "/srv/patches dir"}
    join = documents(render("kubeadm-join.yaml.j2", **dict(JOIN_VALUES, patches_dir="/p")))
    assert join["JoinConfiguration"]["patches"] == {"directory": "/p"}


def test_kube_proxy_configuration_only_for_container_hosts() -> None:
    assert set(init_docs(container_hosts=False)) == {
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
    }
    docs = init_docs(container_hosts=True)
    assert set(docs) == {
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    }
    proxy = docs["KubeProxyConfiguration"]
    assert proxy["apiVersion"] == "kubeproxy.config.k8s.io/v1alpha1"
    assert proxy["conntrack"] == {"maxPerCore": 0, "min": 0}
    # The documents before it are unchanged by it.
    assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert docs["ClusterConfiguration"]["clusterName"] == "k8s"


@pytest.mark.parametrize(
    "name", ["image_pull_policy", "ignore_preflight_errors", "patches_dir", "container_hosts"]
)
def test_every_new_init_value_is_required(name: str) -> None:
    values = dict(INIT_VALUES)
    del values[name]
    with pytest.raises(jinja2.UndefinedError, match=name):
        render("kubeadm-init.yaml.j2", **values)


@pytest.mark.parametrize("name", ["image_pull_policy", "ignore_preflight_errors", "patches_dir"])
def test_every_new_join_value_is_required(name: str) -> None:
    values = dict(JOIN_VALUES)
    del values[name]
    with pytest.raises(jinja2.UndefinedError, match=name):
        render("kubeadm-join.yaml.j2", **values)


# --- Kubelet node patch ------------------------------------------------------------------------

CONTAINER_SETTINGS = {
    "failSwapOn": False,
    "imageGCHighThresholdPercent": 100,
    "evictionHard": {
        "nodefs.available": "0%",
        "nodefs.inodesFree": "0%",
        "imagefs.available": "0%",
    },
    "localStorageCapacityIsolation": False,
}


def node_patch(cgroup_v1: bool, in_container: bool) -> dict:
    text = render("kubelet-node-patch.yaml.j2", cgroup_v1=cgroup_v1, in_container=in_container)
    return yaml.safe_load(text) or {}


def test_kubelet_patch_is_empty_of_settings_on_a_cgroup_v2_machine() -> None:
    text = render("kubelet-node-patch.yaml.j2", cgroup_v1=False, in_container=False)
    assert yaml.safe_load(text) is None
    assert all(line.startswith("#") for line in text.splitlines() if line.strip())


def test_kubelet_patch_accepts_cgroup_v1_only_on_cgroup_v1() -> None:
    assert node_patch(cgroup_v1=True, in_container=False) == {"failCgroupV1": False}
    assert "failCgroupV1" not in node_patch(cgroup_v1=False, in_container=True)


def test_kubelet_patch_has_the_container_settings_only_in_containers() -> None:
    assert node_patch(cgroup_v1=False, in_container=True) == CONTAINER_SETTINGS
    assert node_patch(cgroup_v1=True, in_container=True) == {
        "failCgroupV1": False,
        **CONTAINER_SETTINGS,
    }
    for key in CONTAINER_SETTINGS:
        assert key not in node_patch(cgroup_v1=True, in_container=False)


# --- containerd ----------------------------------------------------------------------------------


def containerd_config(sandbox_image: str, restrict: bool) -> dict:
    return tomllib.loads(
        render(
            "containerd-config.toml.j2",
            sandbox_image=sandbox_image,
            restrict_oom_score_adj=restrict,
        )
    )


def test_containerd_config_pins_the_sandbox_image_as_given() -> None:
    config = containerd_config('registry.example.com:5000/pause:3.10.2 "x"', restrict=False)
    assert config["version"] == 3
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"] == {"sandbox": 'registry.example.com:5000/pause:3.10.2 "x"'}


def test_containerd_restricts_oom_scores_only_when_asked() -> None:
    plain = containerd_config("registry.k8s.io/pause:3.10.2", restrict=False)
    assert "restrict_oom_score_adj" not in plain["plugins"]["io.containerd.cri.v1.runtime"]
    restricted = containerd_config("registry.k8s.io/pause:3.10.2", restrict=True)
    runtime = restricted["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    for config in (plain, restricted):
        assert config["version"] == 3
        runc = config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
        assert runc["options"] == {"SystemdCgroup": True}
        assert runc["runtime_type"] == "io.containerd.runc.v2"


def test_dns_and_etcd_image_tags_only_when_given() -> None:
    plain = documents(render("kubeadm-init.yaml.j2", **INIT_VALUES))["ClusterConfiguration"]
    assert "dns" not in plain and "etcd" not in plain
    values = {**INIT_VALUES, "dns_image_tag": "v1.14.3", "etcd_image_tag": "3.6.8-0"}
    cluster = documents(render("kubeadm-init.yaml.j2", **values))["ClusterConfiguration"]
    assert cluster["dns"] == {"imageTag": "v1.14.3"}
    assert cluster["etcd"] == {"local": {"imageTag": "3.6.8-0"}}


@pytest.mark.parametrize(("grace", "lease"), [("10s", 10), ("25s", 25), ("40s", 40), ("2m", 40)])
def test_the_node_lease_fits_the_grace_period_four_times(grace, lease):
    assert node.node_lease_seconds(grace) == lease
    values = dict(INIT_VALUES, node_monitor_grace_period=grace, node_lease_seconds=lease)
    kubelet = documents(render("kubeadm-init.yaml.j2", **values))["KubeletConfiguration"]
    assert kubelet["nodeLeaseDurationSeconds"] == lease
