"""The `existing` provider: adopt machines the user already has. Never deletes them."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko

from ..inputs import Machine
from . import Host


class ExistingProviderError(Exception):
    pass


class ExistingProvider:
    """Hands out the listed machines to node instances; the claims survive retries and restarts.

    `claims.json` in the deployment's state folder maps a claim (a node instance's host name)
    to a machine address, so a retried task or a healed instance gets the same machine back.
    """

    def __init__(self, machines: tuple[Machine, ...], state_dir: Path):
        self.machines = machines
        self.state_dir = state_dir
        self._claims_file = state_dir / "claims.json"

    @contextmanager
    def _claims(self) -> Iterator[dict[str, str]]:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.state_dir / "claims.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            claims = json.loads(self._claims_file.read_text()) if self._claims_file.exists() else {}
            yield claims
            self._claims_file.write_text(json.dumps(claims, indent=1, sort_keys=True))

    def create_host(self, claim: str, role: str) -> Host:
        with self._claims() as claims:
            address = self._assign(claims, claim, role)
        return self._host(address)

    def planned_hosts(self, wanted: list[tuple[str, str]]) -> list[Host]:
        """The machines create_host would hand out to `wanted` (claim, role) pairs, claiming
        none: what an install checks before it changes any machine."""
        claims = json.loads(self._claims_file.read_text()) if self._claims_file.exists() else {}
        return [self._host(self._assign(claims, claim, role)) for claim, role in wanted]

    def _assign(self, claims: dict[str, str], claim: str, role: str) -> str:
        address = claims.get(claim) or self._free_machine(claims, role).address
        claims[claim] = address
        return address

    def _host(self, address: str) -> Host:
        machine = next(m for m in self.machines if m.address == address)
        return Host(
            name=machine.name,
            address=machine.address,
            user=machine.user,
            key_file=machine.private_key_file,
            host_key=host_key_of(machine),
            port=machine.port,
        )

    def _free_machine(self, claims: dict[str, str], role: str) -> Machine:
        taken = set(claims.values())
        for machine in self.machines:
            if machine.role == role and machine.address not in taken:
                return machine
        raise ExistingProviderError(
            f"no free machine with role {role} in existing_machines "
            f"({len(taken)} of {len(self.machines)} already in use); add one to the list"
        )

    def destroy_host(self, claim: str, keep_address: bool = False) -> None:
        """Forget the claim; the machine itself stays (it was reset by the node's delete).
        keep_address: keep the claim, so the replacement is the same machine."""
        if keep_address:
            return
        with self._claims() as claims:
            claims.pop(claim, None)

    def host_names(self) -> list[str]:
        return []  # adopted machines are never removed, so none is ever left behind

    # --- volumes (k8s_cluster.storage): a device that exists on the machine, named by the user;
    # the suite formats it only when it holds no filesystem, and never erases it.

    def volume_space(self) -> int | None:
        return None  # the device's own size bounds it

    def create_volume(self, claim: str, volume: str, size_bytes: int, device: str = "") -> None:
        if not device.startswith("/dev/"):
            raise ExistingProviderError(
                f"volume {volume}: give `device`, a block device on the machine (e.g. /dev/sdb); "
                f"existing machines have no backing storage the suite could make, not {device!r}"
            )

    @contextmanager
    def volume_device(self, claim: str, volume: str) -> Iterator[str]:
        yield ""  # the recorded device itself

    def delete_volume(self, claim: str, volume: str) -> None:
        """The device is the machine's: it stays, with its data."""


def host_key_of(machine: Machine) -> str:
    """The machine's host key: given in the inputs, or already trusted in ~/.ssh/known_hosts."""
    if machine.host_key:
        return machine.host_key
    known = paramiko.HostKeys()
    path = Path.home() / ".ssh" / "known_hosts"
    if path.exists():
        known.load(str(path))
    name = machine.address if machine.port == 22 else f"[{machine.address}]:{machine.port}"
    entry = known.lookup(name)
    if entry:
        key_type = "ssh-ed25519" if "ssh-ed25519" in entry else next(iter(entry.keys()))
        return f"{key_type} {entry[key_type].get_base64()}"
    raise ExistingProviderError(
        f"no SSH host key known for {name}: give existing_machines[].host_key, or add it to "
        f"{path} after checking its fingerprint (ssh-keyscan {machine.address} | ssh-keygen -lf -)"
    )
