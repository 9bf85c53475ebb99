"""Which pods a drain may take away, by kubectl drain's rules. Pure: no API calls.

A pod that no controller manages is gone for good once evicted, and an emptyDir volume's data
goes with its pod. kubectl drain refuses both unless told (--force, --delete-emptydir-data);
every drain of the suite does the same (scale-in, heal of a live worker, migrate_pods,
uninstall), with parameters named like kubectl's. DaemonSet pods are left where they are (their
controller recreates them on any node), mirror pods belong to their node, finished pods hold
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubernetes import client

FORCE = "force"
DELETE_EMPTYDIR_DATA = "delete_emptydir_data"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class DrainOptions:
    """What the user allowed a drain to lose (kubectl drain's --force, --delete-emptydir-data)."""

    force: bool = False
    delete_emptydir_data: bool = False

    @classmethod
    def from_parameters(cls, parameters: Mapping) -> DrainOptions:
        """From a workflow's parameters; anything but a boolean is refused (ValueError)."""
        for name in (FORCE, DELETE_EMPTYDIR_DATA):
            value = parameters.get(name, False)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, not {value!r}")
        return cls(
            force=parameters.get(FORCE, False),
            delete_emptydir_data=parameters.get(DELETE_EMPTYDIR_DATA, False),
        )


STRICT = DrainOptions()  # kubectl drain's defaults: lose nothing


class DrainRefused(Exception):
    """A drain would lose pods its options do not allow it to: nothing was changed."""

    def __init__(self, by_node: Mapping[str, Mapping[str, str]]) -> None:
        super().__init__(refusal_message(by_node))
        self.by_node = by_node


def pod_key(pod: client.V1Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def owned_by(pod: client.V1Pod, kind: str) -> bool:
    return any(owner.kind == kind for owner in pod.metadata.owner_references or [])


def to_evict(pods: Iterable[client.V1Pod]) -> list[client.V1Pod]:
    """What a drain evicts: not DaemonSet pods, not mirror (static) pods, not finished ones."""
    return [
        pod
        for pod in pods
        if not owned_by(pod, "DaemonSet")
        and MIRROR_ANNOTATION not in (pod.metadata.annotations or {})
        and not (pod.status and pod.status.phase in ("Succeeded", "Failed"))
    ]


def refusals(pods: Iterable[client.V1Pod], options: DrainOptions) -> dict[str, str]:
    """The pods a drain must not evict under `options`, with the reason and what allows it."""
    refused = {}
    for pod in to_evict(pods):
        reasons = []
        if not options.force and not _has_controller(pod):
            reasons.append(f"no controller manages it (gone for good once evicted; {FORCE})")
        local = _empty_dirs(pod)
        if local and not options.delete_emptydir_data:
            reasons.append(
                f"emptyDir volume(s) {', '.join(local)} lose their data ({DELETE_EMPTYDIR_DATA})"
            )
        if reasons:
            refused[pod_key(pod)] = "; ".join(reasons)
    return refused


def refusal_message(by_node: Mapping[str, Mapping[str, str]]) -> str:
    """One message for every refused pod, by node."""
    lines = [
        f"{node}: {pod}: {why}"
        for node, refused in sorted(by_node.items())
        for pod, why in sorted(refused.items())
    ]
    return (
        "draining would lose pods, which it does only when told (as kubectl drain does): "
        + " | ".join(lines)
        + f". Move or delete them first, or give {FORCE}=true and/or "
        f"{DELETE_EMPTYDIR_DATA}=true"
    )


def _has_controller(pod: client.V1Pod) -> bool:
    return any(owner.controller for owner in pod.metadata.owner_references or [])


def _empty_dirs(pod: client.V1Pod) -> list[str]:
    return [v.name for v in (pod.spec.volumes or []) if v.empty_dir is not None]
