"""The version the stand-ins report (`v1.36.2-sim`).

The package builder stamps the packaged version into a VERSION file next to the kube_sim
package; a checkout without it reports DEFAULT_VERSION.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

DEFAULT_VERSION = "1.36.2"
VERSION_FILE = Path(__file__).resolve().parent.parent / "VERSION"
SUFFIX = "-sim"


@lru_cache(maxsize=1)
def kube_version() -> str:
    """The bare version, e.g. '1.36.2'."""
    try:
        text = VERSION_FILE.read_text().strip()
    except OSError:
        return DEFAULT_VERSION
    return text or DEFAULT_VERSION


def git_version() -> str:
    """What `kubeadm version -o short` prints, e.g. 'v1.36.2-sim'."""
    return f"v{kube_version()}{SUFFIX}"


def version_info() -> dict[str, str]:
    """The version.Info structure real Kubernetes binaries print."""
    major, minor, *_ = kube_version().split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version(),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "kube-sim",
        "platform": f"linux/{machine_arch()}",
    }


def machine_arch() -> str:
    """GOARCH-style architecture name of this machine."""
    machine = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
    }.get(machine, machine)
