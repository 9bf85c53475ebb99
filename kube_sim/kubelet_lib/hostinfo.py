"""What a kubelet reports about its host: addresses, capacity and nodeInfo."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from kube_sim.common import netinfo, paths, version

MEMORY_EVICTION_HARD_KI = 100 * 1024


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def internal_ip(node_ip: str | None) -> str:
    if node_ip:
        return node_ip
    return netinfo.default_route_address() or "127.0.0.1"


def memory_ki() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 1024 * 1024


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def container_runtime_version() -> str:
    """containerd://<version> from `containerd --version` (sim://... without containerd)."""
    binary = shutil.which("containerd")
    if binary:
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=5, check=False
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            out = []
        if len(out) >= 3:
            return f"containerd://{out[2].removeprefix('v')}"
    return f"sim://{version.git_version()}"


def resources(max_pods: int) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) as a kubelet computes them (without reservations)."""
    mem = memory_ki()
    try:
        usage = shutil.disk_usage(paths.host(paths.KUBELET_DIR))
        storage_ki = usage.total // 1024
    except OSError:
        storage_ki = 10 * 1024 * 1024
    cpus = str(os.cpu_count() or 1)
    capacity = {
        "cpu": cpus,
        "ephemeral-storage": f"{storage_ki}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{mem}Ki",
        "pods": str(max_pods),
    }
    allocatable = dict(capacity)
    allocatable["memory"] = f"{max(0, mem - MEMORY_EVICTION_HARD_KI)}Ki"
    allocatable["ephemeral-storage"] = str(storage_ki * 1024 * 9 // 10)
    return capacity, allocatable


@functools.lru_cache(maxsize=1)
def node_info() -> dict[str, str]:
    machine_id = _read("/etc/machine-id", "0" * 32)
    uuid = _read("/sys/class/dmi/id/product_uuid")
    if not uuid and len(machine_id) == 32:
        m = machine_id
        uuid = f"{m[:8]}-{m[8:12]}-{m[12:16]}-{m[16:20]}-{m[20:]}"
    return {
        "architecture": version.machine_arch(),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "containerRuntimeVersion": container_runtime_version(),
        "kernelVersion": os.uname().release,
        "kubeProxyVersion": "",
        "kubeletVersion": version.git_version(),
        "machineID": machine_id,
        "operatingSystem": "linux",
        "osImage": os_image(),
        "systemUUID": uuid,
    }
