"""The guard every draining workflow runs before it changes anything (scale-in, heal, uninstall;
migrate_pods has its own, on the workload's pods): draining the Nodes it will remove must not
lose a pod that the execution's force and delete_emptydir_data do not allow to lose. The
stop operation checks again when it drains (kube.drain), for pods that came in between."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .. import kube
from ..drain_policy import DrainOptions
from ..paths import deployment_state_dir


def drain_options(force, delete_emptydir_data, error: Callable[[str], Exception]) -> DrainOptions:
    """The workflow's parameters as DrainOptions; anything but a boolean raises `error`."""
    try:
        return DrainOptions.from_parameters(
            {"force": force, "delete_emptydir_data": delete_emptydir_data}
        )
    except ValueError as err:
        raise error(str(err)) from None


def pod_loss(ctx, nodes: Iterable[str], options: DrainOptions) -> str:
    """What draining `nodes` would lose against `options`, in words; empty when nothing. A
    cluster without an admin kubeconfig yet (an install cut short) has no pods to lose."""
    nodes = sorted(nodes)
    kubeconfig = deployment_state_dir(ctx.deployment.id) / "admin.conf"
    if not nodes or not kubeconfig.exists():
        return ""
    refused = kube.drain_refusals(kube.core_api(kubeconfig), nodes, options)
    return str(kube.DrainRefused(refused)) if refused else ""


def refuse_pod_loss(
    ctx, nodes: Iterable[str], options: DrainOptions, error: Callable[[str], Exception]
) -> None:
    """Raise `error` naming every pod that draining `nodes` would lose against `options`."""
    loss = pod_loss(ctx, nodes, options)
    if loss:
        raise error(loss)
