"""The base root filesystem that every local (LXC) host starts from.

Built once by debootstrap into a cache directory shared by all deployments (under a file lock, so
concurrent threads and processes build it only once), then used read-only as the lower layer of
each host's overlay root. A finished build lives in `<cache_dir>/<distribution>-<hash>/rootfs`,
where the hash covers everything that shapes its content; it is never changed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from k8s_cluster.hosts.lxc_util import FileLock, LocalHostError, remove_tree, run, tail, write_file
from k8s_cluster.paths import cache_root

# Bump when the recipe below changes what ends up in the rootfs: a new cache entry is built.
RECIPE_VERSION = 1

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "python3",
    "ca-certificates",
    "iproute2",
    "iptables",
    "kmod",
    "procps",
    "iputils-ping",
    "curl",
)

# Debian's openssh-server makes host keys only in its postinst, so the base would share one set.
# The base ships none; each host makes its own at first boot, before sshd starts.
HOSTKEY_UNIT_NAME = "ssh-hostkeys.service"
HOSTKEY_UNIT = """\
[Unit]
Description=Generate this host's SSH host key on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
"""

SSHD_CONFIG = """\
# Local (LXC) hosts of the k8s-cluster suite: one host key, made at first boot; keys only.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
"""

HOSTKEY_PUB = "etc/ssh/ssh_host_ed25519_key.pub"


def default_cache_dir() -> Path:
    return cache_root() / "rootfs"


def cache_key(distribution: str, mirror: str) -> str:
    recipe = json.dumps([RECIPE_VERSION, distribution, mirror, PACKAGES, HOSTKEY_UNIT, SSHD_CONFIG])
    return f"{distribution}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def ensure_base_rootfs(cache_dir: Path, distribution: str, mirror: str) -> Path:
    """Return the cached base rootfs for `distribution` from `mirror`, building it if needed."""
    return ensure_debootstrap(
        cache_dir / cache_key(distribution, mirror), distribution, mirror, PACKAGES, _customize
    )


def ensure_debootstrap(
    entry: Path,
    distribution: str,
    mirror: str,
    packages: Sequence[str],
    customize: Callable[[Path], None],
) -> Path:
    """`entry`/rootfs: a minbase debootstrap of `distribution` with `packages`, then
    `customize`d; built once (under a lock, for every thread and process) and kept."""
    rootfs = entry / "rootfs"
    if (entry / "complete").exists():
        return rootfs
    with FileLock(entry.with_name(f"{entry.name}.lock")):
        if not (entry / "complete").exists():  # another thread or process built it meanwhile
            _build(entry, distribution, mirror, packages, customize)
    return rootfs


def _build(
    entry: Path,
    distribution: str,
    mirror: str,
    packages: Sequence[str],
    customize: Callable[[Path], None],
) -> None:
    work = entry.with_name(f".{entry.name}.building")
    remove_tree(work)  # leftovers of a build that crashed
    remove_tree(entry)  # an entry without its `complete` marker is unfinished
    target = work / "rootfs"
    target.mkdir(parents=True)
    log = entry.with_name(f"{entry.name}.log")
    started = time.monotonic()
    argv = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        distribution,
        str(target),
        mirror,
    ]
    proc = run(argv, "debootstrap", check=False, timeout=1800)
    log.write_text(proc.stdout, encoding="utf-8")
    if proc.returncode != 0:
        debootstrap_log = target / "debootstrap" / "debootstrap.log"
        detail = debootstrap_log.read_text(errors="replace") if debootstrap_log.exists() else ""
        remove_tree(work)
        raise LocalHostError(
            f"building a {distribution} root filesystem from {mirror} failed "
            f"(debootstrap exited {proc.returncode}; full output in {log}):\n"
            f"{tail(proc.stdout)}\n{tail(detail)}"
        )
    customize(target)
    write_file(
        work / "complete",
        json.dumps(
            {
                "distribution": distribution,
                "mirror": mirror,
                "packages": list(packages),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
        + "\n",
    )
    os.replace(work, entry)


def _customize(rootfs: Path) -> None:
    """Turn a fresh debootstrap into a template: nothing that must differ between hosts."""
    for relative in ("etc/hostname", "etc/resolv.conf", "var/lib/dbus/machine-id"):
        path = rootfs / relative
        if path.exists() or path.is_symlink():
            path.unlink()
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # An empty machine-id makes systemd give every host its own at first boot.
    (rootfs / "etc/machine-id").write_text("", encoding="utf-8")
    write_file(rootfs / "etc/ssh/sshd_config.d/k8s-local-hosts.conf", SSHD_CONFIG)
    unit = rootfs / "etc/systemd/system" / HOSTKEY_UNIT_NAME
    write_file(unit, HOSTKEY_UNIT)
    wants = rootfs / "etc/systemd/system/ssh.service.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / HOSTKEY_UNIT_NAME
    if not link.is_symlink():
        link.symlink_to(f"/etc/systemd/system/{HOSTKEY_UNIT_NAME}")
    run(["chroot", str(rootfs), "apt-get", "clean"], "apt-get clean in the base rootfs")
