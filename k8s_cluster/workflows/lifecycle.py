"""install and uninstall: validate every input first, then run Cloudify's lifecycle in parallel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.plugins import lifecycle
from cloudify.workflows.workflow_context import LocalTasksProcessing

from ..hosts import host_name_for
from ..hosts.existing import ExistingProviderError
from ..hosts.provider import provider_for
from ..inputs import ClusterSpec, InputError, validate
from ..paths import deployment_state_dir
from ..ssh import Remote, RemoteError
from .drain_check import drain_options, pod_loss

CLUSTER_TYPE = "k8s.nodes.Cluster"
HOST_TYPE = "k8s.nodes.Host"
MIN_PARALLEL_TASKS = 4
MAX_PARALLEL_TASKS = 64


class UninstallError(NonRecoverableError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem.rstrip('.')}. Nothing was changed.")


def cluster_spec(ctx) -> ClusterSpec:
    """Validate the cluster node's settings; every bad input is reported at once."""
    clusters = [n for n in ctx.nodes if CLUSTER_TYPE in n.type_hierarchy]
    if not clusters:
        raise NonRecoverableError(f"the blueprint has no node of type {CLUSTER_TYPE}")
    try:
        return validate(clusters[0].properties["settings"], Path.cwd())
    except InputError as err:
        raise NonRecoverableError(f"{err}\nNothing was created.") from None


@contextmanager
def parallel_tasks(ctx, added: int = 0):
    """Local mode runs tasks on one thread unless told otherwise (`--task-thread-pool-size`):
    give this workflow one thread per node instance (`added`: instances it will create), so
    hosts are prepared and joined at once. On a Cloudify Manager tasks already run in parallel
    and this does nothing."""
    wanted = len(list(ctx.node_instances)) + added
    size = max(MIN_PARALLEL_TASKS, min(MAX_PARALLEL_TASKS, wanted))
    if not ctx.local or ctx._local_task_thread_pool_size >= size:
        yield
        return
    processor = LocalTasksProcessing(ctx, thread_pool_size=size)
    previous = ctx.internal.local_tasks_processor
    ctx.internal.local_tasks_processor = processor
    processor.start()
    try:
        yield
    finally:
        processor.stop()
        ctx.internal.local_tasks_processor = previous


def refuse_to_orphan_hosts(ctx, spec: ClusterSpec) -> None:
    """`cfy install` under an existing blueprint id silently drops that deployment's state.
    Hosts it made would then belong to no node instance: stop before making more."""
    expected = set(hosts_by_name(ctx))
    state_dir = deployment_state_dir(ctx.deployment.id)
    left = sorted(set(provider_for(spec, ctx.deployment.id, state_dir).host_names()) - expected)
    if left:
        raise NonRecoverableError(
            f"deployment {ctx.deployment.id} already has hosts {', '.join(left)} from an earlier "
            "install whose Cloudify state was replaced. Nothing was created. Run "
            f"`cfy uninstall -b {ctx.deployment.id}` to remove them, then install again."
        )


def hosts_by_name(ctx) -> dict[str, object]:
    """Host name (the Node name) -> host node instance, for every host of the deployment."""
    return {
        host_name_for(instance.id, instance.node.properties["role"]): instance
        for instance in ctx.node_instances
        if HOST_TYPE in instance.node.type_hierarchy
    }


def worker_hosts(ctx) -> dict[str, object]:
    """Host name (the Node name) -> worker host node instance."""
    return {
        name: instance
        for name, instance in hosts_by_name(ctx).items()
        if instance.node.properties["role"] == "worker"
    }


def worker_names(ctx, instance_ids) -> set[str]:
    """The Node names of the worker hosts among `instance_ids`."""
    wanted = set(instance_ids)
    return {name for name, instance in worker_hosts(ctx).items() if instance.id in wanted}


MACHINE_CHECK_TIMEOUT = 10


def refuse_machines_that_do_not_answer(ctx, spec: ClusterSpec) -> None:
    """existing: every machine this install will use must answer over SSH, as its listed (or
    known) host key says, before any of them is changed: a wrong host key, a wrong user or key,
    or a machine that is down is refused with nothing done anywhere."""
    if spec.provider != "existing":
        return
    provider = provider_for(spec, ctx.deployment.id, deployment_state_dir(ctx.deployment.id))
    wanted = [(name, i.node.properties["role"]) for name, i in hosts_by_name(ctx).items()]
    try:
        hosts = provider.planned_hosts(wanted)
    except ExistingProviderError as err:
        raise NonRecoverableError(f"{err}. Nothing was changed.") from None
    with ThreadPoolExecutor(max(1, min(len(hosts), MAX_PARALLEL_TASKS))) as pool:
        answers = list(pool.map(_answer_of, hosts))
    problems = [
        f"{h.name} ({h.user}@{h.address}): {a}" for h, a in zip(hosts, answers, strict=True) if a
    ]
    if problems:
        raise NonRecoverableError(
            "existing machines that do not answer over SSH: "
            + "; ".join(problems)
            + ". Nothing was changed."
        )


def _answer_of(host) -> str:
    """'' when the host answers over SSH (and sudo works); else why not, in plain words."""
    try:
        with Remote(host, timeout=MACHINE_CHECK_TIMEOUT) as remote:
            remote.run("true", what="check sudo", timeout=MACHINE_CHECK_TIMEOUT)
    except RemoteError as err:
        return err.reason
    return ""


def has_cluster(ctx) -> bool:
    return any(CLUSTER_TYPE in node.type_hierarchy for node in ctx.nodes)


@workflow
def install(ctx, **_):
    if has_cluster(ctx):  # blueprints of Kubernetes objects (k8s-app.yaml) have none
        spec = cluster_spec(ctx)
        refuse_to_orphan_hosts(ctx, spec)
        refuse_machines_that_do_not_answer(ctx, spec)
        ctx.logger.info(
            f"Installing a Kubernetes {spec.kubernetes_version} cluster on {spec.provider} "
            f"hosts: {spec.control_plane_count} control plane, {spec.worker_count} workers"
        )
    with parallel_tasks(ctx):
        lifecycle.install_node_instances(
            graph=ctx.graph_mode(), node_instances=set(ctx.node_instances)
        )


@workflow
def uninstall(ctx, ignore_failure=False, force=False, delete_emptydir_data=False, **_):
    """The workers are drained before they go, by the drains' rules (drain_check): pods that
    force and delete_emptydir_data do not allow to lose make it refuse, with nothing changed."""
    if has_cluster(ctx):
        options = drain_options(force, delete_emptydir_data, UninstallError)
        try:
            loss = pod_loss(ctx, worker_hosts(ctx), options)
        except Exception as err:  # a broken cluster must still be removable
            ctx.logger.warning(f"Could not list the workers' pods before draining them: {err}")
            loss = ""
        if loss:
            raise UninstallError(loss)
    with parallel_tasks(ctx):
        lifecycle.uninstall_node_instances(
            graph=ctx.graph_mode(),
            node_instances=set(ctx.node_instances),
            ignore_failure=ignore_failure,
        )
