"""Pods bound to this node: reported Running and Ready, deleted once their grace period ends.

No container ever runs: the stand-in only reports what a kubelet would.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

from kube_sim.common import timeutil
from kube_sim.common.rest import STRATEGIC_MERGE_PATCH, ApiClient, ApiError, quote

log = logging.getLogger("kubelet")

FALLBACK_POD_NETWORK = "10.244.0.0/16"
POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


def _hex(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def node_pod_cidr(node_name: str, pod_cidr: str | None, cluster_pod_subnet: str | None) -> str:
    """The node's pod range: spec.podCIDR, else a /24 of the cluster's pod subnet by name hash."""
    if pod_cidr:
        return pod_cidr.split(",")[0]
    network = ipaddress.ip_network(
        (cluster_pod_subnet or FALLBACK_POD_NETWORK).split(",")[0], strict=False
    )
    if network.version != 4 or network.prefixlen > 24:
        return str(network)
    count = 2 ** (24 - network.prefixlen)
    index = zlib.crc32(node_name.encode()) % count
    return str(list(network.subnets(new_prefix=24))[index]) if count <= 65536 else str(network)


def qos_class(spec: dict[str, Any]) -> str:
    containers = list(spec.get("containers") or [])
    requests_seen = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            requests_seen = True
        for res in ("cpu", "memory"):
            if res not in limits or (res in requests and requests[res] != limits[res]):
                guaranteed = False
    if not requests_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


@dataclass
class PodAgent:
    client: ApiClient
    node_name: str
    host_ip: str
    cluster_pod_subnet: str | None = None
    pod_cidr: str | None = None
    deleted: set[str] = field(default_factory=set)

    def sync(self) -> None:
        """One pass over the pods bound to this node."""
        listing = self.client.get(
            "/api/v1/pods", query={"fieldSelector": f"spec.nodeName={self.node_name}"}
        )
        pods = [
            p
            for p in (listing or {}).get("items") or []
            if (p.get("spec") or {}).get("nodeName") == self.node_name
        ]
        used = {
            (p.get("status") or {}).get("podIP")
            for p in pods
            if (p.get("status") or {}).get("podIP")
        }
        now = timeutil.now()
        for pod in pods:
            meta = pod.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            try:
                if meta.get("deletionTimestamp"):
                    if now >= timeutil.parse_time(meta["deletionTimestamp"]):
                        self.delete(pod)
                    continue
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    continue
                if self.needs_update(pod):
                    self.mark_running(pod, used)
            except ApiError as exc:
                log.error('"Error syncing pod, skipping" pod="%s" err="%s"', key, exc)

    def needs_update(self, pod: dict[str, Any]) -> bool:
        status = pod.get("status") or {}
        if status.get("phase") != "Running" or not status.get("podIP"):
            return True
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if any(conditions.get(c) != "True" for c in POD_CONDITIONS):
            return True
        wanted = {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []}
        statuses = status.get("containerStatuses") or []
        have = {c.get("name") for c in statuses if c.get("ready")}
        return wanted != have

    def allocate_ip(self, used: set[str]) -> str:
        cidr = node_pod_cidr(self.node_name, self.pod_cidr, self.cluster_pod_subnet)
        network = ipaddress.ip_network(cidr, strict=False)
        for offset, address in enumerate(network.hosts()):
            if offset == 0:
                continue  # .1 is the bridge / gateway
            text = str(address)
            if text not in used:
                used.add(text)
                return text
        raise RuntimeError(f"no free pod IP left in {cidr}")

    def mark_running(self, pod: dict[str, Any], used: set[str]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        now = timeutil.rfc3339()
        uid = str(meta.get("uid") or meta.get("name"))
        if spec.get("hostNetwork"):
            pod_ip = self.host_ip
        else:
            pod_ip = status.get("podIP") or self.allocate_ip(used)
        started = status.get("startTime") or now
        previous = {c.get("type"): c for c in status.get("conditions") or []}

        def condition(ctype: str) -> dict[str, Any]:
            old = previous.get(ctype) or {}
            transition = old.get("lastTransitionTime") if old.get("status") == "True" else None
            return {
                "type": ctype,
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": transition or now,
            }

        conditions = [condition(c) for c in POD_CONDITIONS]
        conditions.append(condition("PodScheduled"))
        container_statuses = [
            self._container_status(uid, c, started, init=False)
            for c in spec.get("containers") or []
        ]
        init_statuses = [
            self._container_status(uid, c, started, init=True)
            for c in spec.get("initContainers") or []
        ]
        body: dict[str, Any] = {
            "status": {
                "phase": "Running",
                "conditions": conditions,
                "hostIP": self.host_ip,
                "hostIPs": [{"ip": self.host_ip}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": started,
                "containerStatuses": container_statuses,
                "qosClass": status.get("qosClass") or qos_class(spec),
            }
        }
        if init_statuses:
            body["status"]["initContainerStatuses"] = init_statuses
        path = (
            f"/api/v1/namespaces/{quote(meta.get('namespace') or 'default')}/pods/"
            f"{quote(meta.get('name', ''))}/status"
        )
        self.client.patch(path, body, STRATEGIC_MERGE_PATCH)
        log.info(
            '"Pod is running" pod="%s/%s" podIP="%s"',
            meta.get("namespace"),
            meta.get("name"),
            pod_ip,
        )

    @staticmethod
    def _container_status(
        uid: str, container: dict[str, Any], started: str, init: bool
    ) -> dict[str, Any]:
        name = str(container.get("name"))
        image = str(container.get("image") or "")
        status: dict[str, Any] = {
            "name": name,
            "image": image,
            "imageID": f"{image.split('@')[0].split(':')[0]}@sha256:{_hex('image', image)}",
            "containerID": f"containerd://{_hex(uid, name)}",
            "restartCount": 0,
        }
        if init:
            status.update(
                ready=True,
                started=False,
                state={
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                        "containerID": status["containerID"],
                    }
                },
            )
        else:
            status.update(ready=True, started=True, state={"running": {"startedAt": started}})
        return status

    def delete(self, pod: dict[str, Any]) -> None:
        """DELETE with gracePeriodSeconds=0 once the pod's grace period is over."""
        meta = pod.get("metadata") or {}
        namespace, name = meta.get("namespace") or "default", meta.get("name", "")
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
        }
        if meta.get("uid"):
            body["preconditions"] = {"uid": meta["uid"]}
        try:
            self.client.delete(
                f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}",
                body,
                query={"gracePeriodSeconds": "0"},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
        log.info('"Pod deleted after its grace period" pod="%s/%s"', namespace, name)
