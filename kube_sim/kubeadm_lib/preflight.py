"""Pre-flight checks of init and join, reported like real kubeadm's."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterable

from kube_sim.common import paths, services
from kube_sim.kubeadm_lib.errors import PhaseError

Say = Callable[[str], None]


def check_name_for_path(kind: str, path: str) -> str:
    return f"{kind}-{path.replace('/', '-')}"


def file_available(path: str) -> tuple[str, str | None]:
    name = check_name_for_path("FileAvailable", path)
    if paths.host(path).exists():
        return name, f"{path} already exists"
    return name, None


def dir_available(path: str) -> tuple[str, str | None]:
    name = check_name_for_path("DirAvailable", path)
    target = paths.host(path)
    if target.is_dir() and any(target.iterdir()):
        return name, f"{path} is not empty"
    return name, None


def port_open(port: int) -> tuple[str, str | None]:
    name = f"Port-{port}"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return name, f"Port {port} is in use"
        return name, f"Port {port}: {exc.strerror}"
    finally:
        sock.close()
    return name, None


def privileged_user() -> tuple[str, str | None]:
    if paths.root() or os.geteuid() == 0:
        return "IsPrivilegedUser", None
    return "IsPrivilegedUser", "user is not running as root"


def cri(cri_socket: str) -> tuple[str, str | None]:
    path = cri_socket.removeprefix("unix://")
    target = paths.host(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    try:
        sock.connect(str(target))
    except OSError as exc:
        return "CRI", (
            "container runtime is not running: validate CRI v1 runtime API for endpoint "
            f'"{cri_socket}": rpc error: code = Unavailable desc = connection error: dial unix '
            f"{path}: connect: {(exc.strerror or str(exc)).lower()}"
        )
    finally:
        sock.close()
    return "CRI", None


def ip_forward() -> tuple[str, str | None]:
    name = check_name_for_path("FileContent", paths.IP_FORWARD)
    try:
        content = paths.host(paths.IP_FORWARD).read_text().strip()
    except OSError:
        return name, f"{paths.IP_FORWARD} does not exist"
    if content != "1":
        return name, f"{paths.IP_FORWARD} contents are not set to 1"
    return name, None


def kubelet_service_warning() -> str | None:
    if services.no_systemd():
        return None
    try:
        enabled = services.Systemd().is_enabled("kubelet.service")
    except OSError:
        return None
    if not enabled:
        return (
            "[WARNING Service-Kubelet]: kubelet service is not enabled, please run "
            "'systemctl enable kubelet.service'"
        )
    return None


def run(checks: Iterable[tuple[str, str | None]], ignored: Iterable[str], say: Say) -> None:
    """Report the failed checks: warnings for ignored ones, a preflight PhaseError otherwise."""
    ignore = {name.strip().lower() for name in ignored if name.strip()}
    fatal: list[str] = []
    for name, problem in checks:
        if problem is None:
            continue
        if "all" in ignore or name.lower() in ignore:
            say(f"\t[WARNING {name}]: {problem}")
        else:
            fatal.append(f"\t[ERROR {name}]: {problem}")
    if fatal:
        raise PhaseError(
            "preflight",
            "[preflight] Some fatal errors occurred:\n"
            + "\n".join(fatal)
            + "\n[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`",
        )
