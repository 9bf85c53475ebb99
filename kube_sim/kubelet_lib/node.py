"""The kubelet's Node: registration, status heartbeats and the Lease in kube-node-lease."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from kube_sim.common import timeutil, version
from kube_sim.common.rest import MERGE_PATCH, STRATEGIC_MERGE_PATCH, ApiClient, ApiError, quote
from kube_sim.kubelet_lib import hostinfo

log = logging.getLogger("kubelet")

LEASE_NAMESPACE = "kube-node-lease"
CONDITIONS = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
]


@dataclass
class NodeSpec:
    """What this kubelet registers: fixed for the life of the process."""

    name: str
    internal_ip: str
    hostname: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    max_pods: int = 110
    lease_seconds: int = 40


@dataclass
class NodeAgent:
    client: ApiClient
    spec: NodeSpec
    uid: str | None = None
    pod_cidr: str | None = None
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    lease: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return f"/api/v1/nodes/{quote(self.spec.name)}"

    @property
    def lease_path(self) -> str:
        return (
            f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/"
            f"{quote(self.spec.name)}"
        )

    # -- status ----------------------------------------------------------------------------
    def conditions(self) -> list[dict[str, Any]]:
        now = timeutil.rfc3339()
        out = []
        for ctype, status, reason, message in CONDITIONS:
            previous = self.transitions.get(ctype)
            if previous is None or previous[0] != status:
                self.transitions[ctype] = (status, now)
            out.append(
                {
                    "type": ctype,
                    "status": status,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self.transitions[ctype][1],
                    "reason": reason,
                    "message": message,
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        capacity, allocatable = hostinfo.resources(self.spec.max_pods)
        return {
            "addresses": [
                {"type": "InternalIP", "address": self.spec.internal_ip},
                {"type": "Hostname", "address": self.spec.hostname},
            ],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": self.conditions(),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": dict(hostinfo.node_info()),
        }

    def _remember(self, node: dict[str, Any] | None) -> None:
        if not node:
            return
        self.uid = (node.get("metadata") or {}).get("uid") or self.uid
        self.pod_cidr = (node.get("spec") or {}).get("podCIDR") or self.pod_cidr

    # -- registration ----------------------------------------------------------------------
    def default_labels(self) -> dict[str, str]:
        arch = version.machine_arch()
        return {
            "beta.kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": self.spec.hostname,
            "kubernetes.io/os": "linux",
        }

    def register(self) -> bool:
        """Create the Node, or adopt the existing one (as kubelet does). True when done."""
        existing = None
        try:
            existing = self.client.get(self.path)
        except ApiError as exc:
            if exc.status != 404:
                log.warning("Unable to register node with API server: %s", exc)
                return False
        if existing is None:
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.spec.name,
                    "labels": {**self.default_labels(), **self.spec.labels},
                    "annotations": {
                        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                    },
                },
                "spec": {"taints": copy.deepcopy(self.spec.taints)} if self.spec.taints else {},
                "status": self.status(),
            }
            try:
                created = self.client.post("/api/v1/nodes", node)
            except ApiError as exc:
                if exc.status != 409:
                    log.warning("Unable to register node with API server: %s", exc)
                    return False
                return self.register()
            self._remember(created)
            log.info('"Successfully registered node" node="%s"', self.spec.name)
        else:
            for cond in (existing.get("status") or {}).get("conditions") or []:
                if cond.get("type") and cond.get("status") and cond.get("lastTransitionTime"):
                    self.transitions[cond["type"]] = (cond["status"], cond["lastTransitionTime"])
            self._remember(existing)
            try:
                self.client.patch(
                    self.path,
                    {"metadata": {"labels": self.default_labels()}},
                    STRATEGIC_MERGE_PATCH,
                )
            except ApiError as exc:
                log.warning("Unable to update the default labels of node: %s", exc)
                return False
            log.info('"Node was previously registered" node="%s"', self.spec.name)
        return self.update_status()

    def update_status(self) -> bool:
        """Heartbeat: PATCH nodes/<name>/status with fresh conditions."""
        body = {"status": self.status()}
        try:
            node = self.client.patch(f"{self.path}/status", body, STRATEGIC_MERGE_PATCH)
        except ApiError as exc:
            if exc.status in (415, 405):
                try:
                    node = self.client.patch(f"{self.path}/status", body, MERGE_PATCH)
                except ApiError as exc2:
                    log.error('"Error updating node status, will retry" err="%s"', exc2)
                    return False
            else:
                log.error('"Error updating node status, will retry" err="%s"', exc)
                return False
        self._remember(node)
        return True

    # -- lease ------------------------------------------------------------------------------
    def renew_lease(self) -> bool:
        now = timeutil.micro_time()
        if self.lease is None:
            try:
                self.lease = self.client.get(self.lease_path)
            except ApiError as exc:
                if exc.status != 404:
                    log.error('"Failed to get lease" err="%s"', exc)
                    return False
                return self._create_lease(now)
        body = copy.deepcopy(self.lease)
        body.setdefault("spec", {})
        body["spec"]["holderIdentity"] = self.spec.name
        body["spec"]["leaseDurationSeconds"] = self.spec.lease_seconds
        body["spec"]["renewTime"] = now
        try:
            self.lease = self.client.put(self.lease_path, body)
        except ApiError as exc:
            self.lease = None
            if exc.status == 404:
                return self._create_lease(now)
            log.error('"Failed to update lease" err="%s"', exc)
            return False
        return True

    def _create_lease(self, now: str) -> bool:
        metadata: dict[str, Any] = {"name": self.spec.name, "namespace": LEASE_NAMESPACE}
        if self.uid:
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.spec.name, "uid": self.uid}
            ]
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.spec.name,
                "leaseDurationSeconds": self.spec.lease_seconds,
                "renewTime": now,
            },
        }
        try:
            self.lease = self.client.post(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases", body
            )
        except ApiError as exc:
            log.error('"Failed to create lease" err="%s"', exc)
            return False
        return True
