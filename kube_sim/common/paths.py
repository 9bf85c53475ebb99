"""Host file paths, with a test-only prefix.

TEST ONLY: when the environment variable KUBE_SIM_ROOT is set, every host path the stand-ins
read or write (/etc/kubernetes, /var/lib/kubelet, /proc/sys/..., /etc/systemd/system, ...) is
taken below that directory instead, so kubeadm and kubelet can run unprivileged side by side on
a development machine. On real hosts the variable is unset and paths are used as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "KUBE_SIM_ROOT"

KUBERNETES_DIR = "/etc/kubernetes"
PKI_DIR = "/etc/kubernetes/pki"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
BOOTSTRAP_KUBELET_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"
CONTROLLER_MANAGER_CONF = "/etc/kubernetes/controller-manager.conf"
SCHEDULER_CONF = "/etc/kubernetes/scheduler.conf"
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_PKI_DIR = "/var/lib/kubelet/pki"
KUBELET_CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
KUBELET_DEFAULTS = "/etc/default/kubelet"
STATE_DIR = "/var/lib/kube-sim"
CNI_DIR = "/etc/cni/net.d"
SYSTEMD_DIR = "/etc/systemd/system"
APISERVER_UNIT = "kube-apiserver-sim.service"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def root() -> str:
    """The test-only prefix ('' on real hosts)."""
    return os.environ.get(ROOT_ENV, "").rstrip("/")


def host(path: str | os.PathLike[str]) -> Path:
    """The real location of an absolute host path (prefixed by KUBE_SIM_ROOT when set)."""
    text = os.fspath(path)
    prefix = root()
    if prefix and text.startswith("/"):
        return Path(prefix + text)
    return Path(text)


def write_file(path: str, data: str | bytes, mode: int = 0o644) -> Path:
    """Write a host file atomically with the given mode (parents created 0755)."""
    target = host(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    return target


def given(path: str) -> Path:
    """A path the user gave on the command line: below KUBE_SIM_ROOT if it exists there."""
    prefixed = host(path)
    if prefixed.exists() or not Path(path).exists():
        return prefixed
    return Path(path)
