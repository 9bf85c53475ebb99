"""Persistent volume binding, as the scheduler's VolumeBinding plugin and the PV controller do it
for statically provisioned volumes (no dynamic provisioning):

- a PersistentVolume without a claim is Available; one whose claim is gone is Released
  (Retain) and is never bound again;
- a pod whose claims are unbound only fits a node where, for each claim, an Available PV of the
  claim's StorageClass, with enough capacity and the access modes asked, has node affinity
  matching that node; a bound claim pins the pod to its PV's nodes;
- when such a pod is scheduled, each of its unbound claims is bound to the smallest such PV
  (PV spec.claimRef, PVC spec.volumeName, both phases Bound).

Pure functions over plain objects; the controller loop applies them (controllers.py).
"""

from __future__ import annotations

import re
from typing import Any

from .selectors import node_affinity_matches

QUANTITY = re.compile(r"^([0-9.]+)([KMGTPE]i?|[kmgtpe]?)$")
FACTORS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
FACTORS.update({"E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50})
FACTORS["Ei"] = 2**60


def quantity_bytes(text: Any) -> int:
    """A storage quantity such as 1Gi, 500M or 1024 in bytes (0 when unreadable)."""
    match = QUANTITY.match(str(text or "").strip())
    if not match or match.group(2) not in FACTORS:
        return 0
    return int(float(match.group(1)) * FACTORS[match.group(2)])


def claim_names(pod: dict[str, Any]) -> list[str]:
    volumes = (pod.get("spec") or {}).get("volumes") or []
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in volumes
        if (v.get("persistentVolumeClaim") or {}).get("claimName")
    ]


def pv_fits_node(pv: dict[str, Any], node: dict[str, Any]) -> bool:
    required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if not required:
        return True
    spec = {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    }
    return node_affinity_matches(spec, node)


def pv_matches_claim(pv: dict[str, Any], pvc: dict[str, Any]) -> bool:
    """Could this Available PV serve this unbound claim (class, size, access modes)?"""
    pv_spec, claim = pv.get("spec") or {}, pvc.get("spec") or {}
    if (pv.get("status") or {}).get("phase") != "Available" or pv_spec.get("claimRef"):
        return False
    if (pv_spec.get("storageClassName") or "") != (claim.get("storageClassName") or ""):
        return False
    wanted = quantity_bytes(((claim.get("resources") or {}).get("requests") or {}).get("storage"))
    if quantity_bytes((pv_spec.get("capacity") or {}).get("storage")) < wanted:
        return False
    return set(claim.get("accessModes") or []) <= set(pv_spec.get("accessModes") or [])


def choose_volumes(
    claims: list[dict[str, Any]], pvs: list[dict[str, Any]], node: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], str]:
    """For a pod's claims on `node`: (claim name -> PV to bind it to, '') when the pod fits,
    or ({}, the scheduler's reason) when it does not."""
    by_name = {pv["metadata"]["name"]: pv for pv in pvs}
    chosen: dict[str, dict[str, Any]] = {}
    for pvc in claims:
        bound = (pvc.get("spec") or {}).get("volumeName")
        if bound:
            if bound in by_name and not pv_fits_node(by_name[bound], node):
                return {}, "node(s) had volume node affinity conflict"
            continue
        taken = {id(pv) for pv in chosen.values()}
        candidates = [
            pv
            for pv in pvs
            if id(pv) not in taken and pv_matches_claim(pv, pvc) and pv_fits_node(pv, node)
        ]
        if not candidates:
            return {}, "node(s) didn't find available persistent volumes to bind"
        smallest = min(candidates, key=lambda pv: quantity_bytes(pv["spec"]["capacity"]["storage"]))
        chosen[pvc["metadata"]["name"]] = smallest
    return chosen, ""


def pod_claims(pod: dict[str, Any], pvcs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The pod's claims, or ([], reason) when one does not exist."""
    ns = pod["metadata"].get("namespace", "")
    by_name = {c["metadata"]["name"]: c for c in pvcs if c["metadata"].get("namespace") == ns}
    missing = [name for name in claim_names(pod) if name not in by_name]
    if missing:
        return [], f'persistentvolumeclaim "{missing[0]}" not found'
    return [by_name[name] for name in claim_names(pod)], ""


def bound_pair(pv: dict[str, Any], pvc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """New versions of the PV and the claim, bound to each other."""
    meta = pvc["metadata"]
    new_pv = {**pv, "spec": dict(pv["spec"]), "status": {"phase": "Bound"}}
    new_pv["spec"]["claimRef"] = {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
    }
    new_pvc = {**pvc, "spec": dict(pvc.get("spec") or {})}
    new_pvc["spec"]["volumeName"] = pv["metadata"]["name"]
    new_pvc["status"] = {
        "phase": "Bound",
        "accessModes": pv["spec"].get("accessModes") or [],
        "capacity": dict(pv["spec"].get("capacity") or {}),
    }
    return new_pv, new_pvc


def pv_phase(pv: dict[str, Any], pvcs: list[dict[str, Any]]) -> str:
    """The phase the PV controller gives a PV: Available, Bound or Released."""
    ref = (pv.get("spec") or {}).get("claimRef")
    if not ref:
        return "Available"
    key = (ref.get("namespace"), ref.get("name"), ref.get("uid"))
    for pvc in pvcs:
        meta = pvc["metadata"]
        if key == (meta.get("namespace"), meta["name"], key[2] and meta.get("uid")):
            return "Bound"
    return "Released"
