"""Operations of a host's volumes, named in blueprints/plugin.yaml. Thin: see k8s_cluster.storage.

`attach_host_volumes` is the host's `start`: it mounts again every volume recorded for the host,
so a healed (re-created) worker gets its volumes back with their data before kubelet starts, and
a new host (none recorded) is left as it is. Any heal that re-runs the host's lifecycle gets this.

`release_host_volumes` is the host's `stop`. Under `heal` it only unmounts (the backing storage
and the PV stay for the replacement); otherwise (scale-in, uninstall) the host goes for good:
its PVs are deleted, its volumes unmounted and their backing storage deleted.
"""

from __future__ import annotations

from pathlib import Path

from cloudify.decorators import operation

from . import kube, storage
from .hosts import Host, host_name_for
from .hosts.provider import provider_for
from .operations import _remote, _spec, _state_dir
from .ssh import Remote, RemoteError

HEAL_WORKFLOWS = ("heal",)


def _own(ctx):
    state = _state_dir(ctx)
    name = host_name_for(ctx.instance.id, ctx.node.properties["role"])
    return provider_for(_spec(ctx), ctx.deployment.id, state), state, name


@operation(resumable=True)
def attach_host_volumes(ctx, **_):
    provider, state, name = _own(ctx)
    volumes = storage.recorded(state, name)
    if not volumes:
        return
    host = Host.from_dict(ctx.instance.runtime_properties["host"])
    with _remote(host) as remote:
        for volume in volumes:
            storage.attach(provider, remote, volume)
            ctx.logger.info(f"Volume {volume.name} mounted again on {name} at {volume.path}")


@operation(resumable=True)
def release_host_volumes(ctx, **_):
    provider, state, name = _own(ctx)
    volumes = storage.recorded(state, name)
    if not volumes:
        return
    keep = ctx.workflow_id in HEAL_WORKFLOWS
    _unmount_all(ctx, volumes)
    if keep:
        ctx.logger.info(
            f"Volumes of {name} kept for its replacement: " + ", ".join(v.name for v in volumes)
        )
        return
    kubeconfig = state / "admin.conf"
    for volume in volumes:
        _delete_pv(ctx, kubeconfig, volume)
        provider.delete_volume(volume.host, volume.name)
        storage.forget(state, volume)
        ctx.logger.info(f"Volume {volume.name} of {name} released: PV and backing storage deleted")


def _unmount_all(ctx, volumes: list[storage.Volume]) -> None:
    """Best effort: a host that is down has nothing mounted any more."""
    try:
        with Remote(Host.from_dict(ctx.instance.runtime_properties["host"])) as remote:
            for volume in volumes:
                storage.unmount(remote, volume)
    except (RemoteError, KeyError) as err:
        ctx.logger.warning(f"Could not unmount the volumes of {volumes[0].host}: {err}")


def _delete_pv(ctx, kubeconfig: Path, volume: storage.Volume) -> None:
    if not kubeconfig.exists():
        return
    try:
        storage.delete_pv(kube.core_api(kubeconfig), volume)
    except (kube.ApiException, OSError) as err:
        ctx.logger.warning(f"Could not delete PV {volume.pv_name}: {err}")
