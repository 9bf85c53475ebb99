"""update_resources and migrate_pods: Kubernetes objects of a running deployment."""

from __future__ import annotations

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError

from ..pod_migration import Migration, migrate
from ..resource_operations import CONNECTION_TYPE, api_errors, connection_from
from ..resources import Cluster, ObjectRef
from .drain_check import drain_options
from .parameters import ParameterError, name_list

OBJECT_TYPE = "k8s.resources.Object"
UPDATE_OPERATION = "k8s.interfaces.resources.update"


def _object_nodes(ctx) -> dict[str, object]:
    return {node.id: node for node in ctx.nodes if OBJECT_TYPE in node.type_hierarchy}


def _chosen_nodes(ctx, node_ids, overrides: dict) -> set[str]:
    """The object nodes to update: those named (default: all) and those given overrides."""
    known = _object_nodes(ctx)
    try:
        named = name_list("node_ids", node_ids)
    except ParameterError as err:
        raise NonRecoverableError(str(err)) from None
    wanted = set(named or known) | set(overrides)
    unknown = sorted(wanted - set(known))
    if unknown:
        raise NonRecoverableError(
            f"not Kubernetes object nodes: {', '.join(unknown)} "
            f"(these are: {', '.join(sorted(known))})"
        )
    return wanted


@workflow
def update_resources(ctx, node_ids=(), overrides=None, **_):
    """Apply the current definitions (and `overrides`: node id -> JSON merge patch, kept for
    later runs) to the objects of a running deployment, in dependency order, each waited for
    until ready; ExternalServices publish their machine's current address again."""
    overrides = overrides or {}
    chosen = _chosen_nodes(ctx, node_ids, overrides)
    graph = ctx.graph_mode()
    tasks = {}
    for instance in ctx.node_instances:
        if instance.node_id in chosen:
            kwargs = (
                {"overrides": overrides[instance.node_id]} if instance.node_id in overrides else {}
            )
            tasks[instance.id] = instance.execute_operation(UPDATE_OPERATION, kwargs=kwargs)
            graph.add_task(tasks[instance.id])
    for instance_id, task in tasks.items():
        for rel in ctx.get_node_instance(instance_id).relationships:
            if rel.target_id in tasks:  # targets first, as install orders them
                graph.add_dependency(task, tasks[rel.target_id])
    ctx.logger.info(f"Updating {', '.join(sorted(chosen))}")
    graph.execute()


@workflow
def migrate_pods(
    ctx,
    workload,
    from_node,
    to_node="",
    method="evict",
    timeout=300,
    grace_period=-1,
    delete_emptydir_data=False,
    **_,
):
    """Move the pods of a Deployment node (`workload`, a node id) from one Kubernetes Node to
    another, within its PodDisruptionBudgets (see k8s_cluster.pod_migration). Pods with
    emptyDir data move only with delete_emptydir_data (their controller owns them: force is
    never needed)."""
    drain = drain_options(False, delete_emptydir_data, NonRecoverableError)
    instance = _single_instance(ctx, workload)
    refs = [ObjectRef.from_dict(d) for d in instance.runtime_properties.get("objects", [])]
    deployments = [ref for ref in refs if ref.kind == "Deployment"]
    if not deployments:
        raise NonRecoverableError(
            f"{workload} holds no Deployment (objects: {', '.join(map(str, refs))})"
        )
    grace = None if int(grace_period) < 0 else int(grace_period)
    move = Migration(deployments[0], from_node, to_node, method, float(timeout), grace, drain)
    with api_errors():
        cluster = Cluster(_connection(ctx, instance).api_client())
        placed = migrate(cluster, move, ctx.logger.info)
    ctx.logger.info(f"Moved {move.workload} off {from_node} ({method}): {len(placed)} pods")


def _single_instance(ctx, node_id: str):
    node = _object_nodes(ctx).get(node_id)
    if node is None:
        raise NonRecoverableError(f"{node_id} is not a Kubernetes object node of this deployment")
    instances = list(node.instances)
    if len(instances) != 1:
        raise NonRecoverableError(
            f"{node_id} has {len(instances)} instances; migrate one at a time"
        )
    return instances[0]


def _connection(ctx, instance):
    for rel in instance.relationships:
        target = rel.target_node_instance.node
        if CONNECTION_TYPE in target.type_hierarchy:
            return connection_from(target.properties)
    raise NonRecoverableError(f"{instance.node_id} has no relationship to a {CONNECTION_TYPE}")
