"""Validate the blueprint inputs before any machine is created or touched.

`validate()` takes the raw input values, checks every one of them and returns a normalised
`ClusterSpec`, or raises one `InputError` listing every problem, so that a user fixes them all in
one go. Each problem line names the input (with a path for nested ones), the offending value and
what would be accepted. Key material is never shown: a value that looks like a key is hidden.

Nothing here touches a machine or imports Cloudify. The only side effect is reading the local
files that the inputs name (a repository folder, a CNI manifest, SSH private keys).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import os
import re
import shlex
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .images import INDEX_FILE as INDEX_NAME
from .images import BundleError, ImageBundle, fetch_index, missing_for_kubeadm, scan_folder

# A pinned release, never "latest": the same inputs must give the same cluster tomorrow.
FLANNEL_MANIFEST = (
    "https://github.com/flannel-io/flannel/releases/download/v0.28.10/kube-flannel.yml"
)
OFFICIAL_REPOSITORY = "https://pkgs.k8s.io/core:/stable:/v{minor}/deb/"

PROVIDERS = ("local", "existing")
ROLES = ("control-plane", "worker")
DISTRIBUTIONS = ("bookworm", "trixie")
LOCAL_KEYS = ("subnet", "distribution", "debian_mirror", "boot_timeout")
RUNTIME_KEYS = ("source", "containerd_version", "containerd_url", "runc_version", "runc_url")
RUNTIME_SOURCES = ("auto", "packages", "release")
# containerd 2 answers the kubelet's RuntimeConfig call; 1.x is out of Kubernetes' support.
MIN_CONTAINERD_MAJOR = 2
URL_FIELDS = ("version", "arch")  # what a download URL may name: {version}, {arch}
BOOT_TIMEOUT_RANGE = (10, 1800)  # seconds a new local host has to answer SSH
MACHINE_KEYS = ("address", "role", "user", "private_key_file", "name", "port", "host_key")

OLDEST_MINOR = 30  # older Kubernetes minors are out of support
MAX_WORKERS = 100  # the most one deployment takes (the blueprint's in_range says the same)
# Pod network: kube-controller-manager gives every node a /24 of it, so /24 is the smallest
# (one node) and /8 the largest kubeadm accepts with /24 node ranges (at most 16 bits apart).
POD_PREFIXES = (8, 24)
NODE_POD_PREFIX = 24
# Service network: kube-apiserver refuses IPv4 ranges larger than /12; a /26 still leaves the
# addresses kubeadm reserves (the API service at .1, cluster DNS at .10) plus room for services.
SERVICE_PREFIXES = (12, 26)
# Local provider bridge network: the network, broadcast and gateway addresses are not for hosts,
# and some spare addresses are kept so machines can be added or replaced.
SUBNET_PREFIXES = (16, 28)
SUBNET_RESERVED = 3
SUBNET_SPARE = 8

# Ranges no cluster network or machine address may use.
SPECIAL_RANGES = {
    ipaddress.IPv4Network("0.0.0.0/8"): "'this network'",
    ipaddress.IPv4Network("127.0.0.0/8"): "loopback",
    ipaddress.IPv4Network("169.254.0.0/16"): "link-local",
    ipaddress.IPv4Network("224.0.0.0/4"): "multicast",
    ipaddress.IPv4Network("240.0.0.0/4"): "reserved",
}

DEFAULTS: dict[str, Any] = {
    "infrastructure_provider": "local",
    "control_plane_count": 1,
    "worker_count": 2,
    "min_workers": 0,
    "kubernetes_version": "1.37",
    "package_repository": "",
    "pod_cidr": "10.244.0.0/16",
    "service_cidr": "10.96.0.0/12",
    "cni_manifest": FLANNEL_MANIFEST,
    "image_bundle": "",
    "ssh_user": "root",
    "ssh_private_key_file": "",
    "local_settings": {
        "subnet": "10.77.0.0/24",
        "distribution": "bookworm",
        "debian_mirror": "http://deb.debian.org/debian",
        "boot_timeout": 120,
    },
    "existing_machines": [],
    "node_monitor_grace_period": "40s",
    "container_runtime": {
        "source": "auto",
        "containerd_version": "2.4.2",
        "containerd_url": (
            "https://github.com/containerd/containerd/releases/download/"
            "v{version}/containerd-{version}-linux-{arch}.tar.gz"
        ),
        "runc_version": "1.5.2",
        "runc_url": "https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}",
    },
}


class InputError(Exception):
    """Every problem found in the inputs, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        noun = "input" if len(self.problems) == 1 else "inputs"
        lines = "".join(f"\n  - {problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} invalid {noun}:{lines}")


@dataclass(frozen=True)
class Machine:
    """One machine of the existing provider, with the defaults filled in."""

    address: str  # IPv4 address or lower-case host name
    role: str  # "control-plane" or "worker"
    user: str
    private_key_file: str  # absolute path on the orchestrator
    name: str  # DNS label, the Kubernetes Node name
    port: int = 22
    host_key: str = ""  # "<type> <base64>" SSH public host key; "" = use known_hosts


@dataclass(frozen=True)
class LocalSettings:
    subnet: str  # e.g. "10.77.0.0/24"
    distribution: str  # "bookworm" or "trixie"
    debian_mirror: str  # http(s) URL without a trailing "/"
    boot_timeout: int = 120  # seconds a new host has to answer SSH


@dataclass(frozen=True)
class ContainerRuntime:
    """Where containerd 2 and runc come from. auto: the package sources' containerd when it is
    2.x (an offline bundle's repository carries it), else the official release; packages: the
    package sources' only; release: the release archives at the URLs, checked against the
    .sha256sum files published beside them."""

    source: str  # "auto", "packages" or "release"
    containerd_version: str
    containerd_url: str  # with {version} and {arch} placeholders
    runc_version: str
    runc_url: str


@dataclass(frozen=True)
class ClusterSpec:
    provider: str
    control_plane_count: int
    worker_count: int
    kubernetes_version: str  # "1.36" or "1.36.2" (no "v")
    kubernetes_minor: str  # "1.36"
    package_version_pattern: str  # apt pin glob: "1.36.*" or "1.36.2-*"
    package_repository: str  # URL ending in "/" or absolute local folder
    repository_is_local: bool
    pod_cidr: str
    service_cidr: str
    cni_manifest: str  # URL or absolute local file
    cni_manifest_is_local: bool
    image_bundle: ImageBundle | None  # archives imported on every host; None: images are pulled
    ssh_user: str
    ssh_private_key_file: str  # absolute path, or "" (local provider generates a key)
    local: LocalSettings
    existing_machines: tuple[Machine, ...]
    node_monitor_grace_period: str = "40s"  # how long a silent kubelet's Node stays Ready
    container_runtime: ContainerRuntime | None = None


# --- Collecting problems ---------------------------------------------------------------------

_T = TypeVar("_T")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


class _Bad(Exception):
    """What is wrong with one value, and what would be accepted instead."""

    def __init__(self, problem: str, expected: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.expected = expected


def _show(value: Any) -> str:
    """The value as a user would recognise it: repr, shortened, never key material."""
    text = repr(value)
    if "PRIVATE KEY" in text or "-----BEGIN" in text:
        return "<hidden: looks like key material>"
    return text if len(text) <= 100 else text[:97] + "..."


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, value: Any, problem: str, expected: str) -> None:
        if value is MISSING:
            self.lines.append(f"{name}: is missing; expected {expected}")
        else:
            self.lines.append(f"{name}: {_show(value)} {problem}; expected {expected}")

    def check(self, name: str, value: Any, checker: Callable[..., _T], *args: Any) -> _T | None:
        """Run one checker; record its complaint under `name` and return None if it has one."""
        try:
            return checker(value, *args)
        except _Bad as bad:
            self.add(name, value, bad.problem, bad.expected)
            return None

    def unknown_keys(self, name: str, mapping: Mapping[Any, Any], accepted: Sequence[str]) -> None:
        # The value is not shown: an unknown key may well hold key material.
        keys = ", ".join(repr(key) for key in accepted)
        for key in mapping:
            if key not in accepted:
                self.lines.append(f"{name}: unknown key {key!r}; expected only {keys}")


# --- Checkers: one value each, raising _Bad -----------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(value: Any, choices: Sequence[str], what: str) -> str:
    if value not in choices or not isinstance(value, str):
        raise _Bad(f"is not a {what}", "one of " + ", ".join(repr(c) for c in choices))
    return value


def _control_plane_count(value: Any) -> int:
    expected = "1 (one control plane)"
    if not _is_int(value):
        raise _Bad("is not an integer", expected)
    if value < 1:
        raise _Bad("is not a positive count", expected)
    if value > 1:
        raise _Bad(
            "is not supported yet: highly available control planes are not implemented", expected
        )
    return value


_GRACE = re.compile(r"([1-9][0-9]*)(s|m)")
GRACE_SECONDS = (10, 3600)


def _node_monitor_grace_period(value: Any) -> str:
    low, high = GRACE_SECONDS
    expected = f"a duration such as '40s' or '2m', from {low}s to {high // 60}m"
    match = _GRACE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Bad("is not a duration in seconds or minutes", expected)
    seconds = int(match[1]) * (60 if match[2] == "m" else 1)
    if not low <= seconds <= high:
        raise _Bad("is out of range", expected)
    return value


def _worker_count(value: Any) -> int:
    expected = f"an integer from 0 to {MAX_WORKERS}"
    if not _is_int(value):
        raise _Bad("is not an integer", expected)
    if value < 0:
        raise _Bad("is negative", expected)
    if value > MAX_WORKERS:
        raise _Bad("is more than one deployment takes", expected)
    return value


_VERSION = re.compile(r"v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")


def _kubernetes_version(value: Any) -> tuple[int, int, int | None]:
    expected = f"'1.Y' or '1.Y.Z' with Y >= {OLDEST_MINOR}, e.g. {DEFAULTS['kubernetes_version']!r}"
    if isinstance(value, float) or _is_int(value):
        raise _Bad(
            "is a number (YAML reads an unquoted 1.30 as 1.3)", "a quoted string: " + expected
        )
    match = _VERSION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Bad("is not a Kubernetes version", expected)
    major, minor = int(match[1]), int(match[2])
    patch = int(match[3]) if match[3] is not None else None
    if major != 1:
        raise _Bad(f"has major version {major}", expected)
    if minor < OLDEST_MINOR:
        raise _Bad("is out of support", expected)
    return major, minor, patch


def _url(value: Any, expected: str) -> str:
    """An http(s) URL with a host (and a valid port, if any), as given."""
    if not isinstance(value, str) or any(char.isspace() for char in value):
        raise _Bad("is not an http(s) URL", expected)
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed host or port
        valid = False
    if not valid:
        raise _Bad("is not an http(s) URL", expected)
    return value


def _local_path(value: str, base_dir: Path | None, expected: str) -> Path:
    """An absolute path, relative ones taken from base_dir (the blueprint folder)."""
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~user" of an unknown user: leave it as it is
        path = Path(value)
    if not path.is_absolute():
        if base_dir is None:
            raise _Bad("is a relative path and no blueprint folder is known", expected)
        path = base_dir / path
    return Path(os.path.abspath(path))


def _package_repository(value: Any, minor: str | None) -> tuple[str, bool]:
    """(repository, is_local): the official one, a URL ending in "/", or a local folder."""
    expected = (
        "'' (the official repository), an http(s) URL, or the absolute path of a local "
        "repository folder holding a Release or InRelease file"
    )
    if not isinstance(value, str):
        raise _Bad("is not a string", expected)
    if value == "":
        return (OFFICIAL_REPOSITORY.format(minor=minor) if minor else ""), False
    if value.startswith("/"):
        return _local_repository(value, expected), True
    if "://" not in value:
        raise _Bad("is neither an http(s) URL nor an absolute path", expected)
    return _url(value, expected).rstrip("/") + "/", False


def _local_repository(value: str, expected: str) -> str:
    path = Path(os.path.normpath(value))
    if not path.is_dir():
        raise _Bad("is not a folder on the orchestrator", expected)
    if not any((path / name).is_file() for name in ("Release", "InRelease")):
        raise _Bad("holds no Release or InRelease file (not a flat Debian repository)", expected)
    return str(path)


def _special_range(network: ipaddress.IPv4Network) -> str | None:
    for special, label in SPECIAL_RANGES.items():
        if network.overlaps(special):
            return f"{label} range {special}"
    return None


def _network(value: Any, bounds: tuple[int, int], example: str) -> ipaddress.IPv4Network:
    low, high = bounds
    expected = f"an IPv4 network in CIDR notation between /{low} and /{high}, e.g. {example!r}"
    try:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise _Bad("is not a network in CIDR notation", expected) from None
    if network.version != 4:
        raise _Bad("is an IPv6 network", expected)
    if not low <= network.prefixlen <= high:
        raise _Bad(f"has a /{network.prefixlen} prefix", expected)
    if network.network_address != ipaddress.ip_interface(value).ip:
        raise _Bad("has host bits set", f"the network address: did you mean {str(network)!r}?")
    special = _special_range(network)
    if special:
        raise _Bad(f"overlaps the {special}", expected)
    return network


_USER = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}")


def _ssh_user(value: Any) -> str:
    if not isinstance(value, str) or not _USER.fullmatch(value):
        raise _Bad(
            "is not a valid user name",
            "a POSIX user name: letters, digits, '.', '_' and '-', not starting with a digit, "
            "'.' or '-', at most 32 characters",
        )
    return value


def _cni_manifest(value: Any, base_dir: Path | None) -> tuple[str, bool]:
    """(manifest, is_local): a URL as given, or the absolute path of a readable file."""
    expected = "an http(s) URL or a readable local file (absolute, or relative to the blueprint)"
    if not isinstance(value, str) or not value:
        raise _Bad("is neither a URL nor a path", expected)
    if "://" in value:
        return _url(value, expected), False
    path = _local_path(value, base_dir, expected)
    if not path.is_file():
        raise _Bad(f"is not a file on the orchestrator (looked for {str(path)!r})", expected)
    try:
        with path.open("rb"):
            pass
    except OSError:
        raise _Bad("cannot be read", expected) from None
    return str(path), True


def _image_bundle(value: Any, base_dir: Path | None) -> ImageBundle | None:
    """'' (images pulled from their registries), a folder of image archives, or the URL of one
    with an images.json index (an offline bundle's images/)."""
    expected = (
        "'' (pull from the registries), a folder of image archives (*.tar), or an http(s) URL of "
        f"one that has an {INDEX_NAME}"
    )
    if value == "":
        return None
    if not isinstance(value, str):
        raise _Bad("is neither a folder nor a URL", expected)
    try:
        if "://" in value:
            return fetch_index(_url(value, expected))
        return scan_folder(_local_path(value, base_dir, expected))
    except BundleError as err:
        raise _Bad(f"cannot be used: {err}", expected) from None


def _key_file(value: Any, base_dir: Path | None) -> str:
    """The absolute path of a usable SSH private key. Its content is never put in a message."""
    expected = "the path of an unencrypted SSH private key file on the orchestrator, mode 0600"
    if not isinstance(value, str) or not value:
        raise _Bad("is not a path", expected)
    if "\n" in value or "-----" in value:
        raise _Bad("is key content, not a path", expected)
    path = _local_path(value, base_dir, expected)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        raise _Bad("does not exist on the orchestrator", expected) from None
    if not stat.S_ISREG(mode):
        raise _Bad("is not a file", expected)
    if stat.S_IMODE(mode) & 0o077:
        raise _Bad(
            f"is refused by ssh: permissions {stat.S_IMODE(mode):04o} are too open",
            f"a key only its owner can read: chmod 600 {shlex.quote(str(path))}",
        )
    _check_key_content(_read_head(path, expected), path, expected)
    return str(path)


def _read_head(path: Path, expected: str) -> str:
    try:
        with path.open("rb") as stream:
            return stream.read(64 * 1024).decode("ascii", errors="replace")
    except OSError:
        raise _Bad("cannot be read", expected) from None


def _check_key_content(text: str, path: Path, expected: str) -> None:
    first = text.split("\n", 1)[0].strip()
    if not (first.startswith("-----BEGIN") and "PRIVATE KEY" in first):
        public = first.startswith(("ssh-", "ecdsa-", "sk-")) or path.suffix == ".pub"
        hint = " (it looks like a public key)" if public else ""
        raise _Bad(f"is not a private key{hint}", expected)
    if _is_encrypted(text):
        raise _Bad(
            "is protected by a passphrase, which unattended SSH cannot type",
            f"an unencrypted private key: ssh-keygen -p -N '' -f {shlex.quote(str(path))}",
        )


_OPENSSH_MAGIC = b"openssh-key-v1\0"


def _is_encrypted(text: str) -> bool:
    """True for passphrase-protected PEM, PKCS#8 and OpenSSH private keys."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if "ENCRYPTED" in lines[0] or any(
        line.startswith("Proc-Type:") and "ENCRYPTED" in line for line in lines
    ):
        return True
    if "OPENSSH" not in lines[0]:
        return False
    try:
        blob = base64.b64decode("".join(lines[1:-1]))
    except (binascii.Error, ValueError):
        return False
    if not blob.startswith(_OPENSSH_MAGIC):
        return False
    start = len(_OPENSSH_MAGIC) + 4
    length = int.from_bytes(blob[len(_OPENSSH_MAGIC) : start], "big")
    return blob[start : start + length] != b"none"


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _address(value: Any) -> str:
    """A machine address: a usable IPv4 address or a lower-case host name."""
    expected = "an IPv4 address or a DNS host name of the machine"
    if not isinstance(value, str) or not value:
        raise _Bad("is not an address", expected)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _host_name(value, expected)
    if address.version != 4:
        raise _Bad("is an IPv6 address", expected)
    special = _special_range(ipaddress.IPv4Network(address))
    if special:
        raise _Bad(f"is in the {special}", expected)
    return str(address)


def _host_name(value: str, expected: str) -> str:
    name = value.lower()
    labels = name.split(".")
    if len(name) > 253 or labels[-1].isdigit() or not all(map(_LABEL.fullmatch, labels)):
        raise _Bad("is neither an IPv4 address nor a valid host name", expected)
    if name == "localhost":
        raise _Bad("is this machine, not one the cluster can reach", expected)
    return name


def _dns_label(value: Any) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise _Bad(
            "is not a DNS label",
            "lower-case letters, digits and '-', starting and ending with a letter or digit, "
            "at most 63 characters",
        )
    return value


def _port(value: Any) -> int:
    if not _is_int(value) or not 1 <= value <= 65535:
        raise _Bad("is not a TCP port", "an integer from 1 to 65535")
    return value


_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


def _host_key(value: Any) -> str:
    """An SSH public host key "<type> <base64>" (a trailing comment is dropped), or ""."""
    expected = "'' or the machine's public host key, e.g. 'ssh-ed25519 AAAA...'"
    if value == "":
        return ""
    fields = value.split() if isinstance(value, str) else []
    if len(fields) < 2 or fields[0] not in _HOST_KEY_TYPES:
        raise _Bad("is not an SSH public host key", expected)
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        blob = b""
    if blob[4 : 4 + len(fields[0])] != fields[0].encode():
        raise _Bad(f"does not hold an {fields[0]} key", expected)
    return f"{fields[0]} {fields[1]}"


# --- Sections: inputs with several parts ------------------------------------------------------


def _check_local_settings(problems: _Problems, value: Any) -> LocalSettings | None:
    name = "local_settings"
    if not isinstance(value, Mapping):
        accepted = ", ".join(repr(key) for key in LOCAL_KEYS)
        problems.add(name, value, "is not a mapping", f"a mapping with some of {accepted}")
        return None
    problems.unknown_keys(name, value, LOCAL_KEYS)
    settings = {**DEFAULTS[name], **value}
    subnet = problems.check(
        f"{name}.subnet", settings["subnet"], _network, SUBNET_PREFIXES, DEFAULTS[name]["subnet"]
    )
    distribution = problems.check(
        f"{name}.distribution", settings["distribution"], _choice, DISTRIBUTIONS, "distribution"
    )
    mirror = problems.check(
        f"{name}.debian_mirror",
        settings["debian_mirror"],
        _url,
        "an http(s) URL of a Debian mirror",
    )
    boot_timeout = problems.check(f"{name}.boot_timeout", settings["boot_timeout"], _boot_timeout)
    if subnet is None or distribution is None or mirror is None or boot_timeout is None:
        return None
    return LocalSettings(str(subnet), distribution, mirror.rstrip("/"), boot_timeout)


def _check_container_runtime(problems: _Problems, value: Any) -> ContainerRuntime | None:
    name = "container_runtime"
    if not isinstance(value, Mapping):
        accepted = ", ".join(repr(key) for key in RUNTIME_KEYS)
        problems.add(name, value, "is not a mapping", f"a mapping with some of {accepted}")
        return None
    problems.unknown_keys(name, value, RUNTIME_KEYS)
    settings = {**DEFAULTS[name], **value}
    checked = {
        "source": problems.check(
            f"{name}.source", settings["source"], _choice, RUNTIME_SOURCES, "source"
        ),
        "containerd_version": problems.check(
            f"{name}.containerd_version",
            settings["containerd_version"],
            _release_version,
            MIN_CONTAINERD_MAJOR,
        ),
        "runc_version": problems.check(
            f"{name}.runc_version", settings["runc_version"], _release_version, 1
        ),
        "containerd_url": problems.check(
            f"{name}.containerd_url", settings["containerd_url"], _download_url
        ),
        "runc_url": problems.check(f"{name}.runc_url", settings["runc_url"], _download_url),
    }
    if any(value is None for value in checked.values()):
        return None
    return ContainerRuntime(**checked)


_RELEASE = re.compile(r"([0-9]+)\.[0-9]+\.[0-9]+")


def _release_version(value: Any, min_major: int) -> str:
    expected = f"a release X.Y.Z with X >= {min_major}"
    match = _RELEASE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _Bad("is not a release version X.Y.Z", expected)
    if int(match[1]) < min_major:
        raise _Bad("is too old", expected)
    return value


def _download_url(value: Any) -> str:
    expected = "an http(s) URL, which may name {version} and {arch}"
    url = _url(value, expected)
    try:
        url.format(**{field: "x" for field in URL_FIELDS})
    except (KeyError, IndexError, ValueError):
        raise _Bad("names something other than {version} and {arch}", expected) from None
    return url


def _boot_timeout(value: Any) -> int:
    low, high = BOOT_TIMEOUT_RANGE
    if not _is_int(value) or not low <= value <= high:
        raise _Bad("is not a number of seconds in range", f"an integer from {low} to {high}")
    return value


@dataclass(frozen=True)
class _MachineDefaults:
    user: str | None  # None: ssh_user is invalid (already reported)
    key_file: str | None  # "" when not given, None when invalid (already reported)
    base_dir: Path | None


def _check_machine(
    problems: _Problems, index: int, value: Any, defaults: _MachineDefaults
) -> dict[str, Any]:
    """The Machine fields of one list entry; None for each invalid one (reported)."""
    name = f"existing_machines[{index}]"
    if not isinstance(value, Mapping):
        problems.add(name, value, "is not a mapping", "{address, role, ...} for each machine")
        return dict.fromkeys(Machine.__dataclass_fields__)
    problems.unknown_keys(name, value, MACHINE_KEYS)
    fields = {
        "address": problems.check(f"{name}.address", value.get("address", MISSING), _address),
        "role": problems.check(f"{name}.role", value.get("role", MISSING), _choice, ROLES, "role"),
        "user": defaults.user,
        "private_key_file": _machine_key_file(problems, name, value, defaults),
        "port": problems.check(f"{name}.port", value.get("port", 22), _port),
        "host_key": problems.check(f"{name}.host_key", value.get("host_key", ""), _host_key),
        "name": None,
    }
    if "user" in value:
        fields["user"] = problems.check(f"{name}.user", value["user"], _ssh_user)
    if "name" in value:
        fields["name"] = problems.check(f"{name}.name", value["name"], _dns_label)
    elif fields["address"] is not None:
        fields["name"] = _name_from_address(fields["address"])
    return fields


def _machine_key_file(
    problems: _Problems, name: str, value: Mapping[str, Any], defaults: _MachineDefaults
) -> str | None:
    if "private_key_file" in value:
        return problems.check(
            f"{name}.private_key_file", value["private_key_file"], _key_file, defaults.base_dir
        )
    if defaults.key_file == "":
        problems.add(
            f"{name}.private_key_file",
            MISSING,
            "",
            "a private key for every existing machine: its own private_key_file or "
            "ssh_private_key_file (which is empty)",
        )
        return None
    return defaults.key_file


def _name_from_address(address: str) -> str:
    """A Node name for a machine without one: the host name's first label, or ip-10-0-0-5."""
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return address.split(".")[0]
    return "ip-" + address.replace(".", "-")


def _check_unique(problems: _Problems, machines: Sequence[dict[str, Any]]) -> None:
    """Each address and each name once; a repeated address is not reported again by name."""
    repeated: set[int] = set()
    for field in ("address", "name"):
        seen: dict[str, int] = {}
        for index, fields in enumerate(machines):
            value = fields[field]
            if value is None or index in repeated:
                continue
            if value not in seen:
                seen[value] = index
                continue
            repeated.add(index)
            problems.add(
                f"existing_machines[{index}].{field}",
                value,
                f"is also used by existing_machines[{seen[value]}]",
                f"a different {field} for every machine"
                + (" (set name: on one of them)" if field == "name" else ""),
            )


def _check_roles(
    problems: _Problems, machines: Sequence[dict[str, Any]], control_planes: int, workers: int
) -> None:
    roles = [fields["role"] for fields in machines]
    if not roles or None in roles:
        return  # reported already; counting now would only confuse
    listed = (roles.count("control-plane"), roles.count("worker"))
    if listed[0] != control_planes or listed[1] < workers:
        problems.lines.append(
            f"existing_machines: {listed[0]} control-plane and {listed[1]} worker machines are "
            f"listed; expected {control_planes} control-plane and at least {workers} worker "
            "machines, as control_plane_count and worker_count ask for (further workers are "
            "spares, which scale-out takes in the order listed)"
        )


def _check_machines(
    problems: _Problems, value: Any, provider: str | None, defaults: _MachineDefaults
) -> list[dict[str, Any]]:
    """The Machine fields of every entry, None where invalid (the problems are reported)."""
    name = "existing_machines"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        problems.add(name, value, "is not a list", "a list of {address, role, ...} mappings")
        return []
    if provider == "local":
        if value:
            problems.add(
                name,
                value,
                "is only used with infrastructure_provider: 'existing'",
                "[] with infrastructure_provider 'local'",
            )
        return []
    if provider == "existing" and not value:
        problems.add(
            name,
            value,
            "is empty, but infrastructure_provider is 'existing'",
            "the machines to adopt, as {address, role, ...} mappings",
        )
    machines = [_check_machine(problems, i, item, defaults) for i, item in enumerate(value)]
    _check_unique(problems, machines)
    return machines


# --- Checks across inputs ----------------------------------------------------------------------


def _check_overlaps(problems: _Problems, networks: Sequence[tuple[str, Any, Any]]) -> None:
    """networks: (input name, raw value, IPv4Network or None when invalid)."""
    valid = [entry for entry in networks if entry[2] is not None]
    names = ", ".join(entry[0] for entry in networks)
    for (name, raw, network), (other, _, other_network) in itertools.combinations(valid, 2):
        if network.overlaps(other_network):
            problems.add(
                name, raw, f"overlaps {other} ({other_network})", f"separate ranges for {names}"
            )


def _check_machine_addresses(
    problems: _Problems, networks: Sequence[tuple[str, Any, Any]], machines: Sequence[dict]
) -> None:
    for name, raw, network in networks:
        for index, fields in enumerate(machines):
            try:
                address = ipaddress.IPv4Address(fields["address"])
            except ValueError:
                continue  # invalid (reported) or a host name: not resolved, nothing is touched
            if network is not None and address in network:
                problems.add(
                    name,
                    raw,
                    f"contains {address}, the address of existing_machines[{index}]",
                    "a range that holds none of the machines' addresses",
                )


def _check_pod_capacity(problems: _Problems, raw: Any, pod: Any, nodes: int) -> None:
    ranges = 2 ** (NODE_POD_PREFIX - pod.prefixlen)
    if nodes > ranges:
        prefix = NODE_POD_PREFIX - (nodes - 1).bit_length()
        problems.add(
            "pod_cidr",
            raw,
            f"has room for {ranges} node range(s) of /{NODE_POD_PREFIX}",
            f"room for all {nodes} machines: a /{prefix} or larger",
        )


def _check_subnet_capacity(problems: _Problems, local: LocalSettings, nodes: int) -> None:
    subnet = ipaddress.IPv4Network(local.subnet)
    usable = subnet.num_addresses - SUBNET_RESERVED
    needed = nodes + SUBNET_SPARE
    if usable < needed:
        prefix = 32 - (needed + SUBNET_RESERVED - 1).bit_length()
        problems.add(
            "local_settings.subnet",
            local.subnet,
            f"has {usable} addresses for machines",
            f"room for {nodes} machines plus {SUBNET_SPARE} spare ({needed} addresses): "
            f"a /{prefix} or larger",
        )


# --- Entry point -------------------------------------------------------------------------------


@dataclass
class _Checked:
    """The inputs after their own checks; None where a value is invalid (and reported)."""

    provider: str | None
    control_planes: int | None
    workers: int | None
    version: tuple[int, int, int | None] | None
    repository: tuple[str, bool] | None
    pod: ipaddress.IPv4Network | None
    service: ipaddress.IPv4Network | None
    cni: tuple[str, bool] | None
    bundle: ImageBundle | None
    user: str | None
    key_file: str | None
    local: LocalSettings | None
    machines: list[dict[str, Any]]  # Machine fields, one per existing_machines entry
    grace: str | None = None  # node_monitor_grace_period
    runtime: ContainerRuntime | None = None

    @property
    def nodes(self) -> int | None:
        if self.control_planes is None or self.workers is None:
            return None
        return self.control_planes + self.workers


def validate(raw: Mapping[str, Any], base_dir: Path | None = None) -> ClusterSpec:
    """Check every input and return the normalised spec, or raise InputError listing all problems.

    Missing inputs take their DEFAULTS; inputs not known here are ignored. Relative file paths
    (cni_manifest, key files) are taken from base_dir, the blueprint folder, when it is given.
    """
    problems = _Problems()
    given = {name: raw.get(name, default) for name, default in DEFAULTS.items()}
    checked = _check_each(problems, given, base_dir)
    _check_across(problems, given, checked)
    if problems.lines:
        raise InputError(problems.lines)
    return _spec(checked)


def _check_each(problems: _Problems, given: dict[str, Any], base_dir: Path | None) -> _Checked:
    """Every input on its own, in the order of DEFAULTS (the order of the problem lines)."""
    check = problems.check
    provider = check(
        "infrastructure_provider",
        given["infrastructure_provider"],
        _choice,
        PROVIDERS,
        "supported infrastructure provider",
    )
    control_planes = check(
        "control_plane_count", given["control_plane_count"], _control_plane_count
    )
    workers = check("worker_count", given["worker_count"], _worker_count)
    check("min_workers", given["min_workers"], _worker_count)
    version = check("kubernetes_version", given["kubernetes_version"], _kubernetes_version)
    minor = f"{version[0]}.{version[1]}" if version else None
    repository = check(
        "package_repository", given["package_repository"], _package_repository, minor
    )
    pod = check("pod_cidr", given["pod_cidr"], _network, POD_PREFIXES, DEFAULTS["pod_cidr"])
    service = check(
        "service_cidr", given["service_cidr"], _network, SERVICE_PREFIXES, DEFAULTS["service_cidr"]
    )
    cni = check("cni_manifest", given["cni_manifest"], _cni_manifest, base_dir)
    bundle = check("image_bundle", given["image_bundle"], _image_bundle, base_dir)
    user = check("ssh_user", given["ssh_user"], _ssh_user)
    key_file = given["ssh_private_key_file"]
    if key_file != "":
        key_file = check("ssh_private_key_file", key_file, _key_file, base_dir)
    local = _check_local_settings(problems, given["local_settings"])
    machine_defaults = _MachineDefaults(user, key_file, base_dir)
    machines = _check_machines(problems, given["existing_machines"], provider, machine_defaults)
    grace = check(
        "node_monitor_grace_period",
        given["node_monitor_grace_period"],
        _node_monitor_grace_period,
    )
    runtime = _check_container_runtime(problems, given["container_runtime"])
    return _Checked(
        provider=provider,
        control_planes=control_planes,
        workers=workers,
        version=version,
        repository=repository,
        pod=pod,
        service=service,
        cni=cni,
        bundle=bundle,
        user=user,
        key_file=key_file,
        local=local,
        machines=machines,
        grace=grace,
        runtime=runtime,
    )


def _check_across(problems: _Problems, given: dict[str, Any], checked: _Checked) -> None:
    if checked.bundle is not None and checked.version is not None:
        major, minor, patch = checked.version
        version = f"{major}.{minor}" + (f".{patch}" if patch is not None else "")
        missing = missing_for_kubeadm(checked.bundle.names(), version)
        if missing:
            problems.add(
                "image_bundle",
                given["image_bundle"],
                f"lacks images kubeadm runs: {', '.join(missing)} (it has: "
                f"{', '.join(checked.bundle.names())})",
                f"a bundle with kubeadm's images for Kubernetes {version}",
            )
    minimum = given["min_workers"]
    if checked.workers is not None and _is_int(minimum) and minimum > checked.workers:
        problems.add(
            "min_workers",
            minimum,
            f"is above worker_count ({checked.workers})",
            "at most worker_count",
        )
    networks = [
        ("pod_cidr", given["pod_cidr"], checked.pod),
        ("service_cidr", given["service_cidr"], checked.service),
    ]
    _check_machine_addresses(problems, networks, checked.machines)
    if checked.provider == "local" and checked.local is not None:
        subnet = ipaddress.IPv4Network(checked.local.subnet)
        networks.append(("local_settings.subnet", checked.local.subnet, subnet))
    _check_overlaps(problems, networks)
    nodes = checked.nodes
    if nodes is None:
        return
    if checked.pod is not None:
        _check_pod_capacity(problems, given["pod_cidr"], checked.pod, nodes)
    if checked.provider == "local" and checked.local is not None:
        _check_subnet_capacity(problems, checked.local, nodes)
    if checked.provider == "existing":
        _check_roles(problems, checked.machines, checked.control_planes, checked.workers)


def _spec(checked: _Checked) -> ClusterSpec:
    """The spec from inputs that all passed their checks."""
    major, minor, patch = checked.version
    return ClusterSpec(
        provider=checked.provider,
        control_plane_count=checked.control_planes,
        worker_count=checked.workers,
        kubernetes_version=f"{major}.{minor}" + (f".{patch}" if patch is not None else ""),
        kubernetes_minor=f"{major}.{minor}",
        package_version_pattern=(
            f"{major}.{minor}.*" if patch is None else f"{major}.{minor}.{patch}-*"
        ),
        package_repository=checked.repository[0],
        repository_is_local=checked.repository[1],
        pod_cidr=str(checked.pod),
        service_cidr=str(checked.service),
        cni_manifest=checked.cni[0],
        cni_manifest_is_local=checked.cni[1],
        image_bundle=checked.bundle,
        ssh_user=checked.user,
        ssh_private_key_file=checked.key_file,
        local=checked.local,
        existing_machines=tuple(Machine(**fields) for fields in checked.machines),
        node_monitor_grace_period=checked.grace,
        container_runtime=checked.runtime,
    )
