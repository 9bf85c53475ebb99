"""Small helpers about object shapes shared by the REST layer and the controllers."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import uuid
from typing import Any

from .selectors import labelselector_matches

# kubernetes' rand.SafeEncodeString alphabet (no vowels, no confusable digits)
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_SAFE) for _ in range(length))


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


def name_of(obj: dict[str, Any]) -> str:
    return obj.get("metadata", {}).get("name", "")


def ns_of(obj: dict[str, Any]) -> str:
    return obj.get("metadata", {}).get("namespace", "")


def uid_of(obj: dict[str, Any]) -> str:
    return obj.get("metadata", {}).get("uid", "")


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def deleting(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def clone(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_ref(owner: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def set_condition(obj: dict[str, Any], new: dict[str, Any], now_text: str) -> bool:
    """Insert or update a condition; returns True when something changed."""
    conds = obj.setdefault("status", {}).setdefault("conditions", [])
    for index, cond in enumerate(conds):
        if cond.get("type") == new["type"]:
            merged = dict(cond)
            if cond.get("status") != new.get("status"):
                merged["lastTransitionTime"] = now_text
            merged.update({k: v for k, v in new.items() if k != "lastTransitionTime"})
            if merged == cond:
                return False
            conds[index] = merged
            return True
    entry = dict(new)
    entry.setdefault("lastTransitionTime", now_text)
    conds.append(entry)
    return True


def pod_ready(pod: dict[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def pod_active(pod: dict[str, Any]) -> bool:
    """Counts toward a controller's replicas: not terminal and not being deleted."""
    return not deleting(pod) and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def node_ready(node: dict[str, Any]) -> str:
    """ "True", "False" or "Unknown" (no condition yet counts as Unknown)."""
    cond = condition(node, "Ready")
    return (cond or {}).get("status", "Unknown")


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An IntOrString such as 2 or "25%" resolved against ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        fraction = float(value[:-1]) * total / 100.0
        return int(math.ceil(fraction) if round_up else math.floor(fraction))
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def pdb_status(
    pdb: dict[str, Any], pods: list[dict[str, Any]], controller_replicas: dict[str, int]
) -> dict[str, Any]:
    """Compute a PodDisruptionBudget status the way the disruption controller does.

    ``pods`` are the pods of the PDB's namespace; ``controller_replicas`` maps controller uid to
    its desired replica count (for percentage / maxUnavailable budgets).
    """
    spec = pdb.get("spec") or {}
    selector = spec.get("selector")
    matching = [
        p
        for p in pods
        if selector is not None
        and labelselector_matches(selector, labels_of(p))
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]
    healthy = [p for p in matching if pod_ready(p) and not deleting(p)]
    current = len(healthy)

    def scale_total() -> int:
        seen: dict[str, int] = {}
        orphans = 0
        for pod in matching:
            ref = controller_ref(pod)
            if ref and ref.get("uid") in controller_replicas:
                seen[ref["uid"]] = controller_replicas[ref["uid"]]
            else:
                orphans += 1
        return sum(seen.values()) + orphans

    if spec.get("maxUnavailable") is not None:
        expected = scale_total()
        desired = max(0, expected - scaled_value(spec["maxUnavailable"], expected, True))
    elif isinstance(spec.get("minAvailable"), str) and spec["minAvailable"].endswith("%"):
        expected = scale_total()
        desired = scaled_value(spec["minAvailable"], expected, True)
    else:
        expected = len(matching)
        desired = scaled_value(spec.get("minAvailable", 1), expected, True)
    allowed = max(0, current - desired) if expected > 0 else 0
    status = dict(pdb.get("status") or {})
    status.update(
        currentHealthy=current,
        desiredHealthy=desired,
        expectedPods=expected,
        disruptionsAllowed=allowed,
        observedGeneration=pdb.get("metadata", {}).get("generation", 1),
    )
    return status
