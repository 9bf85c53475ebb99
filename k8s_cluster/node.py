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

from .inputs import ClusterSpec
from .paths import resource_dir
from .render import render
from .ssh import Remote

CRI_SOCKET = "unix:///run/containerd/containerd.sock"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
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
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig {ADMIN_KUBECONFIG}"
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class ControlPlaneInfo:
    api_endpoint: str  # host:port the workers join through
    ca_cert_hash: str  # sha256:<hex> of the CA's SubjectPublicKeyInfo
    admin_kubeconfig: str  # secret: written 0600 by the caller, never logged


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


def prepare(remote: Remote, spec: ClusterSpec) -> str:
    """Container runtime, kernel settings and Kubernetes packages; returns the package version."""
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
        "/etc/containerd/config.toml": render(
            "containerd-config.toml.j2", sandbox_image=SANDBOX_IMAGE
        ),
        f"{SUITE_DIR}/kubernetes.list": render(
            "kubernetes-apt.list.j2", uri=repository, keyring=keyring
        ),
        f"{SUITE_DIR}/prepare-node.sh": script("prepare-node.sh"),
    }
    for path, content in files.items():
        remote.put_text(content, path, mode=0o755 if path.endswith(".sh") else 0o644)
    result = remote.run(
        f"{SUITE_DIR}/prepare-node.sh",
        what="prepare the host for Kubernetes",
        env={"K8S_REPOSITORY": repository, "K8S_VERSION_PATTERN": spec.package_version_pattern},
    )
    return result.stdout.rsplit("installed: ", 1)[-1].strip()


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


def init_control_plane(
    remote: Remote, spec: ClusterSpec, node_name: str, address: str, cluster_name: str
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
            token=token,
            token_ttl=JOIN_TOKEN_TTL,
            token_description="used by kubeadm init only; deleted right after",
        )
        path = f"{SUITE_DIR}/kubeadm-init.yaml"
        remote.put_text(config, path, mode=0o600)
        try:
            remote.run(f"kubeadm config validate --config {path}", what="validate kubeadm config")
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


def is_joined(remote: Remote) -> bool:
    return remote.run(
        "test -s /etc/kubernetes/kubelet.conf", what="check for a joined kubelet", check=False
    ).ok


def start_kubelet(remote: Remote) -> None:
    remote.run("systemctl start kubelet", what="start kubelet")


def join(worker: Remote, info: ControlPlaneInfo, node_name: str, address: str, token: str) -> None:
    """kubeadm join with a token made for this join alone; the join file holding it is 0600
    and removed afterwards."""
    worker.secrets.append(token)
    path = f"{SUITE_DIR}/kubeadm-join.yaml"
    config = render(
        "kubeadm-join.yaml.j2",
        api_endpoint=info.api_endpoint,
        token=token,
        ca_cert_hash=info.ca_cert_hash,
        node_name=node_name,
        cri_socket=CRI_SOCKET,
        address=address,
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
