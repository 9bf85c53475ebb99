"""Operations of volumes, named in blueprints/plugin.yaml. Thin: see k8s_cluster.storage.

`attach_host_volumes` is the host's `start`: it mounts again every volume recorded for the host,
so a healed (re-created) worker gets its volumes back with their data before kubelet starts, and
a new host (none recorded) is left as it is. Any heal that re-runs the host's lifecycle gets this.

`release_host_volumes` is the host's `stop`. Under `heal` it only unmounts (the backing storage
and the PV stay for the replacement); otherwise (scale-in, uninstall) the host goes for good:
its PVs are deleted, its volumes unmounted and their backing storage deleted.

`create_volume` and `delete_volume` are the lifecycle of a k8s.nodes.Volume, a volume declared
in the blueprint and contained in a worker host: made by install, removed by uninstall and
scale-in, kept (with the host's other volumes) under heal.
"""

from __future__ import annotations

from pathlib import Path

from cloudify.decorators import operation
from cloudify.exceptions import NonRecoverableError

from . import kube, storage
from .hosts import Host, host_name_for
from .hosts.provider import provider_for
from .operations import (
    CONTAINED_IN,
    HEAL_WORKFLOWS,
    _own_host,
    _related,
    _remote,
    _spec,
    _state_dir,
)
from .ssh import Remote, RemoteError


def _own(ctx):
    """(provider, state folder, this host's name, its recorded volumes)."""
    state = _state_dir(ctx)
    name = host_name_for(ctx.instance.id, ctx.node.properties["role"])
    provider = provider_for(_spec(ctx), ctx.deployment.id, state)
    return provider, state, name, storage.recorded(state, name)


@operation(resumable=True)
def attach_host_volumes(ctx, **_):
    provider, _, name, volumes = _own(ctx)
    if not volumes:
        return
    host = Host.from_dict(ctx.instance.runtime_properties["host"])
    with _remote(host) as remote:
        for volume in volumes:
            storage.attach(provider, remote, volume)
            ctx.logger.info(f"Volume {volume.name} mounted again on {name} at {volume.path}")


@operation(resumable=True)
def release_host_volumes(ctx, **_):
    provider, state, name, volumes = _own(ctx)
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
        claim = storage.delete_pv(kube.core_api(kubeconfig), volume)
    except (kube.ApiException, OSError) as err:
        ctx.logger.warning(f"Could not delete PV {volume.pv_name}: {err}")
        return
    if claim:
        ctx.logger.warning(storage.pending_deletion(volume, claim))


# --- a volume declared in the blueprint (k8s.nodes.Volume) --------------------------------------


def _declared(ctx) -> storage.Volume:
    host = _related(ctx, CONTAINED_IN, relationship=True)
    props = ctx.node.properties
    name = props["volume_name"] or ctx.node.name.replace("_", "-")
    return storage.Volume(
        name,
        host_name_for(host.instance.id, host.node.properties["role"]),
        props["size"],
        props["filesystem"],
        props["device"],
    )


@operation(resumable=True)
def create_volume(ctx, **_):
    state = _state_dir(ctx)
    provider = provider_for(_spec(ctx), ctx.deployment.id, state)
    volume = _declared(ctx)
    problems = storage.check_request(
        volume.name, volume.size, volume.filesystem, provider.volume_space()
    )
    if problems:
        raise NonRecoverableError(f"{ctx.node.name}: " + "; ".join(problems))
    api = kube.core_api(state / "admin.conf")
    storage.ensure_storage_class(api, bool(ctx.node.properties["default_class"]))
    if storage.record_path(state, volume.host, volume.name).exists():
        storage.create_pv(api, volume)  # a healed host: its start mounted the volume again
    else:
        with _remote(_own_host(ctx)) as remote:
            storage.provision(provider, remote, state, api, volume)
    ctx.instance.runtime_properties.update({"volume": volume.name, "pv": volume.pv_name})
    ctx.logger.info(f"Volume {volume.name} on {volume.host} at {volume.path}, PV {volume.pv_name}")


@operation(resumable=True)
def delete_volume(ctx, **_):
    if ctx.workflow_id in HEAL_WORKFLOWS:
        return  # kept for the replacement host: see release_host_volumes
    state = _state_dir(ctx)
    volume = _declared(ctx)
    if not storage.record_path(state, volume.host, volume.name).exists():
        return
    provider = provider_for(_spec(ctx), ctx.deployment.id, state)
    with _remote(_own_host(ctx)) as remote:
        api = kube.core_api(state / "admin.conf")
        claim = storage.release(provider, remote, state, api, volume)
    if claim:
        ctx.logger.warning(storage.pending_deletion(volume, claim))
    ctx.logger.info(f"Volume {volume.name} of {volume.host} removed")
