"""The plugin's operations, named in blueprints/plugin.yaml. Thin: parse context, call the library.

Secrets (tokens, kubeconfig content, keys) are never logged and never stored as runtime
properties; the admin kubeconfig lives in a 0600 file in the deployment's local state.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path

from cloudify.decorators import operation
from cloudify.exceptions import NonRecoverableError, RecoverableError

from . import drain_policy, health, kube, node
from .drain_policy import STRICT, DrainOptions, DrainRefused
from .hosts import Host, host_name_for
from .hosts.provider import provider_for
from .inputs import ClusterSpec, InputError, validate
from .paths import deployment_state_dir, write_private_file
from .ssh import Remote, RemoteError

CLUSTER_TYPE = "k8s.nodes.Cluster"
CONTAINED_IN = "cloudify.relationships.contained_in"
JOINS = "k8s.relationships.joins"
NODE_READY_TIMEOUT = 300
UNINSTALL_DRAIN_TIMEOUT = 60


# --- context helpers -------------------------------------------------------------------------


def _related(ctx, type_name: str, *, relationship: bool = False):
    """The target of this instance's relationship whose (node or relationship) type is given."""
    for rel in ctx.instance.relationships:
        if relationship:
            # an operation's relationship context may not carry the type hierarchy
            hierarchy = rel.type_hierarchy or [rel.type]
        else:
            hierarchy = rel.target.node.type_hierarchy
        if type_name in hierarchy:
            return rel.target
    raise NonRecoverableError(f"{ctx.node.name} has no relationship to a {type_name}")


def _spec(ctx) -> ClusterSpec:
    try:
        return validate(_related(ctx, CLUSTER_TYPE).node.properties["settings"], Path.cwd())
    except InputError as err:
        raise NonRecoverableError(str(err)) from None


def _state_dir(ctx) -> Path:
    return deployment_state_dir(ctx.deployment.id)


def _own_host(ctx) -> Host:
    return Host.from_dict(
        _related(ctx, CONTAINED_IN, relationship=True).instance.runtime_properties["host"]
    )


def _own_facts(ctx) -> node.HostFacts:
    """What preparing this node's host found there."""
    props = _related(ctx, CONTAINED_IN, relationship=True).instance.runtime_properties
    return node.HostFacts(**props["facts"])


@contextmanager
def _remote(host: Host):
    """An SSH session; failures to connect are worth a retry, command failures are not."""
    session = Remote(host)
    try:
        session.open()
    except RemoteError as err:
        raise RecoverableError(str(err)) from None
    try:
        yield session
    except RemoteError as err:
        raise NonRecoverableError(str(err)) from None
    finally:
        session.close()


# --- cluster ---------------------------------------------------------------------------------


@operation(resumable=True)
def validate_settings(ctx, **_):
    try:
        spec = validate(ctx.node.properties["settings"], Path.cwd())
    except InputError as err:
        raise NonRecoverableError(str(err)) from None
    _state_dir(ctx).mkdir(parents=True, exist_ok=True, mode=0o700)
    ctx.logger.info(
        f"Cluster settings valid: provider {spec.provider}, Kubernetes {spec.kubernetes_version}, "
        f"{spec.control_plane_count} control plane(s), {spec.worker_count} worker(s)"
    )


@operation(resumable=True)
def remove_local_state(ctx, **_):
    """Last step of uninstall: remove any host of this deployment still left (one from an
    earlier install whose cfy state was dropped), then the deployment's local state."""
    state = _state_dir(ctx)
    try:
        spec = validate(ctx.node.properties["settings"], Path.cwd())
    except InputError:
        shutil.rmtree(state, ignore_errors=True)  # never valid: nothing was ever created
        return
    provider = provider_for(spec, ctx.deployment.id, state)
    for name in provider.host_names():
        ctx.logger.info(f"Removing host {name}, left from an earlier install")
        provider.destroy_host(name)
    shutil.rmtree(state, ignore_errors=True)
    ctx.logger.info(f"Removed the deployment's local state {state}")


# --- hosts -----------------------------------------------------------------------------------


@operation(resumable=True)
def create_host(ctx, **_):
    spec = _spec(ctx)
    role = ctx.node.properties["role"]
    provider = provider_for(spec, ctx.deployment.id, _state_dir(ctx))
    try:
        host = provider.create_host(host_name_for(ctx.instance.id, role), role)
    except Exception as err:
        raise NonRecoverableError(f"could not create host for {ctx.instance.id}: {err}") from None
    ctx.instance.runtime_properties["host"] = host.to_dict()
    ctx.instance.runtime_properties["node"] = {
        "name": host.name,
        "address": host.address,
        "role": role,
    }
    ctx.logger.info(f"Host {host.name} ({role}) at {host.address}")


@operation(resumable=True)
def prepare_host(ctx, **_):
    spec = _spec(ctx)
    host = Host.from_dict(ctx.instance.runtime_properties["host"])
    with _remote(host) as remote:
        facts = node.prepare(remote, spec)
        imported = 0
        if spec.image_bundle is not None:
            imported = node.import_images(remote, spec.image_bundle, ctx.node.properties["role"])
    ctx.instance.runtime_properties["kubernetes_package_version"] = facts.package_version
    ctx.instance.runtime_properties["facts"] = asdict(facts)
    ctx.logger.info(
        f"Host {host.name} prepared: Kubernetes packages {facts.package_version}, containerd, "
        f"cgroup {facts.cgroup}, container {facts.container}"
        + (f", {imported} image(s) imported" if spec.image_bundle is not None else "")
    )
    for warning in node.warnings(facts):
        ctx.logger.warning(f"Host {host.name}: {warning}")


@operation(resumable=True)
def delete_host(ctx, **_):
    """Remove the host, also one whose create failed half-way (it may hold a container)."""
    spec = _spec(ctx)
    name = host_name_for(ctx.instance.id, ctx.node.properties["role"])
    provider_for(spec, ctx.deployment.id, _state_dir(ctx)).destroy_host(
        name,
        keep_address=ctx.workflow_id in HEAL_WORKFLOWS,  # the replacement gets the same one
    )
    # `node` (its Node name, address and role) stays: a heal cut short after this step leaves an
    # instance the user can still find by name and heal again; a new host records it anew.
    for key in ("host", "kubernetes_package_version", "facts"):
        ctx.instance.runtime_properties.pop(key, None)
    ctx.logger.info(f"Host {name} removed")


# --- Kubernetes nodes ------------------------------------------------------------------------


@operation(resumable=True)
def init_control_plane(ctx, **_):
    spec = _spec(ctx)
    host = _own_host(ctx)
    with _remote(host) as remote:
        info = node.init_control_plane(
            remote, spec, _own_facts(ctx), host.name, host.address, ctx.deployment.id
        )
        kubeconfig = _state_dir(ctx) / "admin.conf"
        write_private_file(kubeconfig, info.admin_kubeconfig)
        node.apply_cni(remote, spec.cni_manifest, spec.cni_manifest_is_local)
    pointed = kube.point_flannel_at_api_server(
        kube.core_api(kubeconfig), host.address, node.API_PORT
    )
    if pointed:
        ctx.logger.info(f"{', '.join(pointed)} reaches the API server at {host.address} directly")
    # a dict, not keywords: Cloudify's runtime-properties update() fails on keywords alone
    ctx.instance.runtime_properties.update(
        {
            "api_endpoint": f"https://{info.api_endpoint}",
            "join_endpoint": info.api_endpoint,
            "ca_cert_hash": info.ca_cert_hash,
            "kubeconfig_path": str(kubeconfig),
            "host": host.to_dict(),
            "node_name": host.name,
        }
    )
    ctx.logger.info(f"Control plane {host.name} initialised; API at https://{info.api_endpoint}")


@operation(resumable=True)
def join_worker(ctx, **_):
    spec = _spec(ctx)
    host = _own_host(ctx)
    cp = _related(ctx, JOINS, relationship=True).instance.runtime_properties
    info = node.ControlPlaneInfo(cp["join_endpoint"], cp["ca_cert_hash"], admin_kubeconfig="")
    api = kube.core_api(Path(cp["kubeconfig_path"]))
    with _remote(host) as worker:
        joined = not node.is_joined(worker)
        if joined:
            join_as = node.JoinAs(
                host.name, host.address, _own_facts(ctx), node.image_pull_policy(spec)
            )
            token = node.new_bootstrap_token()
            with kube.bootstrap_token(api, token, host.name, node.JOIN_TOKEN_TTL_SECONDS):
                node.join(worker, info, join_as, token)
        else:
            node.start_kubelet(worker)
    ctx.instance.runtime_properties.update(
        {"node_name": host.name, "kubeconfig_path": cp["kubeconfig_path"]}
    )
    ctx.logger.info(f"Worker {host.name} {'joined' if joined else 'was already joined'}")


@operation(resumable=True)
def wait_node_ready(ctx, **_):
    props = ctx.instance.runtime_properties
    api = kube.core_api(Path(props["kubeconfig_path"]))
    name = props["node_name"]
    if ctx.node.type == "k8s.nodes.Worker":
        kube.wait_until(
            lambda: _label_worker(api, name), NODE_READY_TIMEOUT, f"Node {name} registered"
        )
    try:
        kube.wait_node_ready(api, name, NODE_READY_TIMEOUT)
        # Ready is the kubelet's word; its pods' network and Services need the node's
        # DaemonSet pods (the CNI's, kube-proxy), and the cluster's names need CoreDNS.
        what = f"Node {name}'s DaemonSet pods (pod network, kube-proxy) Ready"
        kube.wait_until(lambda: kube.daemon_pods_ready(api, name), NODE_READY_TIMEOUT, what)
        if ctx.node.type != "k8s.nodes.Worker":
            kube.wait_until(
                partial(kube.deployment_available, kube.apps_api(api), "kube-system", "coredns"),
                NODE_READY_TIMEOUT,
                "the cluster's DNS (CoreDNS) available",
            )
    except TimeoutError as err:
        raise NonRecoverableError(str(err)) from None
    ctx.logger.info(f"Node {name} Ready, with its pod network and kube-proxy running")


def _label_worker(api, name: str) -> tuple[bool, str]:
    try:
        kube.label_node(api, name, {kube.WORKER_ROLE_LABEL: ""})
    except kube.ApiException as err:
        if err.status == 404:
            return False, "Node not registered yet"
        raise
    return True, "labelled"


@operation(resumable=True)
def remove_worker_node(ctx, **_):
    """Stop of a worker: drain it, then delete its Node. How the drain may end depends on the
    workflow (see removal_policy): bounded under uninstall; strict under scale, where a drain
    that cannot finish keeps the worker (and fails the operation, so scale rolls back)."""
    props = ctx.instance.runtime_properties
    kubeconfig = Path(props.get("kubeconfig_path", "/nonexistent"))
    name = props.get("node_name")
    if not name or not kubeconfig.exists():
        return
    api = kube.core_api(kubeconfig)
    policy = removal_policy(ctx)
    if policy.lost_node and not _kubelet_answers(ctx, api, name):
        _delete_pods_of_lost_node(ctx, api, name, policy)
    else:
        _drain_for_removal(ctx, api, name, policy)
    kube.delete_node(api, name)
    kube.delete_join_tokens(api, name)  # of a join that was killed
    ctx.logger.info(f"Node {name} deleted")


@operation(resumable=True)
def reset_node(ctx, **_):
    try:
        host = _own_host(ctx)
    except KeyError:
        return  # the host was never created
    report = _recent_health(ctx) if ctx.workflow_id in HEAL_WORKFLOWS else None
    if report is not None and not report.ssh_ok:
        ctx.logger.info(f"Not resetting {host.name}: it did not answer this heal's check")
        return
    try:
        with Remote(host) as remote:
            node.reset(remote)
    except RemoteError as err:
        ctx.logger.warning(f"Could not reset {host.name}: {err}")
        return
    ctx.logger.info(f"Node {host.name} reset")


# --- removing a worker: how strictly to drain --------------------------------------------------

SCALE_WORKFLOW = "scale"
SCALE_DRAIN_TIMEOUT = 300  # the scale workflow's default drain_timeout


class RemovalPolicy:
    """How a worker's stop drains it. strict: a drain that cannot finish keeps the worker.
    grace_period None: each pod's own terminationGracePeriodSeconds. options: which pods the
    drain may lose (force, delete_emptydir_data); any policy refuses the others."""

    lost_node = False  # see HealPolicy

    def __init__(
        self,
        strict: bool,
        drain_timeout: float,
        grace_period: int | None,
        options: DrainOptions = STRICT,
    ) -> None:
        self.strict = strict
        self.drain_timeout = drain_timeout
        self.grace_period = grace_period
        self.options = options

    def __repr__(self) -> str:
        return f"RemovalPolicy({self.__dict__})"


def removal_policy(ctx) -> RemovalPolicy:
    """The removal policy of the workflow running this operation.

    Under `scale`, it comes from that execution's own parameters (drain_timeout,
    drain_grace_period, allow_ungraceful_removal): the execution record is the one place that
    holds them on a manager and in local mode alike, so nothing has to be written anywhere or
    cleaned up afterwards, and a retried or resumed task reads the same values. Any other
    workflow (uninstall) keeps the bounded drain that removes the worker in any case. Under
    heal and auto_heal, see heal_policy. Every one takes force and delete_emptydir_data from
    its execution: a drain never loses a pod those do not allow.
    """
    params = _execution_parameters(ctx)
    if ctx.workflow_id in HEAL_WORKFLOWS:
        return heal_policy(params)
    options = _drain_options(params)
    if ctx.workflow_id != SCALE_WORKFLOW:
        return RemovalPolicy(False, UNINSTALL_DRAIN_TIMEOUT, grace_period=None, options=options)
    grace = int(params.get("drain_grace_period", -1))
    return RemovalPolicy(
        strict=not params.get("allow_ungraceful_removal", False),
        drain_timeout=float(params.get("drain_timeout", SCALE_DRAIN_TIMEOUT)),
        grace_period=None if grace < 0 else grace,
        options=options,
    )


def _drain_options(params: dict) -> DrainOptions:
    try:
        return DrainOptions.from_parameters(params)
    except ValueError as err:
        raise NonRecoverableError(str(err)) from None


def _execution_parameters(ctx) -> dict:
    """The parameters of the execution running this operation. A manager serves them over
    REST. Local mode keeps them in its storage, which an operation's ctx.get_execution() does
    not read (it returns a stub): they are read from there, the storage local operations get."""
    storage = getattr(ctx._endpoint, "storage", None)  # set in local mode only
    if storage is None:
        return dict(ctx.get_execution().parameters or {})
    execution = storage.get_execution(ctx.execution_id) or {}
    return dict(execution.get("parameters") or {})


def _drain_for_removal(ctx, api, name: str, policy: RemovalPolicy) -> None:
    """Drain the Node before it is deleted, as strictly as the policy says."""
    try:
        result = kube.drain(
            api,
            name,
            timeout=policy.drain_timeout,
            grace_period=policy.grace_period,
            options=policy.options,
        )
    except DrainRefused as err:  # nothing changed: the worker stays, whatever the workflow
        raise NonRecoverableError(f"{name} is kept: {err}.") from None
    except (kube.ApiException, OSError) as err:
        if policy.strict:
            _uncordon(ctx, api, name)
            raise NonRecoverableError(f"Could not drain {name} ({err}); it is kept") from None
        ctx.logger.warning(f"Could not drain {name} ({err}); removing it anyway")
        return
    if result.complete:
        return
    blocked = ", ".join(f"{pod} ({why})" for pod, why in result.blocked.items())
    if policy.strict:
        _uncordon(ctx, api, name)
        raise NonRecoverableError(
            f"Drain of {name} did not finish in {policy.drain_timeout:g} s, so it is kept "
            f"(uncordoned). Pods that blocked it: {blocked}. Fix them, give a longer "
            "drain_timeout, or allow_ungraceful_removal=true to remove it anyway."
        )
    ctx.logger.warning(
        f"Drain of {name} stopped after {policy.drain_timeout:g} s; removing it with pods left: "
        + blocked
    )


def _uncordon(ctx, api, name: str) -> None:
    try:
        kube.set_unschedulable(api, name, False)
    except (kube.ApiException, OSError) as err:
        ctx.logger.warning(f"Could not uncordon {name}: {err}")


# --- heal --------------------------------------------------------------------------------------

HEAL_WORKFLOWS = ("heal", "auto_heal")
HEAL_DRAIN_TIMEOUT = 300  # the heal workflows' default drain_timeout


class HealPolicy(RemovalPolicy):
    """A Node whose kubelet does not answer is not drained (a drain cannot finish there): its
    pods are deleted after grace_period, see kube.delete_pods_of_lost_node."""

    lost_node = True


def heal_policy(params: dict) -> RemovalPolicy:
    """Heal removes the worker in any case (bounded drain, never strict). A worker whose
    kubelet still answers is drained; one whose kubelet does not has its pods deleted after
    pod_eviction_grace_period (-1: each pod's own), so their controllers replace them."""
    grace = int(params.get("pod_eviction_grace_period", -1))
    return HealPolicy(
        strict=False,
        drain_timeout=float(params.get("drain_timeout", HEAL_DRAIN_TIMEOUT)),
        grace_period=None if grace < 0 else grace,
        options=_drain_options(params),
    )


HEALTH_FRESH = 600  # seconds a health report speaks for the host


def _recent_health(ctx) -> health.Health | None:
    """The health report recorded on this instance's host by a check of the last minutes
    (the one heal runs first), if any."""
    report = _related(ctx, CONTAINED_IN, relationship=True).instance.runtime_properties.get(
        "health"
    )
    if not report or time.time() - report.get("checked_at", 0) > HEALTH_FRESH:
        return None
    return health.Health.from_dict(report)


def _kubelet_answers(ctx, api, name: str) -> bool:
    """As the health check run by this heal saw it; without one (check_status=false), as the
    Node's Ready condition says now."""
    report = _recent_health(ctx)
    if report is not None and report.host == name:
        return report.kubelet_answers
    try:
        return kube.ready_condition(api.read_node(name))[0] == "True"
    except (kube.ApiException, OSError):
        return False


def _delete_pods_of_lost_node(ctx, api, name: str, policy: RemovalPolicy) -> None:
    grace = "each pod's own" if policy.grace_period is None else f"{policy.grace_period} s"
    ctx.logger.info(f"Node {name}: its kubelet does not answer; deleting its pods (grace {grace})")
    try:
        pods = kube.delete_pods_of_lost_node(api, name, policy.grace_period)
    except (kube.ApiException, OSError) as err:
        ctx.logger.warning(f"Could not delete the pods of {name} ({err}); deleting the Node")
        return
    names = ", ".join(drain_policy.pod_key(pod) for pod in pods) or "none"
    ctx.logger.info(f"Node {name}: deleted {len(pods)} pod(s): {names}")
    lost = drain_policy.refusals(pods, STRICT)
    if lost:  # a drain would have refused them; here the host had lost them already
        ctx.logger.warning(f"Lost with the host {name}, as nothing could move them: {lost}")


@operation(resumable=True)
def check_host(ctx, **_):
    """Health check of this host (k8s.interfaces.health.check): SSH, kubelet, Node Ready.
    Recorded as the runtime property `health`; never fails, whatever the host's state."""
    props = ctx.instance.runtime_properties
    host = Host.from_dict(props["host"]) if "host" in props else None
    role = ctx.node.properties["role"]
    report = health.check(
        instance=ctx.instance.id,
        host=host,
        name=host.name if host else host_name_for(ctx.instance.id, role),
        role=role,
        kubeconfig=_state_dir(ctx) / "admin.conf",
        previous=props.get("health"),
    )
    props["health"] = report.to_dict()
    state = "healthy" if report.healthy else f"unhealthy: {report.problems()}"
    ctx.logger.info(f"Host {report.host}: {state}")
