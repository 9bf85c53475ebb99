"""Pick the infrastructure provider the inputs ask for; both have the same small face."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..inputs import ClusterSpec
from . import Host
from .existing import ExistingProvider
from .local import LocalProvider


class Provider(Protocol):
    def create_host(self, name: str, role: str) -> Host: ...
    def destroy_host(self, name: str, keep_address: bool = False) -> None: ...
    def host_names(self) -> list[str]: ...


def provider_for(spec: ClusterSpec, deployment_id: str, state_dir: Path) -> Provider:
    if spec.provider == "existing":
        return ExistingProvider(spec.existing_machines, state_dir)
    return LocalProvider(
        deployment_id,
        state_dir,
        subnet=spec.local.subnet,
        distribution=spec.local.distribution,
        mirror=spec.local.debian_mirror,
        ssh_user=spec.ssh_user,
        boot_timeout=spec.local.boot_timeout,
    )
