"""The YAML subset kubeadm and kubelet read on hosts without PyYAML."""

from __future__ import annotations

import pytest

from kube_sim.common import yamlsubset
from kube_sim.common.yamlsubset import YAMLError

INIT_CONFIG = """\
# rendered by the product
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: "abcdef.0123456789abcdef"   # redacted in logs
  ttl: 24h0m0s
  usages: [signing, authentication]
  groups:
    - system:bootstrappers:kubeadm:default-node-token
  description: 'it''s the init token'
localAPIEndpoint:
  advertiseAddress: 10.0.3.5
  bindPort: 6443
nodeRegistration:
  name: cp-0
  criSocket: unix:///var/run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
  - name: node-labels
    value: "topology.kubernetes.io/zone=a,example.com/tier=cp"
  - {name: node-ip, value: 10.0.3.5}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
controlPlaneEndpoint: "10.0.3.5:6443"
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  certSANs:
  - 127.0.0.1
  - k8s.example.com
controllerManager:
  extraArgs:
    - name: node-monitor-grace-period
      value: 40s
featureGates: {}
...
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failSwapOn: false
maxPods: 110
"""

KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi==
    server: https://10.0.3.5:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
"""


def test_kubeadm_init_config_documents() -> None:
    docs = yamlsubset.load_all(INIT_CONFIG)
    assert [d["kind"] for d in docs] == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
    ]
    init, cluster, kubelet = docs
    token = init["bootstrapTokens"][0]
    assert token["token"] == "abcdef.0123456789abcdef"
    assert token["usages"] == ["signing", "authentication"]
    assert token["groups"] == ["system:bootstrappers:kubeadm:default-node-token"]
    assert token["description"] == "it's the init token"
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.0.3.5", "bindPort": 6443}
    assert init["nodeRegistration"]["taints"] == []
    assert init["nodeRegistration"]["kubeletExtraArgs"][1] == {
        "name": "node-ip",
        "value": "10.0.3.5",
    }
    assert cluster["controllerManager"]["extraArgs"] == [
        {"name": "node-monitor-grace-period", "value": "40s"}
    ]
    assert cluster["featureGates"] == {}
    assert cluster["apiServer"]["certSANs"] == ["127.0.0.1", "k8s.example.com"]
    assert kubelet["failSwapOn"] is False and kubelet["maxPods"] == 110


def test_matches_pyyaml_on_realistic_documents() -> None:
    yaml = pytest.importorskip("yaml")
    for text in (INIT_CONFIG, KUBECONFIG):
        expected = [d for d in yaml.safe_load_all(text) if d is not None]
        assert yamlsubset.load_all(text) == expected


def test_kubeconfig_compact_sequences() -> None:
    doc = yamlsubset.load(KUBECONFIG)
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.3.5:6443"
    assert doc["users"][0]["user"]["client-key-data"] == "a2V5"
    assert doc["preferences"] == {}


def test_scalars_and_block_scalars() -> None:
    doc = yamlsubset.load(
        'a: ~\nb: null\nc: true\nd: "true"\ne: 0x1f\nf: 1.5\ng: -3\nh: 08\n'
        "i: |\n  line1\n    line2\n\n  line3\nj: >-\n  folded\n  text\nk: 'x: y'\n"
        'l: "tab\\tand \\u00e9"\nm:\n'
    )
    assert doc == {
        "a": None,
        "b": None,
        "c": True,
        "d": "true",
        "e": 31,
        "f": 1.5,
        "g": -3,
        "h": 8,
        "i": "line1\n  line2\n\nline3\n",
        "j": "folded text",
        "k": "x: y",
        "l": "tab\tand \u00e9",
        "m": None,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &anchor 1\n", "unsupported"),
        ("a: *alias\n", "unsupported"),
        ("a: !!str 1\n", "unsupported"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("a:\n\tb: 1\n", "tabs"),
        ("a: [1, [2]]\n", "nested flow"),
        ("a: [1, 2\n", "unterminated flow"),
        ('a: "open\n', "unterminated quoted"),
        ("a: b\n  c\n", "multi-line"),
        ("a: b: c\n", "':'"),
        ("? complex\n", "complex mapping keys"),
        ("%YAML 1.2\n---\na: 1\n", "directives"),
        ("a:\n  - 1\n  b: 2\n", "unexpected indentation"),
        ("just a scalar\n", "expected a mapping"),
        ("a: 1\n b: 2\n", "multi-line"),
    ],
)
def test_rejections_name_the_line(text: str, message: str) -> None:
    with pytest.raises(YAMLError) as info:
        yamlsubset.load_all(text, "cfg.yaml")
    assert message in str(info.value)
    assert "cfg.yaml: line" in str(info.value) or "line" in str(info.value)


def test_dump_round_trips() -> None:
    value = {
        "apiVersion": "v1",
        "kind": "Config",
        "empty_list": [],
        "empty_map": {},
        "none": None,
        "tricky": ["true", "1.5", "", " lead", "a: b", "x #y", "-dash", "multi\nline", "é"],
        "numbers": [0, -1, 2.5, True, False],
        "nested": [{"a": [1, {"b": []}], "c": "d"}, [["x"]]],
    }
    text = yamlsubset.dump(value)
    assert yamlsubset.load(text) == value
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(text) == value


def test_multiple_documents_dump_all() -> None:
    docs = [{"a": 1}, {"b": [1, 2]}]
    assert yamlsubset.load_all(yamlsubset.dump_all(docs)) == docs


def test_single_document_load_rejects_streams() -> None:
    with pytest.raises(YAMLError, match="single YAML document"):
        yamlsubset.load("a: 1\n---\nb: 2\n")
    assert yamlsubset.load("# only a comment\n") is None
