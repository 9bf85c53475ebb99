"""scale: add or remove workers, in parallel, in local mode as on a Cloudify Manager.

The parameters are checked first; a bad one fails the execution with nothing changed. Then
Cloudify's own `scale_entity` does the work (deployment modification, install or uninstall of
the added or removed instances, rollback on failure), with the tasks widened like install's
(`lifecycle.parallel_tasks`) and, in local mode, the deployment modifications local mode lacks
(`local_modification`).

Which instances a scale-in removes: those named in include_instances, then the newest others,
never those in exclude_instances (an instance of a group stands for its whole group instance,
a contained instance for its host). "Newest" is by node instance index: a Cloudify Manager
numbers a node's instances in the order it creates them, and the local modification support
numbers the instances it adds the same way; instances made by install have no number in local
mode and count as the oldest. A group instance is as new as its newest member instance (what
they contain is not counted); ties go to the higher id. The choice is made here and given to
`scale_entity` as include_instances: left to itself it removes instances in no set order.

Before anything changes, the removed workers' pods are checked as their drains will check them
(drain_check): a pod no controller manages, or one with emptyDir data, is refused unless force
or delete_emptydir_data allow it. The drain itself is the Worker's stop operation
(remove_worker_node), which reads the drain parameters from this execution's parameters, see
`k8s_cluster.operations.removal_policy`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.plugins.workflows import scale_entity

from .drain_check import drain_options, refuse_pod_loss
from .lifecycle import HOST_TYPE, parallel_tasks, worker_names
from .local_modification import local_modifications
from .parameters import ParameterError, name_list
from .storage import refuse_bound_removal

CONTROL_PLANE_TYPE = "k8s.nodes.ControlPlane"
CONTROL_PLANE_ROLE = "control-plane"
CONTAINED_IN = "cloudify.relationships.contained_in"
UNCHANGED = "Nothing was changed."


class ScaleError(NonRecoverableError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}. {UNCHANGED}")


@dataclass(frozen=True)
class Entity:
    """What scale_entity is given: a scaling group, or a node outside any group."""

    name: str
    is_group: bool
    current: int
    minimum: int
    maximum: int  # -1: no maximum


@workflow
def scale(
    ctx,
    scalable_entity_name,
    delta,
    scale_compute=True,
    ignore_failure=False,
    include_instances=None,
    exclude_instances=None,
    rollback_if_failed=True,
    abort_started=False,
    drain_timeout=300,
    drain_grace_period=-1,
    allow_ungraceful_removal=False,
    allow_bound_volume_removal=False,
    force=False,
    delete_emptydir_data=False,
    **kwargs,
):
    """Parameters: see `scale` in blueprints/types/base.yaml."""
    delta = _integer("delta", delta)
    check_drain_parameters(drain_timeout, drain_grace_period, allow_ungraceful_removal)
    drain = drain_options(force, delete_emptydir_data, ScaleError)
    entity = resolve_entity(ctx, scalable_entity_name, scale_compute)
    if delta == 0:
        ctx.logger.info(f"delta is 0: {entity.name} keeps its {entity.current} instance(s)")
        return
    refuse_control_planes(ctx, entity)
    check_bounds(entity, delta)
    include = _names("include_instances", include_instances)
    exclude = _names("exclude_instances", exclude_instances)
    if delta > 0 and (include or exclude):
        raise ScaleError("include_instances and exclude_instances are only for scaling in")
    removed = choose_removed(ctx, entity, -delta, include, exclude) if delta < 0 else {}
    removed_ids = [i for ids in removed.values() for i in ids]
    if removed and allow_bound_volume_removal is not True:
        refuse_bound_removal(ctx, removed_ids)
    refuse_pod_loss(ctx, worker_names(ctx, removed_ids), drain, ScaleError)
    ctx.logger.info(
        f"Scaling {entity.name} from {entity.current} to {entity.current + delta} instance(s)"
        + "".join(f"; removing {unit} ({', '.join(ids)})" for unit, ids in removed.items())
    )
    added = max(delta, 0) * max(
        (len(u.instances) for u in scale_units(ctx, entity).values()), default=1
    )
    with parallel_tasks(ctx, added), local_modifications(ctx):
        scale_entity(
            ctx=ctx,
            scalable_entity_name=entity.name,
            delta=delta,
            scale_compute=False,  # the host was resolved above
            ignore_failure=ignore_failure,
            include_instances=list(removed),  # exactly those go: exclusions are applied
            exclude_instances=[],
            rollback_if_failed=rollback_if_failed,
            abort_started=abort_started,
            **kwargs,
        )


# --- parameters --------------------------------------------------------------------------------


def _integer(name: str, value) -> int:
    if isinstance(value, bool):
        raise ScaleError(f"{name} must be an integer, not {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ScaleError(f"{name} must be an integer, not {value!r}") from None


def check_drain_parameters(timeout, grace_period, allow_ungraceful) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or timeout <= 0:
        raise ScaleError(f"drain_timeout must be a positive number of seconds, not {timeout!r}")
    if _integer("drain_grace_period", grace_period) < -1:
        raise ScaleError(
            f"drain_grace_period must be -1 (each pod's own) or seconds, not {grace_period!r}"
        )
    if not isinstance(allow_ungraceful, bool):
        raise ScaleError(
            f"allow_ungraceful_removal must be true or false, not {allow_ungraceful!r}"
        )


def _names(parameter: str, value) -> list[str]:
    try:
        return name_list(parameter, value)
    except ParameterError as err:
        raise ScaleError(str(err)) from None


# --- the entity --------------------------------------------------------------------------------


def resolve_entity(ctx, name: str, scale_compute: bool) -> Entity:
    """A scaling group by name; a node, or with scale_compute the host containing it (the
    outermost contained_in target: the suite's hosts are not cloudify.nodes.Compute). A node
    in a scaling group is scaled with its group."""
    groups = ctx.deployment.scaling_groups
    if name in groups:
        return _group_entity(name, groups[name])
    node = ctx.get_node(name)
    if node is None:
        raise ScaleError(
            f"nothing named {name!r} to scale: the scaling groups are "
            f"{', '.join(sorted(groups)) or 'none'}; the nodes are "
            + ", ".join(sorted(n.id for n in ctx.nodes))
        )
    if scale_compute:
        node = ctx.get_node(list(_containers(node))[-1])
    for group_name, group in groups.items():
        if node.id in group["members"]:
            ctx.logger.info(f"{name} is in scaling group {group_name}: scaling the group")
            return _group_entity(group_name, group)
    raw = node._node  # the node as stored: its counts have no other accessor
    return Entity(
        node.id,
        is_group=False,
        current=node.number_of_instances,
        minimum=raw.get("min_number_of_instances") or 0,
        maximum=raw.get("max_number_of_instances", -1),
    )


def _group_entity(name: str, group: dict) -> Entity:
    props = group["properties"]
    return Entity(
        name,
        is_group=True,
        current=props["current_instances"],
        minimum=props.get("min_instances") or 0,
        maximum=props.get("max_instances", -1),
    )


def _containers(node) -> Iterator[str]:
    """The node's id, then those of the nodes it is contained in, innermost first."""
    while node is not None:
        yield node.id
        node = next(
            (rel.target_node for rel in node.relationships if rel.is_derived_from(CONTAINED_IN)),
            None,
        )


def _group_nodes(groups: dict, name: str) -> set[str]:
    """The nodes of a scaling group, through nested groups."""
    nodes = set()
    for member in groups[name]["members"]:
        nodes |= _group_nodes(groups, member) if member in groups else {member}
    return nodes


def entity_nodes(ctx, entity: Entity) -> list:
    """The nodes whose instances scaling the entity adds or removes."""
    roots = (
        _group_nodes(ctx.deployment.scaling_groups, entity.name)
        if entity.is_group
        else {entity.name}
    )
    return [node for node in ctx.nodes if roots.intersection(_containers(node))]


def _is_control_plane(node) -> bool:
    if CONTROL_PLANE_TYPE in node.type_hierarchy:
        return True
    return HOST_TYPE in node.type_hierarchy and node.properties.get("role") == CONTROL_PLANE_ROLE


def refuse_control_planes(ctx, entity: Entity) -> None:
    control_planes = [node.id for node in entity_nodes(ctx, entity) if _is_control_plane(node)]
    if control_planes:
        raise ScaleError(
            f"{entity.name} holds control planes ({', '.join(control_planes)}): "
            "control planes are not scaled through this workflow"
        )


def check_bounds(entity: Entity, delta: int) -> None:
    planned = entity.current + delta
    if planned < entity.minimum:
        raise ScaleError(
            f"cannot scale {entity.name} by {delta}: it has {entity.current} instance(s) and "
            f"its minimum is {entity.minimum} (min_instances)"
        )
    if 0 <= entity.maximum < planned:
        raise ScaleError(
            f"cannot scale {entity.name} by {delta}: it has {entity.current} instance(s) and "
            f"its maximum is {entity.maximum} (max_instances)"
        )


# --- which instances go ------------------------------------------------------------------------


@dataclass
class Unit:
    """What a scale-in removes whole: a group instance, or an instance of the scaled node."""

    instances: list = field(default_factory=list)  # with the instances they contain
    age: int = 0  # the highest index of its group members or node instance (module docstring)


def scale_units(ctx, entity: Entity) -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for instance in ctx.node_instances:
        if entity.is_group:
            keys = [g["id"] for g in instance.scaling_groups if g["name"] == entity.name]
        else:
            keys = [instance.id] if instance.node_id == entity.name else []
        for key in keys:
            unit = units.setdefault(key, Unit())
            unit.instances.extend(instance.get_contained_subgraph())
            unit.age = max(unit.age, instance._node_instance.get("index") or 0)
    return units


def choose_removed(
    ctx, entity: Entity, count: int, include: list, exclude: list
) -> dict[str, list[str]]:
    """The units to remove (see scale_units), each with its node instance ids."""
    units = scale_units(ctx, entity)
    unit_of = {unit: unit for unit in units}
    unit_of.update({i.id: key for key, unit in units.items() for i in unit.instances})
    unknown = [i for i in include + exclude if i not in unit_of]
    if unknown:
        raise ScaleError(
            f"{', '.join(unknown)}: not instances of {entity.name}; its instances are "
            + "; ".join(f"{u}: {', '.join(_ids(units[u]))}" for u in sorted(units))
        )
    chosen = list(dict.fromkeys(unit_of[i] for i in include))
    kept = {unit_of[i] for i in exclude}
    if kept.intersection(chosen):
        raise ScaleError(
            f"{', '.join(sorted(kept.intersection(chosen)))}: both included and excluded"
        )
    if len(chosen) > count:
        raise ScaleError(
            f"include_instances names {len(chosen)} instances of {entity.name} "
            f"({', '.join(chosen)}) but delta removes {count}"
        )
    others = [u for u in units if u not in chosen and u not in kept]
    others.sort(key=lambda u: (units[u].age, u), reverse=True)
    chosen += others[: count - len(chosen)]
    if len(chosen) < count:
        raise ScaleError(
            f"exclude_instances keeps {len(kept)} instance(s) of {entity.name}: "
            f"fewer than {count} are left to remove"
        )
    return {unit: _ids(units[unit]) for unit in chosen}


def _ids(unit: Unit) -> list[str]:
    return sorted(instance.id for instance in unit.instances)
