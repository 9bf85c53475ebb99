"""Operations of the Kubernetes object node types (blueprints/types/k8s-resources.yaml).

Thin: read the node's properties and its relationships, call k8s_cluster.resources, record what
was applied. Each object node records `objects` (what it applied, and whether this deployment
created it: only those are deleted) and `overrides` (changes given to update_resources).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import urllib3
from cloudify.constants import RELATIONSHIP_INSTANCE
from cloudify.decorators import operation
from cloudify.exceptions import NonRecoverableError, RecoverableError
from kubernetes import client

from . import kube
from .resources import (
    PROPAGATION_POLICIES,
    Cluster,
    Connection,
    ExternalEndpoint,
    ObjectRef,
    ResourceError,
    carry_created,
    check_access,
    load_documents,
    machine_address,
    merge_patch,
    named_object,
    node_port_urls,
)

CONNECTION_TYPE = "k8s.nodes.ClusterConnection"
ROUTES_TO = "k8s.relationships.routes_to"
CONNECTION_PROPERTIES = ("kubeconfig", "context", "api_endpoint", "token", "ca_cert")


# --- context helpers -------------------------------------------------------------------------


def _subject(ctx):
    """The node and instance an operation works on: the source, for a relationship operation."""
    return ctx.source if ctx.type == RELATIONSHIP_INSTANCE else ctx


def _target(instance, type_name: str, *, relationship: bool = False):
    for rel in instance.relationships:
        # an operation's relationship context may not carry the type hierarchy
        types = (
            (rel.type_hierarchy or [rel.type]) if relationship else rel.target.node.type_hierarchy
        )
        if type_name in types:
            return rel.target
    raise NonRecoverableError(f"{instance.id} has no relationship to a {type_name}")


def connection_from(properties: dict) -> Connection:
    return Connection(**{key: str(properties.get(key) or "") for key in CONNECTION_PROPERTIES})


@contextmanager
def api_errors() -> Iterator[None]:
    """Errors of definitions and credentials are final; an unreachable API server is worth a
    retry (see api_failure)."""
    try:
        yield
    except ResourceError as err:
        raise NonRecoverableError(str(err)) from None
    except (client.ApiException, OSError, urllib3.exceptions.HTTPError) as err:
        raise api_failure(err) from None


@contextmanager
def cluster_of(instance) -> Iterator[Cluster]:
    """The cluster an object node lives in (its relationship to a ClusterConnection)."""
    connection = connection_from(_target(instance, CONNECTION_TYPE).node.properties)
    with api_errors():
        yield Cluster(connection.api_client())


def api_failure(err: Exception) -> Exception:
    """What a failed API call becomes: a certificate the CA does not sign is final; an API
    server that is down or answers 5xx is worth a retry."""
    reason = getattr(err, "reason", None)
    if isinstance(err, urllib3.exceptions.SSLError) or isinstance(
        reason, urllib3.exceptions.SSLError
    ):
        return NonRecoverableError(
            f"TLS with the Kubernetes API failed (check ca_cert): {reason or err}"
        )
    if isinstance(err, client.ApiException):
        return RecoverableError(f"Kubernetes API answered {err.status} {err.reason}")
    return RecoverableError(f"Kubernetes API unreachable: {err}")


def _recorded(instance) -> list[ObjectRef]:
    return [ObjectRef.from_dict(d) for d in instance.runtime_properties.get("objects", [])]


def _wait(cluster: Cluster, refs: list[ObjectRef], check, timeout: float, what: str) -> None:
    for ref in refs:
        try:
            kube.wait_until(lambda ref=ref: check(ref), timeout, f"{ref} {what}")
        except TimeoutError as err:
            raise NonRecoverableError(str(err)) from None


# --- cluster connection ----------------------------------------------------------------------


@operation(resumable=True)
def check_connection(ctx, **_):
    """Reach the API server once, so a wrong kubeconfig, token or CA fails install first."""
    connection = connection_from(ctx.node.properties)
    with api_errors():
        api_client = connection.api_client()
        version = check_access(api_client)
    host = api_client.configuration.host
    ctx.instance.runtime_properties.update({"api_endpoint": host, "server_version": version})
    ctx.logger.info(f"Kubernetes API at {host} answers: {version}")


# --- objects ---------------------------------------------------------------------------------


def node_documents(ctx, overrides: dict) -> list[dict]:
    """The node's objects: a named type's fields, or the definition and manifest of the
    generic type, each with the update_resources overrides merged in."""
    props = ctx.node.properties
    try:
        if props.get("kind"):
            documents = [named_object(props["api_version"], props["kind"], props)]
        else:
            manifest = ctx.get_resource(props["manifest"]).decode() if props.get("manifest") else ""
            documents = load_documents(props.get("definition"), manifest)
    except ResourceError as err:
        raise NonRecoverableError(f"{ctx.node.name}: {err}") from None
    return [merge_patch(doc, overrides) for doc in documents]


def _apply_all(ctx, subject, cluster: Cluster, documents: list[dict]) -> None:
    """Apply the documents in order, record them, and delete objects this node created
    before that its definition no longer holds."""
    recorded = _recorded(subject.instance)
    namespace = subject.node.properties.get("namespace", "")
    results = [cluster.apply(doc, namespace) for doc in documents]
    for result in results:
        ctx.logger.info(str(result))
    current = carry_created([result.ref for result in results], recorded)
    subject.instance.runtime_properties["objects"] = [ref.to_dict() for ref in current]
    dropped = [old for old in recorded if not any(old.same_object(new) for new in current)]
    _delete(ctx, subject, cluster, dropped)


@operation(resumable=True)
def apply_objects(ctx, **_):
    _apply_objects(ctx, overrides=None)


def _apply_objects(ctx, overrides: dict | None) -> None:
    """Create or update the node's objects. `overrides` (a JSON merge patch, from
    update_resources) is merged into the ones recorded before and kept for later runs."""
    props = ctx.instance.runtime_properties
    if overrides is not None:
        props["overrides"] = merge_patch(props.get("overrides") or {}, overrides)
    documents = node_documents(ctx, props.get("overrides") or {})
    with cluster_of(ctx.instance) as cluster:
        _apply_all(ctx, ctx, cluster, documents)


@operation(resumable=True)
def wait_ready(ctx, **_):
    _wait_ready(ctx)


def _wait_ready(ctx) -> None:
    """Wait until each object is ready (a Deployment available, a PVC bound, a Service with
    endpoints...), then record a NodePort Service's URLs."""
    subject = _subject(ctx)
    props = subject.node.properties
    refs = _recorded(subject.instance)
    with cluster_of(subject.instance) as cluster:
        if props.get("wait", True):
            _wait(cluster, refs, cluster.readiness, float(props.get("wait_timeout", 300)), "ready")
            ctx.logger.info(f"Ready: {', '.join(str(ref) for ref in refs)}")
        _record_urls(subject.instance, cluster, refs, props.get("url_scheme") or "http")


def _record_urls(instance, cluster: Cluster, refs: list[ObjectRef], scheme: str) -> None:
    services = [ref for ref in refs if ref.kind == "Service"]
    if not services:
        return
    live = cluster.get(services[0]) or {}
    urls = node_port_urls(live, cluster.node_addresses(), scheme)
    if urls:
        ports = live["spec"]["ports"]
        instance.runtime_properties.update({"node_port": ports[0]["nodePort"], "urls": urls})


@operation(resumable=True)
def update_objects(ctx, overrides=None, **_):
    """update_resources' step for one node: apply (with overrides), then wait until ready."""
    _apply_objects(ctx, overrides)
    _wait_ready(ctx)


@operation(resumable=True)
def delete_objects(ctx, **_):
    with cluster_of(ctx.instance) as cluster:
        _delete(ctx, ctx, cluster, _recorded(ctx.instance))
    ctx.instance.runtime_properties.pop("objects", None)


def _delete(ctx, subject, cluster: Cluster, refs: list[ObjectRef]) -> None:
    """Delete, last first, the objects this deployment created; wait until they are gone.
    Objects that existed before the deployment are left in place."""
    props = subject.node.properties
    policy = props.get("delete_propagation") or "Foreground"
    if policy not in PROPAGATION_POLICIES:
        raise NonRecoverableError(
            f"delete_propagation {policy!r}: use one of {', '.join(PROPAGATION_POLICIES)}"
        )
    deleted = []
    for ref in reversed(refs):
        if not ref.created:
            ctx.logger.info(f"{ref} existed before this deployment: left in place")
        elif cluster.delete(ref, policy):
            deleted.append(ref)
    _wait(cluster, deleted, cluster.gone, float(props.get("wait_timeout", 300)), "deleted")
    for ref in deleted:
        ctx.logger.info(f"{ref} deleted ({policy})")


# --- machines outside the cluster ------------------------------------------------------------


@operation(resumable=True)
def record_machine(ctx, address=None, port=None, **_):
    """A machine outside Kubernetes: record its address and port where relationships read
    them (runtime properties ip and port), as a compute provider does."""
    props = ctx.node.properties
    ip = address or props.get("address")
    if not ip:
        raise NonRecoverableError(f"{ctx.node.name}: no address given")
    ctx.instance.runtime_properties.update({"ip": ip, "port": int(port or props.get("port") or 0)})
    ctx.logger.info(f"Machine {ctx.node.name} at {ip}")


def external_endpoint(subject) -> ExternalEndpoint:
    """The machine that the ExternalService node routes to, as an endpoint to publish."""
    props = subject.node.properties
    machine = _target(subject.instance, ROUTES_TO, relationship=True)
    runtime, machine_props = machine.instance.runtime_properties, machine.node.properties
    return ExternalEndpoint(
        name=props["name"],
        namespace=props.get("namespace") or "default",
        address=machine_address(runtime, machine_props),
        port=int(props.get("port") or runtime.get("port") or machine_props.get("port") or 0),
        port_name=props.get("port_name") or "",
        protocol=props.get("protocol") or "TCP",
    )


@operation(resumable=True)
def publish_external(ctx, **_):
    _publish_external(ctx)


def _publish_external(ctx) -> None:
    """Publish the machine's current address and port as a Service without selector and its
    EndpointSlice. Runs at create and again at every establish of the routes_to relationship
    (install, and heal of the machine), so a new address is published."""
    subject = _subject(ctx)
    endpoint = external_endpoint(subject)
    with cluster_of(subject.instance) as cluster:
        _apply_all(ctx, subject, cluster, endpoint.objects())
    ctx.logger.info(
        f"{endpoint.name}.{endpoint.namespace}.svc routes to {endpoint.address}:{endpoint.port}"
    )


@operation(resumable=True)
def update_external(ctx, **_):
    """update_resources' step for an ExternalService: publish again, then wait until ready."""
    _publish_external(ctx)
    _wait_ready(ctx)
