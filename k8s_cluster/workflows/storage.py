"""Storage workflows: add_volume, remove_volume, list_volumes (parameters: types/base.yaml).

Every parameter is checked before anything is made: a bad one fails the execution with nothing
created. The work itself is in k8s_cluster.storage; the hosts' own lifecycle re-attaches a healed
host's volumes and releases a removed host's (k8s_cluster.storage_operations).
"""

from __future__ import annotations

from pathlib import Path

from cloudify.decorators import workflow
from cloudify.exceptions import NonRecoverableError

from .. import kube, storage
from ..hosts import Host
from ..hosts.provider import provider_for
from ..paths import deployment_state_dir
from ..ssh import Remote, RemoteError
from .lifecycle import cluster_spec, worker_hosts
from .parameters import ParameterError, name_list

NOTHING_CREATED = "Nothing was created."


class StorageError(NonRecoverableError):
    pass


def _targets(ctx, targets) -> dict[str, Host]:
    """Host name -> Host of each target, given as worker host instance ids or Node names."""
    try:
        wanted = name_list("targets", targets)
    except ParameterError as err:
        raise StorageError(str(err)) from None
    workers = worker_hosts(ctx)
    by_id = {instance.id: name for name, instance in workers.items()}
    unknown = [t for t in wanted if t not in workers and t not in by_id]
    if not wanted or unknown:
        raise StorageError(
            f"targets {unknown or wanted!r} not accepted: give worker host instances or their "
            f"Node names, among {', '.join(f'{i} ({n})' for i, n in sorted(by_id.items()))}"
        )
    names = [by_id.get(t, t) for t in wanted]
    hosts = {}
    for name in names:
        record = workers[name].runtime_properties.get("host")
        if not record:
            raise StorageError(f"worker {name} has no host yet (is it installed?)")
        hosts[name] = Host.from_dict(record)
    return hosts


def _context(ctx):
    spec = cluster_spec(ctx)
    state = deployment_state_dir(ctx.deployment.id)
    kubeconfig = state / "admin.conf"
    if not kubeconfig.exists():
        raise StorageError(f"the cluster has no kubeconfig at {kubeconfig}: install it first")
    return provider_for(spec, ctx.deployment.id, state), state, kube.core_api(kubeconfig)


def _session(host: Host) -> Remote:
    remote = Remote(host)
    try:
        remote.open()
    except RemoteError as err:
        raise StorageError(str(err)) from None
    return remote


@workflow
def add_volume(ctx, name, size, targets, filesystem="ext4", default_class=False, device="", **_):
    provider, state, api = _context(ctx)
    hosts = _targets(ctx, targets)
    problems = storage.check_request(name, size, filesystem, provider.volume_space())
    for host in hosts:
        if storage.record_path(state, host, name).exists():
            problems.append(f"name {name!r}: host {host} already has a volume of that name")
    if problems:
        raise StorageError(
            "Bad add_volume parameters:\n- " + "\n- ".join(problems) + "\n" + NOTHING_CREATED
        )
    storage.ensure_storage_class(api, bool(default_class))
    for host_name, host in hosts.items():
        volume = storage.Volume(name, host_name, size, filesystem, device)
        _add_one(ctx, provider, state, api, host, volume)


def _add_one(ctx, provider, state: Path, api, host: Host, volume: storage.Volume) -> None:
    remote = _session(host)
    try:
        storage.provision(provider, remote, state, api, volume)
    except Exception as err:
        raise StorageError(f"volume {volume.name} on {volume.host}: {err}. Undone.") from None
    finally:
        remote.close()
    ctx.logger.info(f"Added {storage.describe(volume, storage.read_pv(api, volume))}")


@workflow
def remove_volume(ctx, name, targets=None, force=False, **_):
    provider, state, api = _context(ctx)
    volumes = [v for v in storage.recorded(state) if v.name == name]
    if targets:
        chosen = _targets(ctx, targets)
        volumes = [v for v in volumes if v.host in chosen]
    if not volumes:
        raise StorageError(
            f"no volume named {name!r} on {targets or 'any worker'}. Nothing was removed."
        )
    bound = storage.bound_volumes(api, volumes)
    if bound and not force:
        raise StorageError(storage.bound_refusal(bound, "force=true") + ". Nothing was removed.")
    hosts = {
        v.host: Host.from_dict(worker_hosts(ctx)[v.host].runtime_properties["host"])
        for v in volumes
    }
    for volume in volumes:
        remote = _session(hosts[volume.host])
        try:
            claim = storage.release(provider, remote, state, api, volume)
        finally:
            remote.close()
        if claim:
            ctx.logger.warning(storage.pending_deletion(volume, claim))
        ctx.logger.info(
            f"Removed volume {volume.name} of {volume.host}: PV, mount and backing storage"
        )


@workflow
def list_volumes(ctx, **_):
    _, state, api = _context(ctx)
    volumes = storage.recorded(state)
    lines = [storage.describe(v, storage.read_pv(api, v)) for v in volumes]
    ctx.logger.info(f"{len(volumes)} volume(s)" + "".join(f"\n  {line}" for line in lines))


def refuse_bound_removal(ctx, instance_ids) -> None:
    """Scale-in's guard: refuse to remove workers holding a volume bound to a claim."""
    name_of = {instance.id: name for name, instance in worker_hosts(ctx).items()}
    hosts = {name_of[i] for i in instance_ids if i in name_of}
    state = deployment_state_dir(ctx.deployment.id)
    volumes = [v for host in sorted(hosts) for v in storage.recorded(state, host)]
    kubeconfig = state / "admin.conf"
    if not volumes or not kubeconfig.exists():
        return
    bound = storage.bound_volumes(kube.core_api(kubeconfig), volumes)
    if bound:
        raise StorageError(
            storage.bound_refusal(bound, "allow_bound_volume_removal=true")
            + ". Nothing was changed."
        )
