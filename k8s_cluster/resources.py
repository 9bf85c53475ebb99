"""Kubernetes objects from blueprints: definitions, apply (create or patch), readiness, delete,
and machines outside the cluster published into it as Services.

Pure helpers (documents, merge patches, diffs) need no cluster; `Cluster` wraps the kubernetes
client's dynamic client, so any kind the API server serves can be applied. Apply is server-side
apply with this suite's field manager: a re-run converges, changed fields are patched, fields
dropped from a definition are dropped from the object (on a real API server; the test stand-in
merges instead). Values of Secrets are never put in messages: diffs name fields, not values.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

FIELD_MANAGER = "cloudify-k8s-cluster"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "cloudify-k8s-cluster"
HOSTNAME_LABEL = "kubernetes.io/hostname"
PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")
# top-level fields a named node type may carry besides apiVersion, kind and metadata
OBJECT_FIELDS = (
    "spec",
    "data",
    "stringData",
    "binaryData",
    "type",
    "immutable",
    "provisioner",
    "parameters",
    "reclaimPolicy",
    "volumeBindingMode",
    "allowVolumeExpansion",
    "mountOptions",
)


class ResourceError(Exception):
    """A definition or a cluster answer that retrying will not fix."""


# --- connection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """How to reach the API server: a kubeconfig file, or an endpoint with a bearer token and
    the cluster's CA certificate (PEM text or a file)."""

    kubeconfig: str = ""
    context: str = ""
    api_endpoint: str = ""
    token: str = field(default="", repr=False)
    ca_cert: str = ""

    def problems(self) -> list[str]:
        if self.kubeconfig and self.api_endpoint:
            return ["give either kubeconfig or api_endpoint (with token and ca_cert), not both"]
        if self.kubeconfig:
            path = Path(self.kubeconfig).expanduser()
            return [] if path.is_file() else [f"kubeconfig {path} is not a readable file"]
        if not self.api_endpoint:
            return ["give kubeconfig, or api_endpoint with token and ca_cert"]
        found = [] if self.api_endpoint.startswith("https://") else ["api_endpoint: https:// URL"]
        if not self.token:
            found.append("token is required with api_endpoint")
        if not self.ca_cert:
            found.append("ca_cert (PEM text or a file) is required with api_endpoint")
        return found

    def api_client(self) -> client.ApiClient:
        found = self.problems()
        if found:
            raise ResourceError("cluster connection: " + "; ".join(found))
        if self.kubeconfig:
            return config.new_client_from_config(
                config_file=str(Path(self.kubeconfig).expanduser()), context=self.context or None
            )
        configuration = client.Configuration()
        configuration.host = self.api_endpoint
        configuration.api_key = {"authorization": self.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        configuration.ssl_ca_cert = self._ca_file()
        return client.ApiClient(configuration)

    def _ca_file(self) -> str:
        """The CA as a file: the one named, or the PEM text written once to a file named by
        its digest (a CA certificate is public; the file is only what the client reads)."""
        if "-----BEGIN CERTIFICATE-----" not in self.ca_cert:
            return str(Path(self.ca_cert).expanduser())
        digest = hashlib.sha256(self.ca_cert.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"k8s-cluster-ca-{digest}.crt"
        if not path.exists() or path.read_text() != self.ca_cert:
            path.write_text(self.ca_cert)
        return str(path)


def check_access(api_client: client.ApiClient) -> str:
    """The server's version, after an authenticated request (/version alone answers anyone):
    wrong credentials fail here, naming the answer."""
    try:
        client.CoreApi(api_client).get_api_versions()
    except ApiException as err:
        if err.status in (401, 403):
            raise ResourceError(
                f"the API server at {api_client.configuration.host} answered {err.status} "
                f"{err.reason}: check the kubeconfig or token"
            ) from None
        raise
    return client.VersionApi(api_client).get_code().git_version


# --- definitions -----------------------------------------------------------------------------


def load_documents(definition: Any = None, manifest: str = "") -> list[dict]:
    """The objects of a node: an inline definition (one object or a list) and/or the YAML text
    of a manifest (several documents; empty ones are skipped). Each must name itself."""
    documents: list[Any] = []
    if definition:
        documents += definition if isinstance(definition, list) else [definition]
    if manifest:
        try:
            documents += [doc for doc in yaml.safe_load_all(manifest) if doc is not None]
        except yaml.YAMLError as err:
            raise ResourceError(f"manifest is not valid YAML: {err}") from None
    for index, doc in enumerate(documents):
        _check_document(index, doc)
    if not documents:
        raise ResourceError("no object defined: give a definition or a manifest")
    return [copy.deepcopy(doc) for doc in documents]


def _check_document(index: int, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise ResourceError(f"document {index + 1} is not a mapping")
    missing = [k for k in ("apiVersion", "kind") if not doc.get(k)]
    if not (doc.get("metadata") or {}).get("name"):
        missing.append("metadata.name")
    if missing:
        raise ResourceError(f"document {index + 1} has no {', '.join(missing)}")


def named_object(api_version: str, kind: str, properties: dict) -> dict:
    """An object from a named node type's properties (name, namespace, labels, annotations,
    and the kind's own top-level fields such as spec or data)."""
    metadata = {"name": properties.get("name")}
    for key in ("namespace", "labels", "annotations"):
        if properties.get(key):
            metadata[key] = properties[key]
    obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    obj.update({k: properties[k] for k in OBJECT_FIELDS if properties.get(k) not in (None, "")})
    _check_document(0, obj)
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def normalized(obj: dict) -> dict:
    """The object as the API server stores it where that matters for diffs: a Secret's
    stringData becomes base64 data."""
    obj = copy.deepcopy(obj)
    if obj.get("kind") == "Secret" and obj.get("stringData"):
        data = obj.setdefault("data", {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    return obj


def changed_paths(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths of the fields `desired` sets to something `live` does not have. Fields only
    `live` has (defaults, status) are not changes."""
    if isinstance(desired, dict) and isinstance(live, dict):
        found = []
        for key, value in desired.items():
            found += changed_paths(value, live.get(key), f"{path}.{key}" if path else key)
        return found
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        found = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            found += changed_paths(want, have, f"{path}[{index}]")
        return found
    return [] if desired == live else [path]


# --- references and results ------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str = ""
    created: bool = False  # made by this deployment (only those are deleted)

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @classmethod
    def of(cls, obj: dict, created: bool = False) -> ObjectRef:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace", ""), created)

    def same_object(self, other: ObjectRef) -> bool:
        return replace(self, created=False) == replace(other, created=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ObjectRef:
        return cls(**data)


def carry_created(refs: list[ObjectRef], recorded: list[ObjectRef]) -> list[ObjectRef]:
    """An object this deployment created stays its own through later applies (which find it
    existing): the created mark of the earlier record carries over."""
    return [
        replace(ref, created=ref.created or any(o.created and o.same_object(ref) for o in recorded))
        for ref in refs
    ]


@dataclass
class Applied:
    ref: ObjectRef
    action: str  # created, configured or unchanged
    changed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        fields = f" ({', '.join(self.changed)})" if self.changed else ""
        return f"{self.ref} {self.action}{fields}"


# --- the cluster -----------------------------------------------------------------------------


class Cluster:
    """Objects of any kind served by the API server, through the dynamic client."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.dynamic = DynamicClient(api_client)

    def resource(self, api_version: str, kind: str):
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise ResourceError(f"the cluster serves no {kind} in {api_version}") from None

    def get(self, ref: ObjectRef) -> dict | None:
        resource = self.resource(ref.api_version, ref.kind)
        try:
            return resource.get(name=ref.name, namespace=ref.namespace or None).to_dict()
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str = "", **selectors) -> list[dict]:
        resource = self.resource(api_version, kind)
        listed = resource.get(namespace=namespace or None, **selectors)
        return [item.to_dict() for item in listed.items]

    def apply(self, obj: dict, default_namespace: str = "") -> Applied:
        """Create the object or patch it to the definition (server-side apply, forced).
        The result's ref says created when this apply made it."""
        obj = normalized(obj)
        resource = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        if resource.namespaced:
            meta.setdefault("namespace", default_namespace or "default")
        else:
            meta.pop("namespace", None)
        before = self.get(ObjectRef.of(obj))
        after = self._server_side_apply(resource, obj)
        ref = ObjectRef.of(obj, created=before is None)
        if before is None:
            return Applied(ref, "created")
        if _without_status(before) == _without_status(after):
            return Applied(ref, "unchanged")
        return Applied(ref, "configured", changed_paths(_content(obj), before))

    def _server_side_apply(self, resource, obj: dict) -> dict:
        try:
            return resource.server_side_apply(
                body=obj, field_manager=FIELD_MANAGER, force_conflicts=True
            ).to_dict()
        except ApiException as err:
            if err.status in (400, 403, 404, 409, 415, 422):
                raise ResourceError(f"{ObjectRef.of(obj)}: {_reason(err)}") from None
            raise

    def delete(self, ref: ObjectRef, propagation: str = "Foreground") -> bool:
        """Ask for deletion; False when it was already gone."""
        resource = self.resource(ref.api_version, ref.kind)
        try:
            resource.delete(
                name=ref.name,
                namespace=ref.namespace or None,
                body={"propagationPolicy": propagation},
            )
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def gone(self, ref: ObjectRef) -> tuple[bool, str]:
        live = self.get(ref)
        if live is None:
            return True, "gone"
        meta = live["metadata"]
        finalizers = ", ".join(meta.get("finalizers") or []) or "none"
        return (
            False,
            f"still there (deletion requested: {bool(meta.get('deletionTimestamp'))}, "
            + (f"finalizers: {finalizers})"),
        )

    def readiness(self, ref: ObjectRef) -> tuple[bool, str]:
        live = self.get(ref)
        if live is None:
            return False, "not found"
        check = READINESS.get(ref.kind)
        return check(self, live) if check else (True, "exists")

    def node_addresses(self) -> list[str]:
        """Every Node's InternalIP (or its first address)."""
        found = []
        for node in self.list("v1", "Node"):
            addresses = (node.get("status") or {}).get("addresses") or []
            internal = [a["address"] for a in addresses if a.get("type") == "InternalIP"]
            found += internal[:1] or [a["address"] for a in addresses[:1]]
        return found


def _without_status(obj: dict) -> dict:
    """The object without what controllers change on their own (status, versions), to tell
    whether an apply changed it."""
    rest = {k: v for k, v in obj.items() if k != "status"}
    volatile = ("resourceVersion", "managedFields", "generation")
    rest["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in volatile}
    return rest


def _content(obj: dict) -> dict:
    """What a definition sets, without the server-managed metadata."""
    content = copy.deepcopy(obj)
    content["metadata"] = {
        k: v for k, v in obj["metadata"].items() if k in ("labels", "annotations")
    }
    return content


def _reason(err: ApiException) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        return f"{err.status} {err.reason}"


# --- readiness -------------------------------------------------------------------------------


def _deployment_ready(_cluster: Cluster, live: dict) -> tuple[bool, str]:
    want = (live.get("spec") or {}).get("replicas", 1)
    status = live.get("status") or {}
    observed = status.get("observedGeneration", 0) >= live["metadata"].get("generation", 0)
    available = status.get("availableReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    done = observed and available == updated == total == want
    return done, f"{available} of {want} replicas available, {updated} updated, {total} in total"


def _statefulset_ready(_cluster: Cluster, live: dict) -> tuple[bool, str]:
    want = (live.get("spec") or {}).get("replicas", 1)
    ready = (live.get("status") or {}).get("readyReplicas", 0)
    return ready == want, f"{ready} of {want} replicas ready"


def _daemonset_ready(_cluster: Cluster, live: dict) -> tuple[bool, str]:
    status = live.get("status") or {}
    want, ready = status.get("desiredNumberScheduled", 0), status.get("numberReady", 0)
    return ready == want, f"{ready} of {want} pods ready"


def _namespace_ready(_cluster: Cluster, live: dict) -> tuple[bool, str]:
    phase = (live.get("status") or {}).get("phase", "unknown")
    return phase == "Active", f"phase {phase}"


def _pvc_ready(cluster: Cluster, live: dict) -> tuple[bool, str]:
    phase = (live.get("status") or {}).get("phase") or "Pending"  # no status yet: not bound
    if phase == "Bound":
        return True, "Bound"
    mode = _binding_mode(cluster, (live.get("spec") or {}).get("storageClassName"))
    if phase == "Pending" and mode == "WaitForFirstConsumer":
        return True, "Pending until its first consumer (WaitForFirstConsumer)"
    return False, f"phase {phase}"


def _binding_mode(cluster: Cluster, class_name: str | None) -> str:
    classes = cluster.list("storage.k8s.io/v1", "StorageClass")
    default = "storageclass.kubernetes.io/is-default-class"
    for item in classes:
        annotations = item["metadata"].get("annotations") or {}
        if item["metadata"]["name"] == class_name or (
            class_name is None and annotations.get(default) == "true"
        ):
            return item.get("volumeBindingMode", "Immediate")
    return "Immediate"


def _service_ready(cluster: Cluster, live: dict) -> tuple[bool, str]:
    spec = live.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return True, f"ExternalName {spec.get('externalName')}"
    count = ready_endpoints(cluster, live["metadata"]["namespace"], live["metadata"]["name"])
    return count > 0, f"{count} ready endpoint(s)"


def ready_endpoints(cluster: Cluster, namespace: str, service: str) -> int:
    """Ready endpoint addresses of a Service: from its EndpointSlices, or (where no slice
    exists) from its Endpoints."""
    slices = cluster.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        namespace,
        label_selector=f"{SERVICE_NAME_LABEL}={service}",
    )
    if slices:
        return sum(
            len(endpoint.get("addresses") or [])
            for piece in slices
            for endpoint in piece.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready", True) is not False
        )
    endpoints = cluster.get(ObjectRef("v1", "Endpoints", service, namespace)) or {}
    return sum(len(subset.get("addresses") or []) for subset in endpoints.get("subsets") or [])


READINESS: dict[str, Callable[[Cluster, dict], tuple[bool, str]]] = {
    "Deployment": _deployment_ready,
    "StatefulSet": _statefulset_ready,
    "DaemonSet": _daemonset_ready,
    "Namespace": _namespace_ready,
    "PersistentVolumeClaim": _pvc_ready,
    "Service": _service_ready,
}


# --- Services -------------------------------------------------------------------------------


def node_port_urls(service: dict, node_addresses: Iterable[str], scheme: str = "http") -> list[str]:
    """URLs of a NodePort (or LoadBalancer) Service's first port on every node's address."""
    ports = [
        p["nodePort"] for p in (service.get("spec") or {}).get("ports") or [] if p.get("nodePort")
    ]
    if not ports:
        return []
    return [f"{scheme}://{_host_in_url(address)}:{ports[0]}" for address in node_addresses]


def _host_in_url(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


@dataclass(frozen=True)
class ExternalEndpoint:
    """A component outside the cluster, published in it under a Service name."""

    name: str
    namespace: str
    address: str
    port: int
    port_name: str = ""
    protocol: str = "TCP"

    def problems(self) -> list[str]:
        found = [] if self.address else ["the machine has no address (runtime ip or address)"]
        if not 0 < int(self.port or 0) < 65536:
            found.append(f"port {self.port!r} is not a TCP/UDP port")
        return found

    def objects(self) -> list[dict]:
        """A Service without selector and its EndpointSlice; a host name that is not an IP
        address becomes an ExternalName Service instead (cluster DNS answers with a CNAME)."""
        found = self.problems()
        if found:
            raise ResourceError(
                f"external service {self.namespace}/{self.name}: {'; '.join(found)}"
            )
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"ports": [self._port(target=True)]},
        }
        family = _address_family(self.address)
        if family is None:
            service["spec"].update(type="ExternalName", externalName=self.address)
            return [service]
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{self.name}-external",
                "namespace": self.namespace,
                "labels": {SERVICE_NAME_LABEL: self.name, MANAGED_BY_LABEL: MANAGED_BY},
            },
            "addressType": family,
            "endpoints": [{"addresses": [self.address], "conditions": {"ready": True}}],
            "ports": [self._port(target=False)],
        }
        return [service, endpoint_slice]

    def _port(self, target: bool) -> dict:
        port = {"name": self.port_name or "main", "port": int(self.port), "protocol": self.protocol}
        if target:
            port["targetPort"] = int(self.port)
        return port


def _address_family(address: str) -> str | None:
    try:
        return f"IPv{ipaddress.ip_address(address).version}"
    except ValueError:
        return None


def machine_address(runtime: dict, properties: dict) -> str:
    """A machine node's address: runtime ip/address (where providers record it) first."""
    for source in (runtime, properties):
        for key in ("ip", "address"):
            if source.get(key):
                return str(source[key])
    return ""
