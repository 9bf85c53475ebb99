"""Health of one host: SSH, the kubelet service, the Node's Ready condition; and how long it has
been unhealthy. Every probe is bounded by a short timeout, so a hung machine cannot hang a check.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import kube
from .hosts import Host
from .ssh import Remote, RemoteError

PROBE_TIMEOUT = 5  # seconds for SSH connect, banner, authentication and each command
SSH_OK = "ok"
NO_HOST = "no host recorded"


@dataclass(frozen=True)
class Health:
    """What one check saw on one host; stored as the host instance's `health` property."""

    instance: str  # the host's node instance id
    host: str  # host name, also the Node name
    role: str
    ssh: str  # SSH_OK, or why the host did not answer
    kubelet: str  # `systemctl is-active kubelet` (active, inactive, failed...), or unknown
    node_ready: str  # the Ready condition: True, False, Unknown; absent; unknown (no API)
    node_since: float | None  # when the Ready condition last changed (epoch seconds)
    checked_at: float
    unhealthy_since: float | None = None  # see assess()

    @property
    def ssh_ok(self) -> bool:
        return self.ssh == SSH_OK

    @property
    def healthy(self) -> bool:
        return self.ssh_ok and self.kubelet == "active" and self.node_ready == "True"

    @property
    def kubelet_answers(self) -> bool:
        """The kubelet is known to run and to report: a drain can finish."""
        return self.kubelet == "active" and self.node_ready == "True"

    def unhealthy_for(self, now: float) -> float:
        return 0.0 if self.unhealthy_since is None else max(0.0, now - self.unhealthy_since)

    def problems(self) -> str:
        """What is wrong, in words; empty when healthy."""
        found = []
        if not self.ssh_ok:
            found.append(f"SSH: {self.ssh}")
        if self.kubelet != "active":
            found.append(f"kubelet {self.kubelet}")
        if self.node_ready != "True":
            found.append(f"Node Ready={self.node_ready}")
        return ", ".join(found)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Health:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --- probes ----------------------------------------------------------------------------------


def probe_host(host: Host | None, timeout: float = PROBE_TIMEOUT) -> tuple[str, str]:
    """(ssh, kubelet state) of the host, within a few timeouts whatever state it is in."""
    if host is None:
        return NO_HOST, "unknown"
    try:
        with Remote(host, timeout=timeout) as remote:
            state = remote.run(
                "systemctl is-active kubelet", what="kubelet state", check=False, timeout=timeout
            )
    except RemoteError as err:
        return _reason(err), "unknown"
    return SSH_OK, state.stdout.strip() or "unknown"


def _reason(err: RemoteError) -> str:
    """An SSH failure in a few words: 'timed out', 'connection refused'... (ssh.failure_words)."""
    text = err.reason
    return text if len(text) <= 60 else text[:57] + "..."


def probe_node(kubeconfig: Path, name: str, timeout: float = PROBE_TIMEOUT):
    """(Ready status, when it last changed) of the Node, from the API server."""
    try:
        api = kube.core_api(kubeconfig)
        return kube.ready_condition(api.read_node(name, _request_timeout=timeout))
    except kube.ApiException as err:
        if err.status == 404:
            return "absent", None
        return f"unknown (API answered {err.status})", None
    except Exception:  # unreachable, refused, no kubeconfig: a check reports, never fails
        return "unknown (API unreachable)", None


def assess(current: Health, previous: dict | None) -> Health:
    """Set since when the host is unhealthy: the earliest of this check, the Node's change to
    not Ready, and the previous check's unhealthy_since while it saw the same failure (the Node
    did not change after that check)."""
    if current.healthy:
        return _replace(current, unhealthy_since=None)
    since = [current.checked_at]
    if current.node_ready != "True" and current.node_since is not None:
        since.append(current.node_since)
    if previous and previous.get("unhealthy_since") is not None:
        changed_after = current.node_since is not None and current.node_since > previous.get(
            "checked_at", 0
        )
        if not changed_after:
            since.append(previous["unhealthy_since"])
    return _replace(current, unhealthy_since=min(since))


def _replace(health: Health, **changes) -> Health:
    return Health(**{**asdict(health), **changes})


def check(
    instance: str,
    host: Host | None,
    name: str,
    role: str,
    kubeconfig: Path,
    previous: dict | None,
    now=time.time,
) -> Health:
    ssh, kubelet = probe_host(host)
    ready, since = probe_node(kubeconfig, name)
    current = Health(instance, name, role, ssh, kubelet, ready, since, checked_at=now())
    return assess(current, previous)


# --- reporting -------------------------------------------------------------------------------

COLUMNS = ("HOST", "INSTANCE", "ROLE", "SSH", "KUBELET", "NODE READY", "UNHEALTHY FOR")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _row(health: Health, now: float) -> tuple[str, ...]:
    ready = health.node_ready
    if health.node_since is not None:
        ready += f" for {duration(now - health.node_since)}"
    unhealthy = "-" if health.healthy else duration(health.unhealthy_for(now))
    return (health.host, health.instance, health.role, health.ssh, health.kubelet, ready, unhealthy)


def table(reports: list[Health], now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = [COLUMNS, *(_row(health, now) for health in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
