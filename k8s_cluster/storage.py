"""Volumes of workers: backing storage (from the provider), a filesystem mounted on the host
under a stable path, and a local PersistentVolume with node affinity to that host.

A volume is recorded on the orchestrator, in the deployment's state folder, so it outlives the
host it is on (a healed host gets its volumes back):

    <state_dir>/volumes/<host>/<name>.json     what the volume is (size, filesystem, PV...)
    <state_dir>/volumes/<host>/<name>.img      its backing file (local provider only)

On the host, the volume's device is `/dev/k8s-volume-<name>` and it is mounted on
`/mnt/k8s-volumes/<name>`, the PV's local path. The PVs are of the StorageClass
`k8s-local-volumes` (no provisioner, WaitForFirstConsumer, PVs retained), made by the suite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from kubernetes import client
from kubernetes.client import ApiException

from .node import script
from .ssh import Remote

STORAGE_CLASS = "k8s-local-volumes"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
MOUNT_ROOT = "/mnt/k8s-volumes"
DEVICE_PREFIX = "/dev/k8s-volume-"
HOST_SCRIPT = "/usr/local/lib/k8s-cluster/volume.sh"
FILESYSTEMS = ("ext4", "ext3", "ext2")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
SIZE = re.compile(r"^([1-9][0-9]*)(Mi|Gi|Ti)$")
UNITS = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
MIN_SIZE = 16 * 2**20  # the smallest ext4 that holds a journal and some data
MAX_SIZE = 64 * 2**40
API_TIMEOUT = 20


class VolumeError(Exception):
    """A volume request that cannot be done; the message says why and what is accepted."""


class VolumeProvider(Protocol):
    """What a host provider does for volumes (hosts/local.py, hosts/existing.py)."""

    def create_volume(self, host: str, name: str, size_bytes: int, device: str = "") -> None: ...
    def volume_device(self, host: str, name: str) -> AbstractContextManager[str]: ...
    def delete_volume(self, host: str, name: str) -> None: ...
    def volume_space(self) -> int | None: ...


@dataclass(frozen=True)
class Volume:
    name: str
    host: str
    size: str  # as asked, e.g. 1Gi
    filesystem: str
    device: str = ""  # existing machines: the device given by the user

    @property
    def path(self) -> str:
        return f"{MOUNT_ROOT}/{self.name}"

    @property
    def pv_name(self) -> str:
        return f"{self.host}-{self.name}"

    @property
    def size_bytes(self) -> int:
        return size_bytes(self.size)


# --- validation --------------------------------------------------------------------------------


def size_bytes(size: str) -> int:
    match = SIZE.match(str(size).strip())
    if not match:
        raise VolumeError(
            f"size {size!r} is not accepted: a whole number of Mi, Gi or Ti, e.g. 512Mi or 10Gi"
        )
    return int(match.group(1)) * UNITS[match.group(2)]


def check_request(name, size, filesystem, space: int | None) -> list[str]:
    """Every problem with a volume request (name, size, filesystem), each naming the input."""
    problems = []
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(
            f"name {name!r} is not accepted: lowercase letters, digits and '-', at most 40 "
            "characters, starting and ending with a letter or digit"
        )
    try:
        wanted = size_bytes(size)
    except VolumeError as err:
        problems.append(str(err))
    else:
        limit = MAX_SIZE if space is None else min(MAX_SIZE, space)
        if not MIN_SIZE <= wanted <= limit:
            problems.append(
                f"size {size!r} is not accepted: between 16Mi and {limit // 2**20}Mi "
                + ("(the space free for backing files here)" if space is not None else "")
            )
    if filesystem not in FILESYSTEMS:
        problems.append(
            f"filesystem {filesystem!r} is not supported: one of {', '.join(FILESYSTEMS)}"
        )
    return problems


# --- records -----------------------------------------------------------------------------------


def volumes_dir(state_dir: Path) -> Path:
    return state_dir / "volumes"


def record_path(state_dir: Path, host: str, name: str) -> Path:
    return volumes_dir(state_dir) / host / f"{name}.json"


def save(state_dir: Path, volume: Volume) -> None:
    path = record_path(state_dir, volume.host, volume.name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(asdict(volume), indent=1, sort_keys=True) + "\n")


def forget(state_dir: Path, volume: Volume) -> None:
    path = record_path(state_dir, volume.host, volume.name)
    path.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()
    if volumes_dir(state_dir).is_dir() and not any(volumes_dir(state_dir).iterdir()):
        volumes_dir(state_dir).rmdir()


def recorded(state_dir: Path, host: str | None = None) -> list[Volume]:
    """The volumes recorded (of one host, or all), by host then name."""
    root = volumes_dir(state_dir)
    pattern = f"{host}/*.json" if host else "*/*.json"
    return [Volume(**json.loads(p.read_text())) for p in sorted(root.glob(pattern))]


# --- on the host -------------------------------------------------------------------------------


def _host_script(remote: Remote) -> None:
    remote.put_text(script("volume.sh"), HOST_SCRIPT, mode=0o755)


def mount(remote: Remote, volume: Volume, device: str) -> None:
    """Format the device when it has no filesystem yet (never otherwise) and mount it."""
    _host_script(remote)
    remote.run(
        f"{HOST_SCRIPT} mount {device} {volume.path} {volume.filesystem}",
        what=f"mount volume {volume.name}",
    )


def unmount(remote: Remote, volume: Volume) -> None:
    _host_script(remote)
    remote.run(f"{HOST_SCRIPT} unmount {volume.path}", what=f"unmount volume {volume.name}")


def attach(provider: VolumeProvider, remote: Remote, volume: Volume) -> None:
    """Give the host its volume's device and mount it (again, after a heal)."""
    with provider.volume_device(volume.host, volume.name) as device:
        mount(remote, volume, device or volume.device)


def provision(provider: VolumeProvider, remote: Remote, state_dir: Path, api, volume: Volume):
    """Create the backing storage, mount it on the host, record it and make its PV; on any
    failure, undo all of it (and raise)."""
    provider.create_volume(volume.host, volume.name, volume.size_bytes, volume.device)
    try:
        attach(provider, remote, volume)
        save(state_dir, volume)
        create_pv(api, volume)
    except BaseException:
        release(provider, remote, state_dir, api, volume)
        raise


def release(provider: VolumeProvider, remote: Remote, state_dir: Path, api, volume: Volume) -> str:
    """Delete the PV, unmount, delete the backing storage and the record. Returns the claim
    still bound to the PV, if any (see delete_pv)."""
    claim = delete_pv(api, volume)
    unmount(remote, volume)
    provider.delete_volume(volume.host, volume.name)
    forget(state_dir, volume)
    return claim


# --- Kubernetes objects --------------------------------------------------------------------------


def storage_class(default: bool) -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"} if default else {},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    }


def persistent_volume(volume: Volume) -> dict:
    hostname = {"key": "kubernetes.io/hostname", "operator": "In", "values": [volume.host]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume.pv_name,
            "labels": {"k8s-cluster/volume": volume.name, "k8s-cluster/host": volume.host},
        },
        "spec": {
            "capacity": {"storage": volume.size},
            "volumeMode": "Filesystem",
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "local": {"path": volume.path, "fsType": volume.filesystem},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [hostname]}]}},
        },
    }


def ensure_storage_class(api: client.CoreV1Api, default: bool) -> None:
    storage = client.StorageV1Api(api.api_client)
    body = storage_class(default)
    try:
        storage.read_storage_class(STORAGE_CLASS, _request_timeout=API_TIMEOUT)
    except ApiException as err:
        if err.status != 404:
            raise
        storage.create_storage_class(body, _request_timeout=API_TIMEOUT)
        return
    if default:  # only ever made default on request, never un-made
        patch = {"metadata": {"annotations": body["metadata"]["annotations"]}}
        storage.patch_storage_class(STORAGE_CLASS, patch, _request_timeout=API_TIMEOUT)


def read_pv(api: client.CoreV1Api, volume: Volume) -> client.V1PersistentVolume | None:
    try:
        return api.read_persistent_volume(volume.pv_name, _request_timeout=API_TIMEOUT)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def create_pv(api: client.CoreV1Api, volume: Volume) -> None:
    if read_pv(api, volume) is None:
        api.create_persistent_volume(persistent_volume(volume), _request_timeout=API_TIMEOUT)


def delete_pv(api: client.CoreV1Api, volume: Volume) -> str:
    """Delete the volume's PV. A PV bound to a claim is only marked for deletion: Kubernetes
    (its pv-protection finalizer) removes it once the claim lets it go. Returns that claim,
    'namespace/name', or '' when the PV is gone."""
    try:
        api.delete_persistent_volume(
            volume.pv_name, _request_timeout=API_TIMEOUT, _preload_content=False
        )
    except ApiException as err:
        if err.status != 404:
            raise
    return claim_of(read_pv(api, volume))


def pending_deletion(volume: Volume, claim: str) -> str:
    """What a user should know about a PV that outlives its volume's removal."""
    return (
        f"PV {volume.pv_name} stays (Terminating) while claim {claim} is bound to it; "
        f"Kubernetes deletes it once that claim is deleted. Its data is gone."
    )


def claim_of(pv: client.V1PersistentVolume | None) -> str:
    """'namespace/claim' of a Bound PV, '' otherwise."""
    if pv is None or (pv.status and pv.status.phase) != "Bound" or not pv.spec.claim_ref:
        return ""
    return f"{pv.spec.claim_ref.namespace}/{pv.spec.claim_ref.name}"


def describe(volume: Volume, pv: client.V1PersistentVolume | None) -> str:
    state = "no PV" if pv is None else f"PV {volume.pv_name} {pv.status and pv.status.phase}"
    claim = claim_of(pv)
    return (
        f"volume {volume.name} on {volume.host}: {volume.size} {volume.filesystem} at "
        f"{volume.path}, {state}" + (f", claim {claim}" if claim else "")
    )


def bound_volumes(api: client.CoreV1Api, volumes: Iterable[Volume]) -> dict[str, str]:
    """'host/name' -> 'namespace/claim' for each volume whose PV is bound to a claim."""
    claims = {}
    for volume in volumes:
        claim = claim_of(read_pv(api, volume))
        if claim:
            claims[f"{volume.host}/{volume.name}"] = claim
    return claims


def bound_refusal(bound: dict[str, str], allow: str) -> str:
    """Why volumes bound to claims are not removed, and how to remove them anyway."""
    held = ", ".join(
        f"volume {volume} is bound to claim {claim}" for volume, claim in bound.items()
    )
    return f"refused: {held}. Delete the claim(s) first, or give {allow} (their data is lost)"
