"""Where the suite keeps things on the orchestrating machine."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def state_root() -> Path:
    """Root of every deployment's local state (SSH keys, kubeconfigs, local hosts)."""
    configured = os.environ.get("K8S_CLUSTER_STATE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "k8s-cluster"


def deployment_state_dir(deployment_id: str) -> Path:
    return state_root() / deployment_id


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "k8s-cluster"


def resource_dir(name: str) -> Path:
    """`scripts` or `templates`: inside the installed package, or at the checkout's top level."""
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the suite's {name}/ folder is missing next to {PACKAGE_DIR}")


def write_private_file(path: Path, content: str | bytes) -> None:
    """Write a file holding a secret: created 0600 from the start, never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
