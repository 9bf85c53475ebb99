"""Kubernetes software on one host: prepare, kubeadm init, join with a fresh token, reset.

Every step checks before it acts, so a retried task or a second run converges.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import shlex
import string
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .images import ImageBundle, absent
from .inputs import ClusterSpec, ContainerRuntime
from .paths import resource_dir
from .render import render
from .ssh import Remote, RemoteError

CRI_SOCKET = "unix:///run/containerd/containerd.sock"
API_PORT = 6443
KERNEL_MODULES = ("overlay", "br_netfilter")
SYSCTLS = {
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "net.ipv4.ip_forward": "1",
}
JOIN_TOKEN_TTL = "15m"
JOIN_TOKEN_TTL_SECONDS = 15 * 60
SUITE_DIR = "/var/lib/k8s-cluster"
REMOTE_REPOSITORY = f"{SUITE_DIR}/repository"
PATCHES_DIR = f"{SUITE_DIR}/kubeadm-patches"
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig {ADMIN_KUBECONFIG}"
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class HostFacts:
    """What prepare-node.sh found on a host, which its node settings depend on."""

    package_version: str  # e.g. "1.37.2-1.1"
    cgroup: str  # "v1" or "v2"
    container: str  # "none", or the container technology the host runs in ("lxc", ...)
    can_lower_oom_score: bool  # has CAP_SYS_RESOURCE, as runc needs for pods' OOM scores
    sandbox_image: str  # kubeadm's pause image, e.g. "registry.k8s.io/pause:3.10.2"

    @property
    def in_container(self) -> bool:
        return self.container != "none"

    @classmethod
    def parse(cls, output: str) -> HostFacts:
        """From prepare-node.sh's last lines ("installed: ...", "cgroup: ...", ...)."""
        found = {}
        for line in output.splitlines():
            key, _, value = line.partition(": ")
            found[key.strip()] = value.strip()
        keys = ("installed", "cgroup", "container", "lower-oom-score", "sandbox-image")
        missing = [key for key in keys if not found.get(key)]
        if missing:
            raise ValueError(f"prepare-node.sh did not report {', '.join(missing)}")
        return cls(
            package_version=found["installed"],
            cgroup=found["cgroup"],
            container=found["container"],
            can_lower_oom_score=found["lower-oom-score"] == "yes",
            sandbox_image=found["sandbox-image"],
        )


@dataclass(frozen=True)
class ControlPlaneInfo:
    api_endpoint: str  # host:port the workers join through
    ca_cert_hash: str  # sha256:<hex> of the CA's SubjectPublicKeyInfo
    admin_kubeconfig: str  # secret: written 0600 by the caller, never logged


KUBELET_LEASE_SECONDS = 40  # the kubelet's default nodeLeaseDurationSeconds


def node_lease_seconds(grace_period: str) -> int:
    """The kubelet renews its Node's lease every quarter of the lease's duration (10 s by
    default). With a node_monitor_grace_period no longer than that, a healthy node now and then
    misses one and turns Unknown: the lease is made no longer than the grace period, so the
    control plane sees four renewals in it."""
    seconds = int(grace_period[:-1]) * (60 if grace_period.endswith("m") else 1)
    return min(KUBELET_LEASE_SECONDS, seconds)


def new_bootstrap_token() -> str:
    """A kubeadm bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}, from a CSPRNG."""
    pick = secrets.choice
    return (
        "".join(pick(_TOKEN_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_TOKEN_ALPHABET) for _ in range(16))
    )


def token_id(token: str) -> str:
    return token.split(".", 1)[0]


def ca_cert_hash(ca_pem: str) -> str:
    """The discovery hash kubeadm checks: sha256 over the CA's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem.encode())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


# --- prepare ---------------------------------------------------------------------------------


def prepare(remote: Remote, spec: ClusterSpec) -> HostFacts:
    """Kernel settings, Kubernetes packages and containerd 2, configured with kubeadm's sandbox
    image; returns what was found on the host."""
    if spec.repository_is_local:
        upload_repository(remote, Path(spec.package_repository))
        repository = f"file:{REMOTE_REPOSITORY}"
    else:
        repository = spec.package_repository
    keyring = "/etc/apt/keyrings/kubernetes-apt-keyring.asc"
    files = {
        "/etc/modules-load.d/kubernetes.conf": render(
            "kubernetes-modules.conf.j2", modules=KERNEL_MODULES
        ),
        "/etc/sysctl.d/99-kubernetes.conf": render("kubernetes-sysctl.conf.j2", sysctls=SYSCTLS),
        f"{SUITE_DIR}/kubernetes.list": render(
            "kubernetes-apt.list.j2", uri=repository, keyring=keyring
        ),
        f"{SUITE_DIR}/prepare-node.sh": script("prepare-node.sh"),
        f"{SUITE_DIR}/containerd.service": render(
            "containerd.service.j2", containerd=RELEASE_CONTAINERD
        ),
    }
    for path, content in files.items():
        remote.put_text(content, path, mode=0o755 if path.endswith(".sh") else 0o644)
    result = remote.run(
        f"{SUITE_DIR}/prepare-node.sh",
        what="prepare the host for Kubernetes",
        env={
            "K8S_REPOSITORY": repository,
            "K8S_VERSION_PATTERN": spec.package_version_pattern,
            **runtime_env(spec.container_runtime),
        },
    )
    facts = HostFacts.parse(result.stdout)
    configure_containerd(remote, facts)
    write_kubelet_patch(remote, facts)
    return facts


def warnings(facts: HostFacts) -> list[str]:
    """What a user should know about a host the suite configured specially."""
    if facts.cgroup == "v1":
        return [
            "runs cgroup v1, which Kubernetes keeps in maintenance mode; its kubelet is told to "
            "accept it (failCgroupV1: false). Move the host to cgroup v2 when you can."
        ]
    return []


KUBELET_PATCH = f"{PATCHES_DIR}/kubeletconfiguration+merge.yaml"


def write_kubelet_patch(remote: Remote, facts: HostFacts) -> None:
    """The kubelet settings this host needs and others may not (a kubeadm patch, which init
    and join apply to the cluster's KubeletConfiguration for this node only)."""
    patch = render(
        "kubelet-node-patch.yaml.j2",
        cgroup_v1=facts.cgroup == "v1",
        in_container=facts.in_container,
    )
    remote.run(f"rm -rf {PATCHES_DIR} && mkdir -p {PATCHES_DIR}", what="clear the kubeadm patches")
    if any(line and not line.startswith("#") for line in patch.splitlines()):
        remote.put_text(patch, KUBELET_PATCH)


CONTAINERD_CONFIG = "/etc/containerd/config.toml"
RELEASE_CONTAINERD = "/usr/local/bin/containerd"  # where containerd's release archive puts it


def runtime_env(runtime: ContainerRuntime) -> dict[str, str]:
    """prepare-node.sh's settings for installing containerd and runc. A release is checked
    against what its project publishes beside it: containerd a `<archive>.sha256sum`, runc a
    `runc.sha256sum` for all its binaries."""
    containerd = runtime.containerd_url.replace("{version}", runtime.containerd_version)
    runc = runtime.runc_url.replace("{version}", runtime.runc_version)
    return {
        "K8S_CONTAINERD_SOURCE": runtime.source,
        "K8S_CONTAINERD_VERSION": runtime.containerd_version,
        "K8S_CONTAINERD_URL": containerd,
        "K8S_CONTAINERD_SUMS_URL": containerd + ".sha256sum",
        "K8S_RUNC_VERSION": runtime.runc_version,
        "K8S_RUNC_URL": runc,
        "K8S_RUNC_SUMS_URL": runc.rsplit("/", 1)[0] + "/runc.sha256sum",
    }


def configure_containerd(remote: Remote, facts: HostFacts) -> None:
    """Write containerd's configuration; restart it when that changed or it is not running."""
    config = render(
        "containerd-config.toml.j2",
        sandbox_image=facts.sandbox_image,
        restrict_oom_score_adj=not facts.can_lower_oom_score,
    )
    remote.put_text(config, CONTAINERD_CONFIG)
    stamp = f"{SUITE_DIR}/containerd-config.sha256"
    remote.run(
        f"if ! sha256sum --status -c {stamp} 2>/dev/null || ! systemctl is-active -q containerd;"
        f" then systemctl restart containerd && sha256sum {CONTAINERD_CONFIG} > {stamp}; fi"
        " && for _ in $(seq 60); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.5; done;"
        " echo 'containerd did not answer within 30 s' >&2; exit 1",
        what="configure containerd",
    )


def import_images(remote: Remote, bundle: ImageBundle, role: str) -> int:
    """Import the bundle's images a host of `role` runs into containerd (pinned), unless it
    has them already; returns how many were imported."""
    present = set(
        remote.run("ctr --namespace k8s.io images list --quiet", what="list images").stdout.split()
    )
    wanted = [a for a in bundle.for_role(role) if a.name not in present]
    if not wanted:
        return 0
    listing = "".join(f"{a.name}\t{a.location}\t{a.sha256}\n" for a in wanted)
    list_path = f"{SUITE_DIR}/images.list"
    remote.put_text(listing, list_path)
    remote.put_text(script("import-images.sh"), f"{SUITE_DIR}/import-images.sh", mode=0o755)
    source = bundle.source
    if bundle.is_local:
        source = f"/var/tmp/k8s-images-{secrets.token_hex(6)}"
        for location in sorted({a.location for a in wanted}):
            remote.upload_file(Path(bundle.source) / location, f"{source}/{location}")
    try:
        result = remote.run(
            f"{SUITE_DIR}/import-images.sh {list_path} {shlex.quote(source)}",
            what="import the image bundle",
        )
    finally:
        if bundle.is_local:
            remote.run(f"rm -rf {source}", what="remove the uploaded images", check=False)
    return int(result.stdout.rsplit("images: ", 1)[-1].split()[0])


def script(name: str) -> str:
    return (resource_dir("scripts") / name).read_text()


@lru_cache(maxsize=4)
def _repository_archive(path: Path, release_digest: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(path, arcname=".", filter=lambda info: None if "gnupg" in info.name else info)
    return buffer.getvalue()


def upload_repository(remote: Remote, path: Path) -> None:
    """Copy a local package repository to the host, unless the same copy is already there."""
    release = (path / "Release") if (path / "Release").exists() else (path / "InRelease")
    digest = hashlib.sha256(release.read_bytes()).hexdigest()
    check = remote.run(
        f"cat {REMOTE_REPOSITORY}/.digest 2>/dev/null || true", what="check the repository copy"
    )
    if check.stdout.strip() == digest:
        return
    staging = f"/tmp/.k8s-repository-{digest[:12]}.tar.gz"
    remote.upload(_repository_archive(path, digest), staging)
    remote.run(
        f"rm -rf {REMOTE_REPOSITORY} && mkdir -p {REMOTE_REPOSITORY}"
        f" && tar -xzf {staging} -C {REMOTE_REPOSITORY} && rm -f {staging}"
        f" && echo {digest} > {REMOTE_REPOSITORY}/.digest",
        what="unpack the package repository copy",
    )


# --- control plane ---------------------------------------------------------------------------


def is_initialised(remote: Remote) -> bool:
    probe = remote.run(
        f"test -s {ADMIN_KUBECONFIG} && {KUBECTL} get --raw=/readyz --request-timeout=10s",
        what="check for a running control plane",
        check=False,
    )
    return probe.ok


def image_pull_policy(spec: ClusterSpec) -> str:
    return "Never" if spec.image_bundle else "IfNotPresent"


def ignored_preflight_errors(facts: HostFacts) -> list[str]:
    """kubeadm checks a host cannot pass and the suite has made up for: SystemVerification
    fails on cgroup v1 (the kubelet is told to accept it, see kubelet-node-patch.yaml.j2) and in
    containers (the kernel's configuration is the machine's, not readable from inside)."""
    if facts.cgroup == "v1" or facts.in_container:
        return ["SystemVerification"]
    return []


def check_bundle_has_kubeadm_images(remote: Remote, bundle: ImageBundle, config: str) -> None:
    """kubeadm's exact image list for the init configuration against the bundle, before init
    changes anything (with imagePullPolicy Never, a missing image could not be pulled either)."""
    listing = remote.run(
        f"kubeadm config images list --config {config}", what="list kubeadm's images"
    )
    missing = absent(listing.stdout.split(), bundle.names())
    if missing:
        raise RemoteError(
            remote.host.name,
            "check the image bundle",
            f"kubeadm runs {', '.join(missing)}, which the image bundle "
            f"{bundle.source} lacks (it has: {', '.join(bundle.names())})",
        )


def init_control_plane(
    remote: Remote,
    spec: ClusterSpec,
    facts: HostFacts,
    node_name: str,
    address: str,
    cluster_name: str,
) -> ControlPlaneInfo:
    """kubeadm init from a rendered config, unless this host already runs the control plane."""
    if not is_initialised(remote):
        version = remote.run("kubeadm version -o short", what="read the kubeadm version").stdout
        token = new_bootstrap_token()
        remote.secrets.append(token)
        config = render(
            "kubeadm-init.yaml.j2",
            node_name=node_name,
            address=address,
            api_port=API_PORT,
            cri_socket=CRI_SOCKET,
            cluster_name=cluster_name,
            kubernetes_version=version.strip(),
            pod_cidr=spec.pod_cidr,
            service_cidr=spec.service_cidr,
            cert_sans=[address, node_name],
            node_monitor_grace_period=spec.node_monitor_grace_period,
            node_lease_seconds=node_lease_seconds(spec.node_monitor_grace_period),
            token=token,
            token_ttl=JOIN_TOKEN_TTL,
            token_description="used by kubeadm init only; deleted right after",
            image_pull_policy=image_pull_policy(spec),
            ignore_preflight_errors=ignored_preflight_errors(facts),
            patches_dir=PATCHES_DIR,
            container_hosts=facts.in_container,
            dns_image_tag=spec.image_bundle and spec.image_bundle.tag("coredns"),
            etcd_image_tag=spec.image_bundle and spec.image_bundle.tag("etcd"),
        )
        path = f"{SUITE_DIR}/kubeadm-init.yaml"
        remote.put_text(config, path, mode=0o600)
        try:
            remote.run(f"kubeadm config validate --config {path}", what="validate kubeadm config")
            if spec.image_bundle is not None:
                check_bundle_has_kubeadm_images(remote, spec.image_bundle, path)
            remote.run(f"kubeadm init --config {path}", what="kubeadm init")
            remote.run(f"kubeadm token delete {token_id(token)}", what="delete the init token")
        finally:
            remote.run(f"rm -f {path}", what="remove the kubeadm config", check=False)
    ca_pem = remote.get_text("/etc/kubernetes/pki/ca.crt")
    return ControlPlaneInfo(
        api_endpoint=f"{address}:{API_PORT}",
        ca_cert_hash=ca_cert_hash(ca_pem),
        admin_kubeconfig=remote.get_text(ADMIN_KUBECONFIG),
    )


def apply_cni(remote: Remote, manifest: str, manifest_is_local: bool) -> None:
    """Apply the CNI manifest with the control plane's kubectl (a URL, or a file copied there)."""
    source = manifest
    if manifest_is_local:
        source = f"{SUITE_DIR}/cni.yaml"
        remote.put_text(Path(manifest).read_text(), source)
    remote.run(
        f"{KUBECTL} apply -f {shlex.quote(source)}", what=f"apply the CNI manifest {manifest}"
    )


# --- workers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinAs:
    """Who a host joins as: its Node name and address, and how its images come."""

    node_name: str
    address: str
    facts: HostFacts
    image_pull_policy: str


def is_joined(remote: Remote) -> bool:
    return remote.run(
        "test -s /etc/kubernetes/kubelet.conf", what="check for a joined kubelet", check=False
    ).ok


def start_kubelet(remote: Remote) -> None:
    remote.run("systemctl start kubelet", what="start kubelet")


def join(
    worker: Remote,
    info: ControlPlaneInfo,
    join_as: JoinAs,
    token: str,
) -> None:
    """kubeadm join with a token made for this join alone; the join file holding it is 0600
    and removed afterwards."""
    worker.secrets.append(token)
    path = f"{SUITE_DIR}/kubeadm-join.yaml"
    config = render(
        "kubeadm-join.yaml.j2",
        api_endpoint=info.api_endpoint,
        token=token,
        ca_cert_hash=info.ca_cert_hash,
        node_name=join_as.node_name,
        cri_socket=CRI_SOCKET,
        address=join_as.address,
        image_pull_policy=join_as.image_pull_policy,
        ignore_preflight_errors=ignored_preflight_errors(join_as.facts),
        patches_dir=PATCHES_DIR,
    )
    try:
        worker.put_text(config, path, mode=0o600)
        worker.run(f"kubeadm join --config {path}", what="kubeadm join")
    finally:
        worker.run(f"rm -f {path}", what="remove the join config", check=False)


# --- reset -----------------------------------------------------------------------------------


def reset(remote: Remote) -> None:
    remote.put_text(script("reset-node.sh"), f"{SUITE_DIR}/reset-node.sh", mode=0o755)
    remote.run(f"{SUITE_DIR}/reset-node.sh", what="reset the node")
