"""Rendered configuration files, parsed back and checked field by field."""

import jinja2
import pytest
import tomllib
import yaml

from k8s_cluster import node
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
    token="abcdef.0123456789abcdef",
    token_ttl="15m",
    token_description="init",
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
    containerd = tomllib.loads(render("containerd-config.toml.j2", sandbox_image="pause:3.10"))
    assert containerd["version"] == 2
    cri = containerd["plugins"]["io.containerd.grpc.v1.cri"]
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert cri["sandbox_image"] == "pause:3.10"


def test_join_configuration_fields():
    text = render(
        "kubeadm-join.yaml.j2",
        api_endpoint="10.77.0.10:6443",
        token="abcdef.0123456789abcdef",
        ca_cert_hash="sha256:" + "a" * 64,
        node_name="worker-x1",
        cri_socket=node.CRI_SOCKET,
        address="10.77.0.11",
    )
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
