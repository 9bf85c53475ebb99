"""Unit tests of k8s_cluster.node: host facts and the node settings that follow from them.

The commands on a host are answered by a recording stand-in for the SSH session; everything
else (the templates, the facts, the spec) is the real thing.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest
import tomllib
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from k8s_cluster import node
from k8s_cluster.hosts import Host
from k8s_cluster.images import Archive, ImageBundle
from k8s_cluster.inputs import validate
from k8s_cluster.ssh import RemoteError, Result

PREPARE_OUTPUT = """\
Reading package lists...
W: Some index files failed to download: they have been ignored
kubelet set on hold.
installed: 1.37.2-1.1
cgroup: v2
container: none
lower-oom-score: yes
sandbox-image: registry.k8s.io/pause:3.10.2
"""

FACT_KEYS = ["installed", "cgroup", "container", "lower-oom-score", "sandbox-image"]


def facts(**changes: object) -> node.HostFacts:
    return dataclasses.replace(node.HostFacts.parse(PREPARE_OUTPUT), **changes)


# --- HostFacts ---------------------------------------------------------------------------------


def test_host_facts_are_parsed_from_the_last_lines() -> None:
    parsed = node.HostFacts.parse(PREPARE_OUTPUT)
    assert parsed == node.HostFacts(
        package_version="1.37.2-1.1",
        cgroup="v2",
        container="none",
        can_lower_oom_score=True,
        sandbox_image="registry.k8s.io/pause:3.10.2",
    )
    assert parsed.in_container is False


def test_host_facts_of_a_container_on_cgroup_v1() -> None:
    output = PREPARE_OUTPUT.replace("cgroup: v2", "cgroup: v1")
    output = output.replace("container: none", "container: lxc")
    output = output.replace("lower-oom-score: yes", "lower-oom-score: no")
    parsed = node.HostFacts.parse(output)
    assert (parsed.cgroup, parsed.container, parsed.can_lower_oom_score) == ("v1", "lxc", False)
    assert parsed.in_container is True


@pytest.mark.parametrize("key", FACT_KEYS)
def test_a_missing_fact_is_an_error_naming_it(key: str) -> None:
    output = "".join(
        line + "\n" for line in PREPARE_OUTPUT.splitlines() if not line.startswith(key + ":")
    )
    with pytest.raises(ValueError, match=f"did not report {key}$"):
        node.HostFacts.parse(output)


def test_an_empty_fact_counts_as_missing() -> None:
    output = PREPARE_OUTPUT.replace(
        "sandbox-image: registry.k8s.io/pause:3.10.2", "sandbox-image: "
    )
    with pytest.raises(ValueError, match="sandbox-image"):
        node.HostFacts.parse(output)


def test_every_missing_fact_is_named() -> None:
    with pytest.raises(ValueError) as caught:
        node.HostFacts.parse("Reading package lists...\ninstalled: 1.37.2-1.1\n")
    assert str(caught.value) == (
        "prepare-node.sh did not report cgroup, container, lower-oom-score, sandbox-image"
    )


# --- What follows from the facts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cgroup", "container", "ignored"),
    [
        ("v2", "none", []),
        ("v1", "none", ["SystemVerification"]),
        ("v2", "lxc", ["SystemVerification"]),
        ("v1", "lxc", ["SystemVerification"]),
    ],
)
def test_ignored_preflight_errors(cgroup: str, container: str, ignored: list[str]) -> None:
    assert node.ignored_preflight_errors(facts(cgroup=cgroup, container=container)) == ignored


def test_warnings_only_for_cgroup_v1() -> None:
    assert node.warnings(facts()) == []
    assert node.warnings(facts(container="lxc", can_lower_oom_score=False)) == []
    found = node.warnings(facts(cgroup="v1"))
    assert len(found) == 1
    assert "cgroup v1" in found[0]
    assert "failCgroupV1: false" in found[0]


# --- On a host ---------------------------------------------------------------------------------


class RecordingRemote:
    """Stands in for an SSH session: records commands and written files, answers commands
    from `answers` (command prefix -> Result)."""

    def __init__(self, answers: dict[str, Result] | None = None, files: dict | None = None):
        self.host = Host("cp-1", "10.77.0.10", "root", "/k", "ssh-ed25519 AAAA")
        self.secrets: list[str] = []
        self.answers = answers or {}
        self.remote_files = dict(files or {})
        self.commands: list[str] = []
        self.written: dict[str, tuple[str, int]] = {}

    def run(self, command: str, *, what: str, check: bool = True, **_: object) -> Result:
        self.commands.append(command)
        for prefix, result in self.answers.items():
            if command.startswith(prefix):
                if check and not result.ok:
                    raise RemoteError(self.host.name, what, result.stderr, result.exit_code)
                return result
        return Result(0, "", "")

    def put_text(self, content: str, remote_path: str, mode: int = 0o644) -> None:
        self.commands.append(f"<write {remote_path}>")
        self.written[remote_path] = (content, mode)

    def get_text(self, remote_path: str) -> str:
        return self.remote_files[remote_path]


def test_no_kubelet_patch_is_written_for_a_plain_host() -> None:
    remote = RecordingRemote()
    node.write_kubelet_patch(remote, facts())
    assert remote.written == {}
    # The folder is still cleared, so no patch of an earlier run is left behind.
    assert remote.commands == [f"rm -rf {node.PATCHES_DIR} && mkdir -p {node.PATCHES_DIR}"]


def test_kubelet_patch_of_a_cgroup_v1_container_host() -> None:
    remote = RecordingRemote()
    node.write_kubelet_patch(remote, facts(cgroup="v1", container="lxc"))
    assert list(remote.written) == [node.KUBELET_PATCH]
    assert (
        node.KUBELET_PATCH == "/var/lib/k8s-cluster/kubeadm-patches/kubeletconfiguration+merge.yaml"
    )
    patch = yaml.safe_load(remote.written[node.KUBELET_PATCH][0])
    assert patch["failCgroupV1"] is False
    assert patch["failSwapOn"] is False
    assert patch["localStorageCapacityIsolation"] is False
    # Cleared before it is written.
    assert remote.commands[0].startswith("rm -rf ")
    assert remote.commands[1] == f"<write {node.KUBELET_PATCH}>"


@pytest.mark.parametrize(("can_lower", "restricted"), [(True, False), (False, True)])
def test_containerd_config_follows_the_host(can_lower: bool, restricted: bool) -> None:
    remote = RecordingRemote()
    node.configure_containerd(
        remote, facts(can_lower_oom_score=can_lower, sandbox_image="mirror.local/pause:3.10.2")
    )
    config = tomllib.loads(remote.written[node.CONTAINERD_CONFIG][0])
    assert config["version"] == 3
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"] == {
        "sandbox": "mirror.local/pause:3.10.2"
    }
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime.get("restrict_oom_score_adj", False) is restricted
    assert "systemctl restart containerd" in remote.commands[-1]


def self_signed_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


KUBEADM_LIST_137 = "\n".join(
    [
        "registry.k8s.io/kube-apiserver:v1.37.2",
        "registry.k8s.io/kube-controller-manager:v1.37.2",
        "registry.k8s.io/kube-scheduler:v1.37.2",
        "registry.k8s.io/kube-proxy:v1.37.2",
        "registry.k8s.io/coredns/coredns:v1.14.6",
        "registry.k8s.io/pause:3.10.2",
        "registry.k8s.io/etcd:3.7.0-0",
    ]
)


def control_plane_remote() -> RecordingRemote:
    return RecordingRemote(
        answers={
            "test -s /etc/kubernetes/admin.conf": Result(1, "", ""),
            "kubeadm version -o short": Result(0, "v1.37.2\n", ""),
            "kubeadm config images list": Result(0, KUBEADM_LIST_137 + "\n", ""),
        },
        files={
            "/etc/kubernetes/pki/ca.crt": self_signed_ca(),
            node.ADMIN_KUBECONFIG: "apiVersion: v1\nkind: Config\n",
        },
    )


INIT_PATH = f"{node.SUITE_DIR}/kubeadm-init.yaml"


def test_init_on_a_container_host_without_a_bundle() -> None:
    remote = control_plane_remote()
    spec = validate({})
    info = node.init_control_plane(
        remote, spec, facts(container="lxc"), "cp-1", "10.77.0.10", "k8s"
    )
    text, mode = remote.written[INIT_PATH]
    assert mode == 0o600
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(text)}
    registration = docs["InitConfiguration"]["nodeRegistration"]
    assert registration["imagePullPolicy"] == "IfNotPresent"
    assert registration["ignorePreflightErrors"] == ["SystemVerification"]
    assert docs["InitConfiguration"]["patches"] == {"directory": node.PATCHES_DIR}
    assert docs["KubeProxyConfiguration"]["conntrack"] == {"maxPerCore": 0, "min": 0}
    assert docs["ClusterConfiguration"]["kubernetesVersion"] == "v1.37.2"
    # Without a bundle, kubeadm's image list is not asked for.
    assert not any(c.startswith("kubeadm config images list") for c in remote.commands)
    assert any(c.startswith("kubeadm init --config") for c in remote.commands)
    assert info.api_endpoint == "10.77.0.10:6443"
    assert info.ca_cert_hash.startswith("sha256:") and len(info.ca_cert_hash) == 71
    # The token is a secret of the session and deleted after init.
    token = docs["InitConfiguration"]["bootstrapTokens"][0]["token"]
    assert token in remote.secrets
    assert f"kubeadm token delete {node.token_id(token)}" in remote.commands


def test_init_on_a_plain_host_with_a_bundle_that_has_kubeadm_images() -> None:
    remote = control_plane_remote()
    archives = tuple(Archive(name, f"{name}.tar") for name in KUBEADM_LIST_137.split())
    spec = dataclasses.replace(validate({}), image_bundle=ImageBundle("/b", True, archives))
    node.init_control_plane(remote, spec, facts(), "cp-1", "10.77.0.10", "k8s")
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(remote.written[INIT_PATH][0])}
    registration = docs["InitConfiguration"]["nodeRegistration"]
    assert registration["imagePullPolicy"] == "Never"
    assert "ignorePreflightErrors" not in registration
    assert "KubeProxyConfiguration" not in docs
    # kubeadm runs the bundle's CoreDNS and etcd, and lists its images from that configuration
    cluster = docs["ClusterConfiguration"]
    assert cluster["dns"] == {"imageTag": "v1.14.6"}
    assert cluster["etcd"] == {"local": {"imageTag": "3.7.0-0"}}
    assert f"kubeadm config images list --config {INIT_PATH}" in remote.commands
    assert any(c.startswith("kubeadm init --config") for c in remote.commands)


def test_init_stops_before_kubeadm_when_the_bundle_lacks_an_image() -> None:
    remote = control_plane_remote()
    archives = tuple(
        Archive(name, f"{name}.tar") for name in KUBEADM_LIST_137.split() if "etcd" not in name
    )
    spec = dataclasses.replace(validate({}), image_bundle=ImageBundle("/b", True, archives))
    with pytest.raises(RemoteError, match=r"registry\.k8s\.io/etcd:3\.7\.0-0, which the image"):
        node.init_control_plane(remote, spec, facts(), "cp-1", "10.77.0.10", "k8s")
    assert not any(c.startswith("kubeadm init") for c in remote.commands)


def test_join_renders_the_hosts_settings() -> None:
    worker = RecordingRemote()
    info = node.ControlPlaneInfo("10.77.0.10:6443", "sha256:" + "b" * 64, "admin")
    join_as = node.JoinAs("worker-1", "10.77.0.11", facts(cgroup="v1"), "Never")
    node.join(worker, info, join_as, "abcdef.0123456789abcdef")
    path = f"{node.SUITE_DIR}/kubeadm-join.yaml"
    text, mode = worker.written[path]
    assert mode == 0o600
    join = yaml.safe_load(text)
    assert join["nodeRegistration"]["name"] == "worker-1"
    assert join["nodeRegistration"]["imagePullPolicy"] == "Never"
    assert join["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification"]
    assert join["patches"] == {"directory": node.PATCHES_DIR}
    assert "abcdef.0123456789abcdef" in worker.secrets
    assert worker.commands[-1] == f"rm -f {path}"


def test_runtime_env_resolves_versions_and_where_the_checksums_are() -> None:
    runtime = validate({"container_runtime": {"source": "release"}}).container_runtime
    env = node.runtime_env(runtime)
    containerd = (
        "https://github.com/containerd/containerd/releases/download/v2.4.2/"
        "containerd-2.4.2-linux-{arch}.tar.gz"
    )
    assert env == {
        "K8S_CONTAINERD_SOURCE": "release",
        "K8S_CONTAINERD_VERSION": "2.4.2",
        "K8S_CONTAINERD_URL": containerd,
        "K8S_CONTAINERD_SUMS_URL": containerd + ".sha256sum",
        "K8S_RUNC_VERSION": "1.5.2",
        "K8S_RUNC_URL": "https://github.com/opencontainers/runc/releases/download/v1.5.2/"
        "runc.{arch}",
        "K8S_RUNC_SUMS_URL": "https://github.com/opencontainers/runc/releases/download/v1.5.2/"
        "runc.sha256sum",
    }
