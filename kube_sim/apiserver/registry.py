"""The resource types the server knows, and the discovery documents built from them.

Adding a kind to the generic store is one ``_add(...)`` line below: the REST layer, discovery,
OpenAPI index, persistence and watch all work from this table.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # subresource name -> (kind, verbs); "status" and "scale" are the common ones.
    subresources: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    # True when the main resource ignores status on update (status has its own endpoint).
    has_status: bool = False
    verbs: tuple[str, ...] = tuple(ALL_VERBS)

    @property
    def key(self) -> str:
        """Storage key: ``group/plural`` (core group is empty)."""
        return f"{self.group}/{self.plural}"

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


_STATUS = ("status", "", ("get", "patch", "update"))
_SCALE = ("scale", "Scale", ("get", "patch", "update"))

RESOURCES: list[ResourceType] = []


def _add(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw) -> None:
    RESOURCES.append(ResourceType(group, version, plural, kind, namespaced, **kw))


# core/v1
_add(
    "",
    "v1",
    "namespaces",
    "Namespace",
    False,
    short_names=("ns",),
    subresources=(_STATUS, ("finalize", "", ("update",))),
    has_status=True,
)
_add(
    "", "v1", "nodes", "Node", False, short_names=("no",), subresources=(_STATUS,), has_status=True
)
_add(
    "",
    "v1",
    "pods",
    "Pod",
    True,
    short_names=("po",),
    categories=("all",),
    subresources=(
        _STATUS,
        ("binding", "Binding", ("create",)),
        ("eviction", "Eviction", ("create",)),
    ),
    has_status=True,
)
_add("", "v1", "bindings", "Binding", True, verbs=("create",))
_add("", "v1", "secrets", "Secret", True)
_add("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",))
_add(
    "",
    "v1",
    "services",
    "Service",
    True,
    short_names=("svc",),
    categories=("all",),
    subresources=(_STATUS,),
    has_status=True,
)
_add("", "v1", "endpoints", "Endpoints", True, short_names=("ep",))
_add("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",))
_add("", "v1", "events", "Event", True, short_names=("ev",))
_add(
    "",
    "v1",
    "persistentvolumes",
    "PersistentVolume",
    False,
    short_names=("pv",),
    subresources=(_STATUS,),
    has_status=True,
)
_add(
    "",
    "v1",
    "persistentvolumeclaims",
    "PersistentVolumeClaim",
    True,
    short_names=("pvc",),
    subresources=(_STATUS,),
    has_status=True,
)
_add("", "v1", "limitranges", "LimitRange", True, short_names=("limits",))
_add(
    "",
    "v1",
    "resourcequotas",
    "ResourceQuota",
    True,
    short_names=("quota",),
    subresources=(_STATUS,),
    has_status=True,
)
_add(
    "",
    "v1",
    "replicationcontrollers",
    "ReplicationController",
    True,
    short_names=("rc",),
    subresources=(_STATUS,),
    has_status=True,
)
_add("", "v1", "podtemplates", "PodTemplate", True)
# apps/v1
_add(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    True,
    short_names=("deploy",),
    categories=("all",),
    subresources=(_STATUS, _SCALE),
    has_status=True,
)
_add(
    "apps",
    "v1",
    "replicasets",
    "ReplicaSet",
    True,
    short_names=("rs",),
    categories=("all",),
    subresources=(_STATUS, _SCALE),
    has_status=True,
)
_add(
    "apps",
    "v1",
    "daemonsets",
    "DaemonSet",
    True,
    short_names=("ds",),
    categories=("all",),
    subresources=(_STATUS,),
    has_status=True,
)
_add(
    "apps",
    "v1",
    "statefulsets",
    "StatefulSet",
    True,
    short_names=("sts",),
    categories=("all",),
    subresources=(_STATUS, _SCALE),
    has_status=True,
)
_add("apps", "v1", "controllerrevisions", "ControllerRevision", True)
# batch/v1
_add(
    "batch",
    "v1",
    "jobs",
    "Job",
    True,
    categories=("all",),
    subresources=(_STATUS,),
    has_status=True,
)
_add(
    "batch",
    "v1",
    "cronjobs",
    "CronJob",
    True,
    short_names=("cj",),
    categories=("all",),
    subresources=(_STATUS,),
    has_status=True,
)
# others
_add("coordination.k8s.io", "v1", "leases", "Lease", True)
_add(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "PodDisruptionBudget",
    True,
    short_names=("pdb",),
    subresources=(_STATUS,),
    has_status=True,
)
_add(
    "certificates.k8s.io",
    "v1",
    "certificatesigningrequests",
    "CertificateSigningRequest",
    False,
    short_names=("csr",),
    subresources=(_STATUS, ("approval", "", ("get", "patch", "update"))),
    has_status=True,
)
_add("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",))
_add("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False)
_add("storage.k8s.io", "v1", "csinodes", "CSINode", False)
_add(
    "storage.k8s.io",
    "v1",
    "volumeattachments",
    "VolumeAttachment",
    False,
    subresources=(_STATUS,),
    has_status=True,
)
_add("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
_add("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False)
_add("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
_add("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True)
_add("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
_add("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",))
_add(
    "networking.k8s.io",
    "v1",
    "ingresses",
    "Ingress",
    True,
    short_names=("ing",),
    subresources=(_STATUS,),
    has_status=True,
)
_add("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False)
_add("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",))
_add("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False)
_add(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
    short_names=("crd", "crds"),
    subresources=(_STATUS,),
    has_status=True,
)
_add(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    False,
)
_add(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    "MutatingWebhookConfiguration",
    False,
)
_add("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",))

# Resource types without persistence (only their POST endpoint is meaningful).
VIRTUAL = {"/bindings"}

BY_GV_PLURAL: dict[tuple[str, str], ResourceType] = {
    (r.group_version, r.plural): r for r in RESOURCES
}
BY_KEY: dict[str, ResourceType] = {}
for _r in RESOURCES:
    BY_KEY.setdefault(_r.key, _r)
BY_GVK: dict[tuple[str, str], ResourceType] = {(r.group_version, r.kind): r for r in RESOURCES}


def lookup(group_version: str, plural: str) -> ResourceType | None:
    return BY_GV_PLURAL.get((group_version, plural))


def by_key(key: str) -> ResourceType:
    return BY_KEY[key]


def groups() -> dict[str, list[str]]:
    """Named API groups -> versions (core group excluded), in registration order."""
    result: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group:
            versions = result.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)
    return result


@dataclass
class Discovery:
    """Builds the legacy discovery documents (/api, /apis, resource lists)."""

    server_address: str = ""
    extra: dict = field(default_factory=dict)

    def api_versions(self) -> dict:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
            ],
        }

    @staticmethod
    def api_group(name: str) -> dict:
        versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in groups()[name]]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": versions,
            "preferredVersion": versions[0],
        }

    def api_group_list(self) -> dict:
        items = []
        for name in groups():
            group = self.api_group(name)
            group.pop("kind")
            group.pop("apiVersion")
            items.append(group)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}

    @staticmethod
    def resource_list(group_version: str) -> dict | None:
        resources = []
        for r in RESOURCES:
            if r.group_version != group_version:
                continue
            entry = {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
                "storageVersionHash": storage_hash(r),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            resources.append(entry)
            for sub, kind, verbs in r.subresources:
                sub_entry = {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind or r.kind,
                    "verbs": list(verbs),
                }
                if sub == "eviction":
                    sub_entry.update(group="policy", version="v1")
                elif sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1")
                resources.append(sub_entry)
        if not resources:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }


def storage_hash(r: ResourceType) -> str:

    digest = hashlib.sha256(f"{r.group_version}/{r.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()
