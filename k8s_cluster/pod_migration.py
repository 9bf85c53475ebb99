"""Move a Deployment's pods from one node to another, never below its disruption budget.

Two ways:
- `evict`: cordon the source node and evict the workload's pods there through the Eviction API
  (kube.drain), so PodDisruptionBudgets decide the pace; the Deployment recreates them on
  schedulable nodes; the source node is uncordoned afterwards (unless it was cordoned before).
- `affinity`: require the target node in the pod template's node affinity (kubernetes.io/
  hostname), rolled out surge-first (maxUnavailable 0 for the move, the strategy restored
  after), so the number of available pods never drops and every budget holds. The pods stay
  pinned to the target node afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from . import drain_policy, kube
from .drain_policy import STRICT, DrainOptions, DrainRefused
from .resources import HOSTNAME_LABEL, Cluster, ObjectRef, ResourceError

METHODS = ("evict", "affinity")


@dataclass
class Migration:
    workload: ObjectRef
    from_node: str
    to_node: str = ""
    method: str = "evict"
    timeout: float = 300
    grace_period: int | None = None  # evict: seconds the evicted pods get; None: their own
    drain: DrainOptions = STRICT  # what moving the pods may lose (their emptyDir data)

    def problems(self) -> list[str]:
        found = []
        if self.workload.kind != "Deployment":
            found.append(f"{self.workload} is not a Deployment")
        if self.method not in METHODS:
            found.append(f"method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.method == "affinity" and not self.to_node:
            found.append("method affinity needs to_node")
        if not self.from_node or self.from_node == self.to_node:
            found.append("from_node must be given and differ from to_node")
        return found


def pod_selector(deployment: dict) -> str:
    """The Deployment's selector as a label selector string (matchLabels only)."""
    selector = (deployment.get("spec") or {}).get("selector") or {}
    if selector.get("matchExpressions") or not selector.get("matchLabels"):
        raise ResourceError("only Deployments selecting pods by matchLabels can be migrated")
    return ",".join(f"{key}={value}" for key, value in sorted(selector["matchLabels"].items()))


def pods_by_node(core: client.CoreV1Api, namespace: str, selector: str) -> dict[str, str]:
    """pod name -> node name, for the workload's pods that are not terminating."""
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return {
        p.metadata.name: p.spec.node_name or "" for p in pods if not p.metadata.deletion_timestamp
    }


def migrate(cluster: Cluster, move: Migration, log: Callable[[str], None]) -> dict[str, str]:
    """Run the migration; returns where the workload's pods are afterwards."""
    found = move.problems()
    if found:
        raise ResourceError("; ".join(found))
    core = client.CoreV1Api(cluster.api_client)
    deployment = cluster.get(move.workload)
    if deployment is None:
        raise ResourceError(f"{move.workload} does not exist")
    selector = pod_selector(deployment)
    _check_nodes(core, move)
    _refuse_data_loss(core, move, selector)
    before = pods_by_node(core, move.workload.namespace, selector)
    log(f"{move.workload}: pods before the move: {_describe(before)}")
    if move.method == "evict":
        _by_eviction(cluster, core, move, selector)
    else:
        _by_affinity(cluster, move, deployment)
    after = pods_by_node(core, move.workload.namespace, selector)
    log(f"{move.workload}: pods after the move: {_describe(after)}")
    left = [pod for pod, node in after.items() if node == move.from_node]
    if left:
        raise ResourceError(f"pods still on {move.from_node}: {', '.join(left)}")
    return after


def _describe(pods: dict[str, str]) -> str:
    return (
        ", ".join(f"{pod} on {node or 'no node'}" for pod, node in sorted(pods.items())) or "none"
    )


def _check_nodes(core: client.CoreV1Api, move: Migration) -> None:
    names = {node.metadata.name: node for node in core.list_node().items}
    if move.from_node not in names:
        raise ResourceError(f"no Node {move.from_node}")
    if not move.to_node:
        return
    target = names.get(move.to_node)
    if target is None:
        raise ResourceError(f"no Node {move.to_node}")
    ready, state = kube.node_ready(target)
    cordoned = bool(target.spec.unschedulable)
    if not ready or cordoned:
        raise ResourceError(f"Node {move.to_node} cannot take pods: {state}, cordoned: {cordoned}")


def _refuse_data_loss(core: client.CoreV1Api, move: Migration, selector: str) -> None:
    """Either way the pods leaving from_node are replaced, so their emptyDir data is lost:
    refused, as a drain refuses it, unless move.drain allows it."""
    pods = core.list_namespaced_pod(
        move.workload.namespace,
        label_selector=selector,
        field_selector=f"spec.nodeName={move.from_node}",
    ).items
    refused = drain_policy.refusals(pods, move.drain)
    if refused:
        raise ResourceError(f"{DrainRefused({move.from_node: refused})}. Nothing was changed.")


def _by_eviction(cluster: Cluster, core: client.CoreV1Api, move: Migration, selector: str) -> None:
    was_cordoned = bool(core.read_node(move.from_node).spec.unschedulable)
    deadline = time.monotonic() + move.timeout
    pods = kube.PodFilter(move.workload.namespace, selector)
    try:
        result = kube.drain(core, move.from_node, move.timeout, move.grace_period, pods, move.drain)
        if not result.complete:
            blocked = ", ".join(f"{pod} ({why})" for pod, why in result.blocked.items())
            raise ResourceError(
                f"eviction from {move.from_node} did not finish in {move.timeout:g} s: {blocked}"
            )
        _wait_available(cluster, move.workload, deadline)
    finally:
        if not was_cordoned:
            kube.set_unschedulable(core, move.from_node, False)


def _by_affinity(cluster: Cluster, move: Migration, deployment: dict) -> None:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    deadline = time.monotonic() + move.timeout
    _patch(cluster, move.workload, pin_patch(move.to_node))
    try:
        _wait_available(cluster, move.workload, deadline)
    finally:
        restore = {
            "type": strategy.get("type", "RollingUpdate"),
            "rollingUpdate": strategy.get("rollingUpdate"),
        }
        _patch(cluster, move.workload, {"spec": {"strategy": restore}})


def pin_patch(node: str) -> dict:
    required = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node]}]}
        ]
    }
    return {
        "spec": {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "spec": {
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
                    }
                }
            },
        }
    }


def _patch(cluster: Cluster, ref: ObjectRef, patch: dict) -> None:
    resource = cluster.resource(ref.api_version, ref.kind)
    resource.patch(
        body=patch,
        name=ref.name,
        namespace=ref.namespace,
        content_type="application/merge-patch+json",
    )


def _wait_available(cluster: Cluster, ref: ObjectRef, deadline: float) -> None:
    timeout = max(1.0, deadline - time.monotonic())
    try:
        kube.wait_until(lambda: cluster.readiness(ref), timeout, f"{ref} available again")
    except TimeoutError as err:
        raise ResourceError(str(err)) from None
