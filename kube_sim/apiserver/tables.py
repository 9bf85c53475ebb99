"""Server-side printing: ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``.

The columns mirror the real server's printers for the kinds the product looks at, so that
``kubectl get`` (and ``-o wide``) print what an operator expects to see.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import timeutil
from .objects import condition, controller_ref, deleting, labels_of, pod_ready
from .registry import ResourceType

Cell = Callable[[dict[str, Any]], Any]
Column = tuple[str, str, int, Cell]  # name, type, priority, value


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(obj: dict[str, Any]) -> str:
    return timeutil.human_age(timeutil.parse_time(obj["metadata"].get("creationTimestamp")))


def _name(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


def _join(values: list[str], empty: str = "<none>") -> str:
    return ",".join(values) if values else empty


def _selector(selector: dict[str, Any] | None) -> str:
    if not selector:
        return "<none>"
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = expr.get("operator")
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            parts.append(expr["key"])
        else:
            parts.append(f"!{expr['key']}")
    return ",".join(parts) or "<none>"


def _template_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []


# --- pods ---------------------------------------------------------------------------------


def pod_status_text(pod: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if deleting(pod):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason


def _pod_ready(pod: dict[str, Any]) -> str:
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(
        1 for cs in (pod.get("status") or {}).get("containerStatuses") or [] if cs.get("ready")
    )
    return f"{ready}/{total}"


def _pod_restarts(pod: dict[str, Any]) -> str:
    return str(
        sum(
            cs.get("restartCount", 0)
            for cs in (pod.get("status") or {}).get("containerStatuses") or []
        )
    )


def _readiness_gates(pod: dict[str, Any]) -> str:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    ok = sum(
        1
        for g in gates
        if (condition(pod, g.get("conditionType", "")) or {}).get("status") == "True"
    )
    return f"{ok}/{len(gates)}"


# --- nodes --------------------------------------------------------------------------------


def node_status_text(node: dict[str, Any]) -> str:
    cond = condition(node, "Ready")
    parts = []
    if cond is None:
        parts.append("Unknown")
    elif cond.get("status") == "True":
        parts.append("Ready")
    else:
        parts.append("NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(node: dict[str, Any]) -> str:
    roles = sorted(
        key.split("/", 1)[1]
        for key in labels_of(node)
        if key.startswith("node-role.kubernetes.io/") and key.split("/", 1)[1]
    )
    if labels_of(node).get("kubernetes.io/role"):
        roles.append(labels_of(node)["kubernetes.io/role"])
    return _join(sorted(set(roles)))


def _node_address(node: dict[str, Any], kind: str) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def _node_info(key: str) -> Cell:
    return lambda n: ((n.get("status") or {}).get("nodeInfo") or {}).get(key, "") or "<unknown>"


# --- column sets --------------------------------------------------------------------------


def _status(path: str, default: Any = 0) -> Cell:
    def value(obj: dict[str, Any]) -> Any:
        current: Any = obj.get("status") or {}
        for part in path.split("."):
            current = (current or {}).get(part) if isinstance(current, dict) else None
        return default if current is None else current

    return value


def _spec(key: str, default: Any = 0) -> Cell:
    return lambda o: (o.get("spec") or {}).get(key, default)


def _service_ports(svc: dict[str, Any]) -> str:
    parts = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return _join(parts)


def _external_ip(svc: dict[str, Any]) -> str:
    spec = svc.get("spec") or {}
    ips = list(spec.get("externalIPs") or [])
    for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        ips.append(ing.get("ip") or ing.get("hostname") or "")
    if spec.get("type") == "ExternalName":
        return spec.get("externalName", "<none>")
    if spec.get("type") == "LoadBalancer" and not ips:
        return "<pending>"
    return _join(ips)


def _csr_condition(csr: dict[str, Any]) -> str:
    conds = [c.get("type", "") for c in (csr.get("status") or {}).get("conditions") or []]
    if (csr.get("status") or {}).get("certificate"):
        conds.append("Issued")
    return ",".join(conds) or "Pending"


def _endpoints(ep: dict[str, Any]) -> str:
    out = []
    for subset in ep.get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                out.append(f"{address.get('ip')}:{port.get('port')}" if port else address["ip"])
    return _join(out)


def _event_object(ev: dict[str, Any]) -> str:
    inv = ev.get("involvedObject") or ev.get("regarding") or {}
    return f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}"


def _last_seen(ev: dict[str, Any]) -> str:
    ts = ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp")
    return timeutil.human_age(timeutil.parse_time(ts))


def _binding_role(b: dict[str, Any]) -> str:
    ref = b.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _subjects(kind: str) -> Cell:
    return lambda b: _join(
        [
            s.get("name", "")
            if kind != "ServiceAccount"
            else f"{s.get('namespace', '')}/{s.get('name', '')}"
            for s in b.get("subjects") or []
            if s.get("kind") == kind
        ],
        "",
    )


NAME: Column = ("Name", "string", 0, _name)
AGE: Column = ("Age", "string", 0, _age)
CREATED_AT: Column = ("Created At", "date", 0, lambda o: o["metadata"].get("creationTimestamp"))

COLUMNS: dict[str, list[Column]] = {
    "/pods": [
        NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, pod_status_text),
        ("Restarts", "string", 0, _pod_restarts),
        AGE,
        ("IP", "string", 1, lambda p: (p.get("status") or {}).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda p: (p.get("spec") or {}).get("nodeName") or "<none>"),
        (
            "Nominated Node",
            "string",
            1,
            lambda p: (p.get("status") or {}).get("nominatedNodeName") or "<none>",
        ),
        ("Readiness Gates", "string", 1, _readiness_gates),
    ],
    "/nodes": [
        NAME,
        ("Status", "string", 0, node_status_text),
        ("Roles", "string", 0, _node_roles),
        AGE,
        ("Version", "string", 0, _node_info("kubeletVersion")),
        ("Internal-IP", "string", 1, lambda n: _node_address(n, "InternalIP")),
        ("External-IP", "string", 1, lambda n: _node_address(n, "ExternalIP")),
        ("OS-Image", "string", 1, _node_info("osImage")),
        ("Kernel-Version", "string", 1, _node_info("kernelVersion")),
        ("Container-Runtime", "string", 1, _node_info("containerRuntimeVersion")),
    ],
    "/namespaces": [NAME, ("Status", "string", 0, _status("phase", "")), AGE],
    "/services": [
        NAME,
        ("Type", "string", 0, _spec("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, _spec("clusterIP", "<none>")),
        ("External-IP", "string", 0, _external_ip),
        ("Port(s)", "string", 0, _service_ports),
        AGE,
        (
            "Selector",
            "string",
            1,
            lambda s: _join(
                [f"{k}={v}" for k, v in ((s.get("spec") or {}).get("selector") or {}).items()]
            ),
        ),
    ],
    "/configmaps": [
        NAME,
        ("Data", "integer", 0, lambda c: len(c.get("data") or {}) + len(c.get("binaryData") or {})),
        AGE,
    ],
    "/secrets": [
        NAME,
        ("Type", "string", 0, lambda s: s.get("type", "Opaque")),
        ("Data", "integer", 0, lambda s: len(s.get("data") or {})),
        AGE,
    ],
    "/serviceaccounts": [NAME, AGE],
    "/endpoints": [NAME, ("Endpoints", "string", 0, _endpoints), AGE],
    "/events": [
        ("Last Seen", "string", 0, _last_seen),
        ("Type", "string", 0, lambda e: e.get("type", "")),
        ("Reason", "string", 0, lambda e: e.get("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda e: e.get("message") or e.get("note") or ""),
    ],
    "apps/deployments": [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda d: f"{_status('readyReplicas')(d)}/{_spec('replicas', 1)(d)}",
        ),
        ("Up-to-date", "integer", 0, _status("updatedReplicas")),
        ("Available", "integer", 0, _status("availableReplicas")),
        AGE,
        ("Containers", "string", 1, lambda d: _join([c["name"] for c in _template_containers(d)])),
        (
            "Images",
            "string",
            1,
            lambda d: _join([c.get("image", "") for c in _template_containers(d)]),
        ),
        ("Selector", "string", 1, lambda d: _selector((d.get("spec") or {}).get("selector"))),
    ],
    "apps/replicasets": [
        NAME,
        ("Desired", "integer", 0, _spec("replicas", 1)),
        ("Current", "integer", 0, _status("replicas")),
        ("Ready", "integer", 0, _status("readyReplicas")),
        AGE,
        ("Containers", "string", 1, lambda d: _join([c["name"] for c in _template_containers(d)])),
        (
            "Images",
            "string",
            1,
            lambda d: _join([c.get("image", "") for c in _template_containers(d)]),
        ),
        ("Selector", "string", 1, lambda d: _selector((d.get("spec") or {}).get("selector"))),
    ],
    "apps/daemonsets": [
        NAME,
        ("Desired", "integer", 0, _status("desiredNumberScheduled")),
        ("Current", "integer", 0, _status("currentNumberScheduled")),
        ("Ready", "integer", 0, _status("numberReady")),
        ("Up-to-date", "integer", 0, _status("updatedNumberScheduled")),
        ("Available", "integer", 0, _status("numberAvailable")),
        (
            "Node Selector",
            "string",
            0,
            lambda d: _join(
                [
                    f"{k}={v}"
                    for k, v in (
                        ((d.get("spec") or {}).get("template") or {})
                        .get("spec", {})
                        .get("nodeSelector")
                        or {}
                    ).items()
                ]
            ),
        ),
        AGE,
        ("Containers", "string", 1, lambda d: _join([c["name"] for c in _template_containers(d)])),
        (
            "Images",
            "string",
            1,
            lambda d: _join([c.get("image", "") for c in _template_containers(d)]),
        ),
        ("Selector", "string", 1, lambda d: _selector((d.get("spec") or {}).get("selector"))),
    ],
    "coordination.k8s.io/leases": [
        NAME,
        ("Holder", "string", 0, _spec("holderIdentity", "")),
        AGE,
    ],
    "policy/poddisruptionbudgets": [
        NAME,
        ("Min Available", "string", 0, lambda p: str(_spec("minAvailable", "N/A")(p))),
        ("Max Unavailable", "string", 0, lambda p: str(_spec("maxUnavailable", "N/A")(p))),
        ("Allowed Disruptions", "integer", 0, _status("disruptionsAllowed")),
        AGE,
    ],
    "certificates.k8s.io/certificatesigningrequests": [
        NAME,
        AGE,
        ("SignerName", "string", 0, _spec("signerName", "")),
        ("Requestor", "string", 0, _spec("username", "")),
        (
            "RequestedDuration",
            "string",
            0,
            lambda c: (
                f"{c['spec']['expirationSeconds'] // 3600}h"
                if (c.get("spec") or {}).get("expirationSeconds")
                else "<none>"
            ),
        ),
        ("Condition", "string", 0, _csr_condition),
    ],
    "/persistentvolumes": [
        NAME,
        (
            "Capacity",
            "string",
            0,
            lambda v: ((v.get("spec") or {}).get("capacity") or {}).get("storage", ""),
        ),
        ("Access Modes", "string", 0, lambda v: ",".join(_spec("accessModes", [])(v))),
        ("Reclaim Policy", "string", 0, _spec("persistentVolumeReclaimPolicy", "")),
        ("Status", "string", 0, _status("phase", "")),
        (
            "Claim",
            "string",
            0,
            lambda v: "/".join(
                filter(
                    None,
                    [
                        ((v.get("spec") or {}).get("claimRef") or {}).get(k)
                        for k in ("namespace", "name")
                    ],
                )
            ),
        ),
        ("StorageClass", "string", 0, _spec("storageClassName", "")),
        AGE,
    ],
    "/persistentvolumeclaims": [
        NAME,
        ("Status", "string", 0, _status("phase", "")),
        ("Volume", "string", 0, _spec("volumeName", "")),
        (
            "Capacity",
            "string",
            0,
            lambda v: ((v.get("status") or {}).get("capacity") or {}).get("storage", ""),
        ),
        ("Access Modes", "string", 0, lambda v: ",".join(_status("accessModes", [])(v))),
        ("StorageClass", "string", 0, _spec("storageClassName", "")),
        AGE,
    ],
    "storage.k8s.io/storageclasses": [
        NAME,
        ("Provisioner", "string", 0, lambda s: s.get("provisioner", "")),
        ("ReclaimPolicy", "string", 0, lambda s: s.get("reclaimPolicy", "Delete")),
        ("VolumeBindingMode", "string", 0, lambda s: s.get("volumeBindingMode", "Immediate")),
        (
            "AllowVolumeExpansion",
            "string",
            0,
            lambda s: str(bool(s.get("allowVolumeExpansion"))).lower(),
        ),
        AGE,
    ],
    "rbac.authorization.k8s.io/clusterroles": [NAME, CREATED_AT],
    "rbac.authorization.k8s.io/roles": [NAME, CREATED_AT],
    "rbac.authorization.k8s.io/clusterrolebindings": [
        NAME,
        ("Role", "string", 0, _binding_role),
        AGE,
        ("Users", "string", 1, _subjects("User")),
        ("Groups", "string", 1, _subjects("Group")),
        ("ServiceAccounts", "string", 1, _subjects("ServiceAccount")),
    ],
    "rbac.authorization.k8s.io/rolebindings": [
        NAME,
        ("Role", "string", 0, _binding_role),
        AGE,
        ("Users", "string", 1, _subjects("User")),
        ("Groups", "string", 1, _subjects("Group")),
        ("ServiceAccounts", "string", 1, _subjects("ServiceAccount")),
    ],
}


def to_table(
    rt: ResourceType, objs: list[dict[str, Any]], query: dict[str, str], store, rv: str
) -> dict[str, Any]:
    columns = COLUMNS.get(rt.key, [NAME, CREATED_AT])
    include = query.get("includeObject", "Metadata")
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": [_safe(fn, obj) for _, _, _, fn in columns]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {
                "name": name,
                "type": ctype,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, ctype, priority, _ in columns
        ],
        "rows": rows,
    }


def _safe(fn: Cell, obj: dict[str, Any]) -> Any:
    try:
        return fn(obj)
    except (KeyError, TypeError, ValueError, AttributeError):
        return ""


__all__ = [
    "controller_ref",
    "node_status_text",
    "pod_ready",
    "pod_status_text",
    "to_table",
    "wants_table",
]
