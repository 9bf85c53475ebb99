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
