"""Per-kind admission: defaulting, validation and allocation on create and update."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import random
import re
from typing import Any

from . import certs, timeutil
from .auth import User
from .errors import ApiError, invalid
from .objects import labels_of
from .registry import ResourceType
from .selectors import labelselector_matches

SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

GENERATION_KEYS = {
    "/pods",
    "/replicationcontrollers",
    "apps/deployments",
    "apps/replicasets",
    "apps/daemonsets",
    "apps/statefulsets",
    "batch/jobs",
    "batch/cronjobs",
    "policy/poddisruptionbudgets",
    "networking.k8s.io/ingresses",
    "networking.k8s.io/networkpolicies",
    "apiextensions.k8s.io/customresourcedefinitions",
}

# status is reset on create for these (nodes, namespaces and CSRs keep or build their own);
# the values are the fields Go always serialises (no omitempty), which clients may require.
RESET_STATUS: dict[str, dict[str, int]] = {
    "apps/deployments": {},
    "apps/replicasets": {"replicas": 0},
    "apps/daemonsets": {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    },
    "apps/statefulsets": {"replicas": 0, "availableReplicas": 0},
    "batch/jobs": {},
    "policy/poddisruptionbudgets": {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    },
    "/replicationcontrollers": {"replicas": 0},
}

DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def validate_name(rt: ResourceType, name: str) -> None:
    if rt.group == "rbac.authorization.k8s.io":
        if name in (".", "..") or "/" in name or "%" in name:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [("metadata.name", f"Invalid value: \"{name}\": may not contain '/' or '%'")],
            )
        return
    if rt.key in ("/namespaces",):
        ok, msg, limit = LABEL_RE.match(name), LABEL_MSG, 63
    elif rt.key == "/services":
        ok, msg, limit = DNS1035_RE.match(name), DNS1035_MSG, 63
    else:
        ok, msg, limit = SUBDOMAIN_RE.match(name), SUBDOMAIN_MSG, 253
    if not ok:
        raise invalid(
            rt.kind, rt.group, name, [("metadata.name", f'Invalid value: "{name}": {msg}')]
        )
    if len(name) > limit:
        raise invalid(
            rt.kind,
            rt.group,
            name,
            [
                (
                    "metadata.name",
                    f'Invalid value: "{name}": must be no more than {limit} characters',
                )
            ],
        )


class Admission:
    """Kind-specific mutation and validation. ``store`` is read under the caller's lock."""

    def __init__(self, store, service_cidr: str) -> None:
        self.store = store
        self.service_net = ipaddress.ip_network(service_cidr, strict=False)

    # --- entry points -------------------------------------------------------------------

    def on_create(self, rt: ResourceType, obj: dict[str, Any], user: User) -> None:
        if rt.key in RESET_STATUS:
            obj["status"] = dict(RESET_STATUS[rt.key])
        hook = getattr(self, "create_" + _hook_name(rt), None)
        if hook:
            hook(rt, obj, user)

    def on_update(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any], user: User
    ) -> None:
        hook = getattr(self, "update_" + _hook_name(rt), None)
        if hook:
            hook(rt, obj, old, user)

    # --- core ---------------------------------------------------------------------------

    def create_namespaces(self, rt, obj, user) -> None:
        meta = obj["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}

    def update_namespaces(self, rt, obj, old, user) -> None:
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = old["metadata"][
            "name"
        ]

    def create_pods(self, rt, obj, user) -> None:
        spec = obj.setdefault("spec", {})
        containers = spec.get("containers")
        name = obj["metadata"]["name"]
        if not containers:
            raise invalid(rt.kind, "", name, [("spec.containers", "Required value")])
        for index, container in enumerate(containers):
            if not container.get("name"):
                raise invalid(
                    rt.kind, "", name, [(f"spec.containers[{index}].name", "Required value")]
                )
            if not container.get("image"):
                raise invalid(
                    rt.kind, "", name, [(f"spec.containers[{index}].image", "Required value")]
                )
        _default_pod_spec(spec)
        tolerations = spec.setdefault("tolerations", [])
        for default in DEFAULT_TOLERATIONS:
            if not any(
                t.get("key") == default["key"] and t.get("effect") in ("", None, "NoExecute")
                for t in tolerations
            ):
                tolerations.append(dict(default))
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
        if spec.get("nodeName"):
            obj["status"]["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": timeutil.rfc3339()}
            ]

    def update_pods(self, rt, obj, old, user) -> None:
        old_node = old.get("spec", {}).get("nodeName")
        new_node = obj.get("spec", {}).get("nodeName")
        if old_node and new_node != old_node:
            raise invalid(
                rt.kind,
                "",
                old["metadata"]["name"],
                [
                    (
                        "spec",
                        "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
                        "existing tolerations), `spec.terminationGracePeriodSeconds`",
                    )
                ],
            )

    def create_secrets(self, rt, obj, user) -> None:
        obj.setdefault("type", "Opaque")
        _fold_string_data(rt, obj)

    def update_secrets(self, rt, obj, old, user) -> None:
        obj.setdefault("type", old.get("type", "Opaque"))
        _fold_string_data(rt, obj)

    def create_services(self, rt, obj, user) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec["type"] != "ExternalName":
            self._allocate_cluster_ip(rt, obj)
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            used = self._used_node_ports()
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    free = [p for p in range(30000, 32768) if p not in used]
                    port["nodePort"] = random.choice(free)
                    used.add(port["nodePort"])
        obj["status"] = {"loadBalancer": {}}

    def update_services(self, rt, obj, old, user) -> None:
        spec = obj.setdefault("spec", {})
        old_spec = old.get("spec", {})
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in old_spec and not spec.get(key):
                spec[key] = old_spec[key]
        if spec.get("clusterIP") != old_spec.get("clusterIP"):
            raise invalid(
                rt.kind,
                "",
                old["metadata"]["name"],
                [
                    (
                        "spec.clusterIPs[0]",
                        f'Invalid value: []string{{"{spec.get("clusterIP")}"}}: '
                        "may not change once set",
                    )
                ],
            )
        old_ports = {
            (p.get("port"), p.get("protocol")): p.get("nodePort")
            for p in old_spec.get("ports") or []
        }
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec.get("type") in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                port["nodePort"] = old_ports.get((port.get("port"), port["protocol"])) or (
                    random.choice(
                        [p for p in range(30000, 32768) if p not in self._used_node_ports()]
                    )
                )

    def _used_node_ports(self) -> set[int]:
        return {
            p.get("nodePort")
            for svc in self.store.list("/services")
            for p in (svc.get("spec", {}).get("ports") or [])
            if p.get("nodePort")
        }

    def _allocate_cluster_ip(self, rt, obj) -> None:
        spec = obj["spec"]
        wanted = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
        if wanted == "None":
            spec["clusterIP"] = "None"
            spec["clusterIPs"] = ["None"]
            return
        used = {s.get("spec", {}).get("clusterIP") for s in self.store.list("/services")}
        name = obj["metadata"]["name"]
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError:
                raise invalid(
                    rt.kind,
                    "",
                    name,
                    [
                        (
                            "spec.clusterIPs[0]",
                            f'Invalid value: "{wanted}": must be a valid IP address',
                        )
                    ],
                ) from None
            if address not in self.service_net:
                raise invalid(
                    rt.kind,
                    "",
                    name,
                    [
                        (
                            "spec.clusterIPs",
                            f'Invalid value: []string{{"{wanted}"}}: failed to '
                            f"allocate IP {wanted}: the provided IP ({wanted}) is "
                            f"not in the valid range. The range of valid IPs is "
                            f"{self.service_net}",
                        )
                    ],
                )
            if wanted in used:
                raise invalid(
                    rt.kind,
                    "",
                    name,
                    [
                        (
                            "spec.clusterIPs",
                            f'Invalid value: []string{{"{wanted}"}}: failed to '
                            f"allocate IP {wanted}: provided IP is already allocated",
                        )
                    ],
                )
        else:
            size = self.service_net.num_addresses
            band = min(max(16, size // 16), 256)
            candidates = range(band, size - 1)
            for _ in range(2000):
                offset = random.choice(candidates)
                text = str(self.service_net.network_address + offset)
                if text not in used:
                    wanted = text
                    break
            else:
                raise ApiError(500, "range is full", "InternalError")
        spec["clusterIP"] = wanted
        spec["clusterIPs"] = [wanted]

    # --- apps ---------------------------------------------------------------------------

    def _check_selector(self, rt, obj) -> None:
        spec = obj.setdefault("spec", {})
        name = obj["metadata"]["name"]
        selector = spec.get("selector")
        template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            raise invalid(rt.kind, rt.group, name, [("spec.selector", "Required value")])
        if not labelselector_matches(selector, template_labels):
            shown = ", ".join(f'"{k}":"{v}"' for k, v in template_labels.items())
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: map[string]string{{{shown}}}: "
                        "`selector` does not match template `labels`",
                    )
                ],
            )
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not containers:
            raise invalid(
                rt.kind, rt.group, name, [("spec.template.spec.containers", "Required value")]
            )

    def create_deployments(self, rt, obj, user) -> None:
        self._check_selector(rt, obj)
        spec = obj["spec"]
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})

    def update_deployments(self, rt, obj, old, user) -> None:
        self._check_selector(rt, obj)
        obj["spec"].setdefault("replicas", 1)

    def create_replicasets(self, rt, obj, user) -> None:
        self._check_selector(rt, obj)
        obj["spec"].setdefault("replicas", 1)

    update_replicasets = update_deployments

    def create_daemonsets(self, rt, obj, user) -> None:
        self._check_selector(rt, obj)
        spec = obj["spec"]
        spec.setdefault("revisionHistoryLimit", 10)
        strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})

    def update_daemonsets(self, rt, obj, old, user) -> None:
        self._check_selector(rt, obj)

    def create_statefulsets(self, rt, obj, user) -> None:
        self._check_selector(rt, obj)
        obj["spec"].setdefault("replicas", 1)

    # --- certificates -------------------------------------------------------------------

    def create_certificatesigningrequests(self, rt, obj, user) -> None:
        spec = obj.setdefault("spec", {})
        name = obj["metadata"]["name"]
        if not spec.get("signerName"):
            raise invalid(rt.kind, rt.group, name, [("spec.signerName", "Required value")])
        if not spec.get("usages"):
            raise invalid(rt.kind, rt.group, name, [("spec.usages", "Required value")])
        try:
            certs.decode_request(spec.get("request") or "")
        except certs.SigningError as exc:
            raise invalid(
                rt.kind, rt.group, name, [("spec.request", f"Invalid value: []byte{{...}}: {exc}")]
            ) from None
        spec["username"] = user.name
        spec["groups"] = list(user.groups)
        obj["status"] = {}

    def update_certificatesigningrequests(self, rt, obj, old, user) -> None:
        obj["spec"] = old.get("spec", {})


def _hook_name(rt: ResourceType) -> str:
    return rt.plural.replace("-", "_")


def _fold_string_data(rt: ResourceType, obj: dict[str, Any]) -> None:
    """As the real API does: stringData is merged into data (base64) and never stored."""
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise invalid(
                rt.kind,
                "",
                obj["metadata"]["name"],
                [(f"data[{key}]", "Invalid value: illegal base64 data")],
            ) from None
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = container.get("image", "")
        latest = image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _qos_class(spec: dict[str, Any]) -> str:
    requests = limits = False
    guaranteed = True
    for container in spec.get("containers") or []:
        res = container.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        requests = requests or bool(req)
        limits = limits or bool(lim)
        if (
            not lim
            or any(req.get(k, lim.get(k)) != lim.get(k) for k in ("cpu", "memory"))
            or not {"cpu", "memory"} <= set(lim)
        ):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def pod_matches_labels(selector: dict[str, Any] | None, pod: dict[str, Any]) -> bool:
    return labelselector_matches(selector, labels_of(pod))
