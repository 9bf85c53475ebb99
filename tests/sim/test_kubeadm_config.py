"""kubeadm config validation: strict fields, CIDRs, versions, defaults, and the CLI's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kube_sim.kubeadm_lib import config
from kube_sim.kubeadm_lib.config import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 15m
  description: first token
localAPIEndpoint:
  advertiseAddress: 10.0.3.5
  bindPort: 6443
nodeRegistration:
  name: cp-0
  kubeletExtraArgs:
  - name: node-labels
    value: topology.kubernetes.io/zone=a
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
controlPlaneEndpoint: k8s.example.com:6443
clusterName: rehearsal
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
  dnsDomain: cluster.local
apiServer:
  certSANs: [k8s.example.com, 192.0.2.10]
controllerManager:
  extraArgs:
  - name: node-monitor-grace-period
    value: 20s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"""

JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.3.5:6443
    token: abcdef.0123456789abcdef
    caCertHashes:
    - sha256:{hash}
nodeRegistration:
  name: w-1
  kubeletExtraArgs:
  - name: node-labels
    value: node.kubernetes.io/pool=workers
""".format(hash="a" * 64)


def init_settings(text: str) -> config.InitSettings:
    return config.init_settings(config.parse_documents(text, "test"))


def errors_of(text: str, join: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        docs = config.parse_documents(text, "test")
        if join:
            config.join_settings(docs)
        else:
            config.init_settings(docs)
    return "\n".join(info.value.messages)


def test_good_config_and_defaults() -> None:
    s = init_settings(GOOD)
    assert s.node.name == "cp-0"
    assert s.node.taints == [config.CONTROL_PLANE_TAINT]  # nil taints -> control-plane taint
    assert s.node.cri_socket == config.DEFAULT_CRI_SOCKET
    assert s.node.kubelet_extra_args == [("node-labels", "topology.kubernetes.io/zone=a")]
    assert s.tokens[0].token == "abcdef.0123456789abcdef"
    assert s.tokens[0].ttl == 900
    assert s.tokens[0].usages == ["signing", "authentication"]
    assert s.bind_port == 6443
    assert s.api_endpoint == "k8s.example.com:6443"
    assert s.first_service_ip == "10.96.0.1"
    assert s.cluster_dns_ip == "10.96.0.10"
    assert s.controller_manager_args["node-monitor-grace-period"] == "20s"
    assert s.cluster_configuration["networking"]["podSubnet"] == "10.244.0.0/16"
    assert s.cluster_configuration["clusterName"] == "rehearsal"
    assert s.kubelet_config["cgroupDriver"] == "systemd"


def test_defaults_without_tokens_or_grace_period() -> None:
    text = GOOD.replace(
        "bootstrapTokens:\n- token: abcdef.0123456789abcdef\n  ttl: 15m\n  description: first "
        "token\n",
        "",
    ).replace(
        "controllerManager:\n  extraArgs:\n  - name: node-monitor-grace-period\n    value: 20s\n",
        "",
    )
    s = init_settings(text)
    assert len(s.tokens) == 1 and s.tokens[0].ttl == 24 * 3600
    assert s.tokens[0].description.startswith("The default bootstrap token")
    assert s.controller_manager_args["node-monitor-grace-period"] == "40s"


def test_empty_taints_mean_none() -> None:
    s = init_settings(GOOD.replace("  name: cp-0\n", "  name: cp-0\n  taints: []\n"))
    assert s.node.taints == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  dnsDomain: cluster.local\n",
            "  dnsDomain: cluster.local\n  foo: bar\n",
            'unknown field "foo" in ClusterConfiguration.networking',
        ),
        (
            "  bindPort: 6443\n",
            "  bindPort: 6443\n  port: 1\n",
            'unknown field "port" in InitConfiguration.localAPIEndpoint',
        ),
        (
            "  description: first token\n",
            "  description: first token\n  secret: x\n",
            'unknown field "secret" in InitConfiguration.bootstrapTokens[0]',
        ),
        (
            "kind: KubeletConfiguration\n",
            "kind: KubeletConfiguration\nnotAField: 1\n",
            'unknown field "notAField" in KubeletConfiguration',
        ),
        (
            "podSubnet: 10.244.0.0/16",
            "podSubnet: 10.244.0.0/33",
            'networking.podSubnet: Invalid value: "10.244.0.0/33": couldn\'t parse subnet',
        ),
        (
            "podSubnet: 10.244.0.0/16",
            "podSubnet: banana",
            'networking.podSubnet: Invalid value: "banana"',
        ),
        (
            "serviceSubnet: 10.96.0.0/12",
            "serviceSubnet: 10.0.0.0/8",
            "specified service subnet is too large",
        ),
        (
            "podSubnet: 10.244.0.0/16",
            "podSubnet: 10.244.0.0/26",
            "smaller than the size of node subnet",
        ),
        (
            "kubernetesVersion: v1.36.2",
            "kubernetesVersion: banana",
            'couldn\'t parse Kubernetes version "banana"',
        ),
        (
            "kubernetesVersion: v1.36.2\n",
            "",
            "ClusterConfiguration.kubernetesVersion: Required value",
        ),
        (
            "kubernetesVersion: v1.36.2",
            "kubernetesVersion: v1.20.0",
            "only supports deploying clusters with the control plane version >= 1.35.0",
        ),
        (
            "kind: ClusterConfiguration",
            "kind: ClusterConfig",
            'no kind "ClusterConfig" is registered for version "kubeadm.k8s.io/v1beta4"',
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration",
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration",
            'unsupported apiVersion "kubeadm.k8s.io/v1beta3"',
        ),
        (
            "  bindPort: 6443",
            '  bindPort: "6443"',
            'localAPIEndpoint.bindPort: Invalid value: "6443": expected an integer',
        ),
        ("  bindPort: 6443", "  bindPort: 70000", "must be between 1 and 65535"),
        (
            "advertiseAddress: 10.0.3.5",
            "advertiseAddress: ten",
            'advertiseAddress: Invalid value: "ten": must be a valid IP address',
        ),
        ("token: abcdef.0123456789abcdef", "token: ABCDEF.0123456789abcdef", "was not of the form"),
        ("  ttl: 15m", "  ttl: forever", 'bootstrapTokens[0].ttl: Invalid value: "forever"'),
        ("  name: cp-0", "  name: CP_0", 'nodeRegistration.name: Invalid value: "CP_0"'),
        ("value: 20s", "value: soon", 'node-monitor-grace-period]: Invalid value: "soon"'),
        (
            "certSANs: [k8s.example.com, 192.0.2.10]",
            'certSANs: ["bad name!"]',
            'apiServer.certSANs[0]: Invalid value: "bad name!"',
        ),
    ],
)
def test_rejections_name_the_field(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    assert expected in errors_of(GOOD.replace(old, new, 1))


def test_yaml_errors_are_config_errors() -> None:
    assert "error converting YAML to JSON" in errors_of(GOOD + "bad: [unterminated\n")


def test_join_config() -> None:
    s = config.join_settings(config.parse_documents(JOIN, "join"))
    assert s.api_server_endpoint == "10.0.3.5:6443"
    assert s.discovery_token == s.tls_bootstrap_token == "abcdef.0123456789abcdef"
    assert s.ca_cert_hashes == ["sha256:" + "a" * 64]
    assert s.node.taints is None and s.node.name == "w-1"
    assert not s.control_plane


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    caCertHashes:\n    - sha256:" + "a" * 64 + "\n",
            "",
            "using token-based discovery without caCertHashes can be unsafe",
        ),
        ("sha256:" + "a" * 64, "sha1:abc", 'caCertHashes[0]: Invalid value: "sha1:abc"'),
        (
            "apiServerEndpoint: 10.0.3.5:6443",
            "apiServerEndpoint: 10.0.3.5",
            "missing port in address",
        ),
        ("    token: abcdef.0123456789abcdef\n", "", "the bootstrap token is required"),
        (
            "  bootstrapToken:",
            "  bootstrapTokens:",
            'unknown field "bootstrapTokens" in JoinConfiguration.discovery',
        ),
    ],
)
def test_join_rejections(old: str, new: str, expected: str) -> None:
    assert old in JOIN
    assert expected in errors_of(JOIN.replace(old, new, 1), join=True)


def test_flag_form_join_document() -> None:
    doc = config.join_document_from_flags(
        "10.0.3.5:6443",
        "abcdef.0123456789abcdef",
        None,
        None,
        ["sha256:" + "b" * 64],
        False,
        "w-2",
        None,
        False,
    )
    docs = config.Documents({"JoinConfiguration": doc}, [])
    s = config.join_settings(docs)
    assert s.node.name == "w-2" and s.ca_cert_hashes == ["sha256:" + "b" * 64]


def run_kubeadm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kube_sim.kubeadm", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_cli_config_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    proc = run_kubeadm("config", "validate", "--config", str(good))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    join = tmp_path / "join.yaml"
    join.write_text(JOIN)
    assert run_kubeadm("config", "validate", "--config", str(join)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("  dnsDomain: cluster.local\n", "  dnsDomain: x\n  foo: 1\n"))
    proc = run_kubeadm("config", "validate", "--config", str(bad))
    assert proc.returncode == 1
    assert 'unknown field "foo" in ClusterConfiguration.networking' in proc.stderr
    proc = run_kubeadm("config", "validate", "--config", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 1 and "unable to read config" in proc.stderr


def test_cli_version_and_unknown_flags() -> None:
    proc = run_kubeadm("version", "-o", "short")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("-sim")
    assert proc.stdout.strip().startswith("v1.")
    proc = run_kubeadm("version", "-o", "json")
    assert '"gitVersion": "v1.' in proc.stdout
    proc = run_kubeadm("init", "--no-such-flag")
    assert proc.returncode == 1 and "unknown flag: --no-such-flag" in proc.stderr
    proc = run_kubeadm("join", "--config", "x.yaml", "--token", "abcdef.0123456789abcdef")
    assert proc.returncode == 1 and "can not mix '--config' with arguments" in proc.stderr


def test_cli_images_and_certificate_key(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    listed = run_kubeadm("config", "images", "list", "--config", str(good))
    assert listed.returncode == 0
    assert "registry.k8s.io/kube-apiserver:v1.36.2" in listed.stdout.splitlines()
    pulled = run_kubeadm("config", "images", "pull", "--kubernetes-version", "v1.36.1")
    assert pulled.returncode == 0 and "Pulled registry.k8s.io/kube-proxy:v1.36.1" in pulled.stdout
    key = run_kubeadm("certs", "certificate-key")
    assert key.returncode == 0 and len(key.stdout.strip()) == 64
