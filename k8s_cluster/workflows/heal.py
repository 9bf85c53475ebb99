"""check_cluster, heal and auto_heal: find failed hosts and replace them, one at a time.

check_cluster runs the health check (operation `k8s.interfaces.health.check`, see
k8s_cluster.health) on every host at once and prints a table; each host instance keeps its
report as the runtime property `health`.

heal takes one host instance (a worker's own instance stands for its host), checks it first and
refuses what it must not do, with nothing changed: an unknown instance, the control plane of a
single-control-plane cluster, a cluster whose API does not answer. Then, by what the check saw:
  - healthy: nothing, unless force_reinstall;
  - the host answers over SSH but its kubelet or Node does not: the node software is reinstalled
    on the same host (Cloudify's uninstall of the worker: its Node removed, kubeadm reset; the
    host prepared again; the worker installed: joined with a fresh token, waited for Ready);
  - the host does not answer (or force_reinstall, or check_status=false): Cloudify's reinstall
    of the host and what it contains: the Node removed, the host destroyed (an existing machine
    reset when reachable), a replacement of the same name and address created, prepared,
    joined and waited for.
How the worker's stop removes its Node under heal: operations.heal_policy.

auto_heal checks every host and heals, one after another, each worker unhealthy for longer
than unhealthy_threshold, unless more workers than max_unhealthy are unhealthy at once (a
network partition looks like a mass failure) or the control plane is unhealthy.

heal and auto_heal hold a lock in the deployment's state folder: two never run at once.
Every step converges, so an interrupted heal, run again, finishes the job.
"""

from __future__ import annotations

import fcntl
import math
import numbers
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError
from cloudify.plugins import lifecycle
from cloudify.plugins.workflows import auto_heal_reinstall_node_subgraph

from .. import kube
from ..drain_policy import STRICT, DrainOptions
from ..health import Health, duration, table
from ..hosts import host_name_for
from ..paths import deployment_state_dir
from .drain_check import drain_options, refuse_pod_loss
from .lifecycle import HOST_TYPE, has_cluster, parallel_tasks
from .scale import _is_control_plane

HEALTH_OPERATION = "k8s.interfaces.health.check"
CONFIGURE = "cloudify.interfaces.lifecycle.configure"
CONTAINED_IN = "cloudify.relationships.contained_in"
UNCHANGED = "Nothing was changed."
API_TIMEOUT = 10


class HealError(NonRecoverableError):
    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem.rstrip('.')}. {UNCHANGED}")


class Action(Enum):
    NOTHING = "nothing to do"
    SOFTWARE = "reinstall the node software on the same host"
    REPLACE = "replace the host"


# --- parameters ------------------------------------------------------------------------------


def _number(name: str, value, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < minimum:
        raise HealError(f"{name} must be a number >= {minimum:g}, not {value!r}.")
    return float(value)


def check_removal_parameters(drain_timeout, pod_eviction_grace_period) -> None:
    _number("drain_timeout", drain_timeout, 1)
    _number("pod_eviction_grace_period (-1: each pod's own)", pod_eviction_grace_period, -1)


def unhealthy_limit(max_unhealthy, workers: int) -> int:
    """How many workers may be unhealthy for auto_heal to act: a count, or 'N%' of the workers
    (rounded down, as Cluster API's MachineHealthCheck maxUnhealthy)."""
    text = str(max_unhealthy).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return math.floor(workers * percent / 100)
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise HealError(
            f"max_unhealthy must be a count or a percentage such as '40%', not {max_unhealthy!r}."
        ) from None


# --- targets ---------------------------------------------------------------------------------


def host_instances(ctx) -> list:
    hosts = [i for i in ctx.node_instances if HOST_TYPE in i.node.type_hierarchy]
    return sorted(hosts, key=lambda instance: instance.id)


def _host_of(instance):
    """The host instance itself, or the host that (transitively) contains the instance."""
    while instance is not None and HOST_TYPE not in instance.node.type_hierarchy:
        instance = next(
            (
                rel.target_node_instance
                for rel in instance.relationships
                if rel.relationship.is_derived_from(CONTAINED_IN)
            ),
            None,
        )
    return instance


def is_control_plane_host(host) -> bool:
    return any(_is_control_plane(i.node) for i in host.get_contained_subgraph())


def control_plane_refusal(ctx, host) -> str:
    return (
        f"{host.id} is the control plane host of a cluster with a single control plane: "
        "replacing it would lose the cluster state (etcd, certificates) with it, so heal does "
        "not, until highly available control planes exist. To recover: bring that machine "
        "back (power it on, restart its kubelet) and run check_cluster; if it is lost, rebuild "
        f"the cluster: `cfy uninstall -b {ctx.deployment.id}`, `cfy install` again, and "
        "redeploy the workloads."
    )


def heal_target(ctx, node_instance_id):
    """The host instance heal acts on; every refusal names the way forward."""
    hosts = ", ".join(f"{h.id} ({h.node.properties['role']})" for h in host_instances(ctx))
    if not node_instance_id:
        raise HealError(
            f"node_instance_id is required: the host instance to heal, one of {hosts} "
            "(check_cluster tells which are unhealthy; auto_heal heals every failed worker)."
        )
    instance = ctx.get_node_instance(node_instance_id)
    host = _host_of(instance) if instance is not None else None
    if host is None:
        raise HealError(
            f"{node_instance_id!r} is neither a host instance nor contained in one; "
            f"the hosts are {hosts}."
        )
    if is_control_plane_host(host):
        raise HealError(control_plane_refusal(ctx, host))
    if host.id != node_instance_id:
        ctx.logger.info(f"{node_instance_id} is on host {host.id}: healing the host")
    return host


# --- checks ----------------------------------------------------------------------------------


def check_hosts(ctx, hosts) -> list[Health]:
    """Run the health check on the hosts at once; their reports, as recorded on them."""
    graph = ctx.graph_mode()
    for host in hosts:
        graph.add_task(host.execute_operation(HEALTH_OPERATION))
    graph.execute()
    ctx.refresh_node_instances()
    return [
        Health.from_dict(ctx.get_node_instance(host.id).runtime_properties["health"])
        for host in hosts
    ]


def require_api(ctx) -> None:
    """Joining a replacement needs the control plane: refuse before touching anything."""
    kubeconfig = deployment_state_dir(ctx.deployment.id) / "admin.conf"
    try:
        kube.core_api(kubeconfig).list_node(_request_timeout=API_TIMEOUT)
    except Exception as err:  # unreachable, refused, no kubeconfig: all mean the same here
        raise HealError(
            f"The Kubernetes API does not answer ({type(err).__name__}): a replacement could not "
            "join. Run check_cluster and recover the control plane first."
        ) from None


def choose_action(report: Health | None, force_reinstall: bool) -> tuple[Action, str]:
    if report is None:
        return Action.REPLACE, "check_status is false: the host is taken as failed"
    if force_reinstall:
        return Action.REPLACE, "force_reinstall is true"
    if report.healthy:
        return Action.NOTHING, (
            f"{report.host} is healthy (SSH answers, kubelet active, Node Ready); "
            "force_reinstall=true replaces it anyway"
        )
    if report.ssh_ok:
        return Action.SOFTWARE, f"the host answers over SSH, but: {report.problems()}"
    return Action.REPLACE, f"the host does not answer: {report.problems()}"


@contextmanager
def heal_lock(ctx) -> Iterator[None]:
    """One heal or auto_heal of a deployment at a time (cron may start one while one runs)."""
    state = deployment_state_dir(ctx.deployment.id)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state / "heal.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HealError(
                f"Another heal or auto_heal of deployment {ctx.deployment.id} is running."
            ) from None
        yield


# --- healing one host ------------------------------------------------------------------------


@dataclass(frozen=True)
class HealOptions:
    force_reinstall: bool = False
    check_status: bool = True
    allow_reinstall: bool = True
    ignore_failure: bool = True
    drain: DrainOptions = STRICT


def refuse_pod_loss_of_live_host(ctx, host, report: Health | None, drain: DrainOptions) -> None:
    """A host that still answers (or is taken as failed unchecked) is drained, or reset with
    its pods' data on it: refuse, as a drain does, to lose pods `drain` does not allow to.
    A host that does not answer has lost them already (the stop operation names them)."""
    if report is None or report.ssh_ok:
        name = host_name_for(host.id, host.node.properties["role"])
        refuse_pod_loss(ctx, [name], drain, HealError)


def heal_host(ctx, host, options: HealOptions) -> Action:
    report = check_hosts(ctx, [host])[0] if options.check_status else None
    action, reason = choose_action(report, options.force_reinstall)
    if action is Action.NOTHING:
        ctx.logger.info(f"{host.id}: {reason}. {UNCHANGED}")
        return action
    if action is Action.REPLACE and not options.allow_reinstall:
        raise HealError(f"{host.id} needs its host replaced ({reason}); allow_reinstall is false.")
    require_api(ctx)
    refuse_pod_loss_of_live_host(ctx, host, report, options.drain)
    ctx.logger.info(f"Healing {host.id}: {reason}; will {action.value}")
    started = time.monotonic()
    host = ctx.get_node_instance(host.id)  # the check refreshed the instances
    if action is Action.SOFTWARE:
        reinstall_software(ctx, host, options.ignore_failure)
    else:
        replace_host(ctx, host, options.ignore_failure)
    ctx.logger.info(
        f"{host.id} healed in {time.monotonic() - started:.0f} s: its Node is Ready again"
    )
    return action


def replace_host(ctx, host, ignore_failure: bool) -> None:
    """Cloudify's reinstall of the host and everything on it."""
    instances = host.get_contained_subgraph()
    lifecycle.reinstall_node_instances(
        graph=ctx.graph_mode(),
        node_instances=instances,
        related_nodes=set(ctx.node_instances) - instances,
        ignore_failure=ignore_failure,
    )


def reinstall_software(ctx, host, ignore_failure: bool) -> None:
    """Uninstall what the host holds, prepare the host again, install it back."""
    software = host.get_contained_subgraph() - {host}
    lifecycle.uninstall_node_instances(
        graph=ctx.graph_mode(),
        node_instances=software,
        ignore_failure=ignore_failure,
        related_nodes=set(ctx.node_instances) - software,
        name_prefix="heal-",
    )
    ctx.refresh_node_instances()
    graph = ctx.graph_mode()
    graph.add_task(ctx.get_node_instance(host.id).execute_operation(CONFIGURE))
    graph.execute()
    ctx.refresh_node_instances()
    software = {ctx.get_node_instance(instance.id) for instance in software}
    lifecycle.install_node_instances(
        graph=ctx.graph_mode(),
        node_instances=software,
        related_nodes=set(ctx.node_instances) - software,
        name_prefix="heal-",
    )


# --- auto_heal -------------------------------------------------------------------------------


@dataclass
class AutoHealPlan:
    to_heal: list[Health] = field(default_factory=list)
    waiting: list[Health] = field(default_factory=list)  # unhealthy, not for long enough yet
    refusal: str = ""


def plan_auto_heal(
    reports: list[Health], threshold: float, max_unhealthy, now: float
) -> AutoHealPlan:
    control_planes = [r for r in reports if r.role == "control-plane" and not r.healthy]
    if control_planes:
        return AutoHealPlan(
            refusal=f"the control plane {control_planes[0].host} is unhealthy "
            f"({control_planes[0].problems()}): workers cannot be judged or joined without "
            "it, and auto_heal never replaces it. Recover it first (see heal)."
        )
    workers = [r for r in reports if r.role != "control-plane"]
    unhealthy = [r for r in workers if not r.healthy]
    limit = unhealthy_limit(max_unhealthy, len(workers))
    if len(unhealthy) > limit:
        return AutoHealPlan(
            refusal=f"{len(unhealthy)} of {len(workers)} workers are unhealthy "
            f"({', '.join(r.host for r in unhealthy)}), more than max_unhealthy={max_unhealthy} "
            f"allows ({limit}). So many failing at once looks like a network partition or a "
            "shared fault, which replacing hosts would make worse. Find the cause; heal "
            "single workers with `heal` once it is fixed."
        )
    plan = AutoHealPlan()
    for report in unhealthy:
        ripe = report.unhealthy_for(now) >= threshold
        (plan.to_heal if ripe else plan.waiting).append(report)
    return plan


# --- workflows -------------------------------------------------------------------------------


@workflow
def check_cluster(ctx, **_):
    """Check every host at once; print a table; record each report on its host instance."""
    with parallel_tasks(ctx):
        reports = check_hosts(ctx, host_instances(ctx))
    unhealthy = [r.host for r in reports if not r.healthy]
    ctx.logger.info(f"Cluster health of {ctx.deployment.id}:\n{table(reports)}")
    ctx.logger.info(f"Unhealthy: {', '.join(unhealthy)}" if unhealthy else "Every host is healthy")


@workflow
def heal(
    ctx,
    node_instance_id=None,
    force_reinstall=False,
    drain_timeout=300,
    pod_eviction_grace_period=-1,
    ignore_failure=True,
    check_status=True,
    allow_reinstall=True,
    diagnose_value="Not provided",
    force=False,
    delete_emptydir_data=False,
    **_,
):
    """Parameters: see `heal` in blueprints/types/base.yaml. The drain parameters are read by
    the worker's stop operation from this execution (operations.heal_policy).

    base.yaml maps `heal` for every blueprint of the suite; one without a cluster (k8s-app.yaml,
    whose hosts are plain machines) gets Cloudify's own heal."""
    if not has_cluster(ctx):
        auto_heal_reinstall_node_subgraph(
            ctx,
            node_instance_id=node_instance_id,
            diagnose_value=diagnose_value,
            ignore_failure=ignore_failure,
            check_status=check_status,
            allow_reinstall=allow_reinstall,
            force_reinstall=force_reinstall,
        )
        return
    check_removal_parameters(drain_timeout, pod_eviction_grace_period)
    drain = drain_options(force, delete_emptydir_data, HealError)
    host = heal_target(ctx, node_instance_id)
    ctx.logger.info(f"Heal of {host.id}; diagnosis: {diagnose_value}")
    options = HealOptions(
        bool(force_reinstall),
        bool(check_status),
        bool(allow_reinstall),
        bool(ignore_failure),
        drain,
    )
    with heal_lock(ctx), parallel_tasks(ctx):
        heal_host(ctx, host, options)


@workflow
def auto_heal(
    ctx,
    unhealthy_threshold=300,
    max_unhealthy="40%",
    drain_timeout=300,
    pod_eviction_grace_period=-1,
    ignore_failure=True,
    force=False,
    delete_emptydir_data=False,
    **_,
):
    """Parameters: see `auto_heal` in blueprints/types/base.yaml."""
    threshold = _number("unhealthy_threshold", unhealthy_threshold, 0)
    check_removal_parameters(drain_timeout, pod_eviction_grace_period)
    drain = drain_options(force, delete_emptydir_data, HealError)
    unhealthy_limit(max_unhealthy, 0)  # refuse a malformed value before anything runs
    with heal_lock(ctx), parallel_tasks(ctx):
        reports = check_hosts(ctx, host_instances(ctx))
        ctx.logger.info(f"Cluster health of {ctx.deployment.id}:\n{table(reports)}")
        plan = plan_auto_heal(reports, threshold, max_unhealthy, time.time())
        if plan.refusal:
            raise HealError(f"auto_heal refuses to act: {plan.refusal}")
        for report in plan.waiting:
            ctx.logger.info(
                f"{report.host} unhealthy for {duration(report.unhealthy_for(time.time()))}, "
                f"less than unhealthy_threshold ({threshold:g} s): not healed yet"
            )
        if not plan.to_heal:
            ctx.logger.info("auto_heal: no worker to heal")
        for report in plan.to_heal:
            heal_host(
                ctx,
                ctx.get_node_instance(report.instance),
                HealOptions(ignore_failure=bool(ignore_failure), drain=drain),
            )
