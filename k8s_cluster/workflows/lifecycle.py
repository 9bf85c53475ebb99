"""install and uninstall: validate every input first, then run Cloudify's lifecycle in parallel."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.plugins import lifecycle
from cloudify.workflows.workflow_context import LocalTasksProcessing

from ..hosts import host_name_for
from ..hosts.provider import provider_for
from ..inputs import ClusterSpec, InputError, validate
from ..paths import deployment_state_dir

CLUSTER_TYPE = "k8s.nodes.Cluster"
HOST_TYPE = "k8s.nodes.Host"
MIN_PARALLEL_TASKS = 4
MAX_PARALLEL_TASKS = 64


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
    expected = {
        host_name_for(instance.id, instance.node.properties["role"])
        for instance in ctx.node_instances
        if HOST_TYPE in instance.node.type_hierarchy
    }
    state_dir = deployment_state_dir(ctx.deployment.id)
    left = sorted(set(provider_for(spec, ctx.deployment.id, state_dir).host_names()) - expected)
    if left:
        raise NonRecoverableError(
            f"deployment {ctx.deployment.id} already has hosts {', '.join(left)} from an earlier "
            "install whose Cloudify state was replaced. Nothing was created. Run "
            f"`cfy uninstall -b {ctx.deployment.id}` to remove them, then install again."
        )


def has_cluster(ctx) -> bool:
    return any(CLUSTER_TYPE in node.type_hierarchy for node in ctx.nodes)


@workflow
def install(ctx, **_):
    if has_cluster(ctx):  # blueprints of Kubernetes objects (k8s-app.yaml) have none
        spec = cluster_spec(ctx)
        refuse_to_orphan_hosts(ctx, spec)
        ctx.logger.info(
            f"Installing a Kubernetes {spec.kubernetes_version} cluster on {spec.provider} "
            f"hosts: {spec.control_plane_count} control plane, {spec.worker_count} workers"
        )
    with parallel_tasks(ctx):
        lifecycle.install_node_instances(
            graph=ctx.graph_mode(), node_instances=set(ctx.node_instances)
        )


@workflow
def uninstall(ctx, ignore_failure=False, **_):
    with parallel_tasks(ctx):
        lifecycle.uninstall_node_instances(
            graph=ctx.graph_mode(),
            node_instances=set(ctx.node_instances),
            ignore_failure=ignore_failure,
        )
