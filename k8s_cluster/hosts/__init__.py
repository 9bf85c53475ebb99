"""Infrastructure providers: create or adopt the machines a cluster runs on.

Every provider returns `Host` records; the rest of the plugin only talks to hosts over SSH.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Host:
    """A machine reachable over SSH, as recorded in a node instance's runtime properties."""

    name: str  # hostname, also the Kubernetes Node name
    address: str  # IP address the cluster and the orchestrator use
    user: str
    key_file: str  # private key on the orchestrator (mode 0600)
    host_key: str  # "<type> <base64>" public host key, verified on every connection
    port: int = 22

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Host:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def host_name_for(instance_id: str, role: str) -> str:
    """A host's name (and Kubernetes Node name) from its node instance id, e.g.
    worker_host_a1b2c3 -> worker-a1b2c3: stable, so a healed instance keeps its name."""
    suffix = instance_id.rsplit("_", 1)[-1].lower()
    return f"{'cp' if role == 'control-plane' else 'worker'}-{suffix}"
