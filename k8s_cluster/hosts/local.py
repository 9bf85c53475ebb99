"""The `local` infrastructure provider: Debian LXC system containers on the orchestrating machine.

Each host is a privileged system container (systemd, sshd) on a private bridge of its deployment,
with a static address, started as an overlay over a cached debootstrap rootfs. It behaves like a
small VM for everything the suite does over SSH, including running containerd inside.

Everything a deployment owns lives in its state directory:

    <state_dir>/lxc/<container>/        LXC container: config, delta0 (overlay upper), containerd
    <state_dir>/ssh/id_ed25519[.pub]    the deployment's SSH key (0600), made once
    <state_dir>/ssh/known_hosts         each host's address and host key
    <state_dir>/local-hosts.json        network and host records (addresses, host keys)
    <state_dir>/.local-hosts.lock       lock for the above; <state_dir>/locks/<host>.lock per host

Destroying the last host removes all of it, plus the bridge and iptables rules.
Needs root, Debian's `lxc` and `debootstrap`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from k8s_cluster.hosts import Host
from k8s_cluster.hosts.lxc_network import (
    Network,
    delete_link,
    ensure_network,
    forget_neighbor,
    parse_subnet,
    remove_network,
    short_hash,
    veth_name,
)
from k8s_cluster.hosts.lxc_rootfs import (
    HOSTKEY_PUB,
    default_cache_dir,
    ensure_base_rootfs,
)
from k8s_cluster.hosts.lxc_util import (
    CommandError,
    FileLock,
    LocalHostError,
    Slots,
    machine_lock_dir,
    remove_tree,
    run,
    tail,
    write_file,
)

HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SSH_PORT = 22

CONFIG_TEMPLATE = """\
# Local host {name} of k8s-cluster deployment {deployment_id}; written by k8s_cluster.hosts.local
lxc.uts.name = {name}
lxc.rootfs.path = overlay:{lower}:{upper}
lxc.autodev = 1
lxc.pty.max = 1024
lxc.tty.max = 4
# Like a VM: privileged, unconfined, all capabilities and devices (kubelet, containerd, runc).
lxc.mount.auto = proc:rw sys:rw cgroup:rw:force
lxc.apparmor.profile = unconfined
lxc.apparmor.allow_nesting = 1
lxc.cap.drop =
lxc.cgroup.devices.allow = a
lxc.cgroup2.devices.allow = a
lxc.mount.entry = /dev/kmsg dev/kmsg none bind,create=file 0 0
# containerd's overlay snapshotter cannot work on the overlay root: give it a plain directory.
lxc.mount.entry = {containerd} var/lib/containerd none bind,create=dir 0 0
lxc.net.0.type = veth
lxc.net.0.link = {bridge}
lxc.net.0.flags = up
lxc.net.0.name = eth0
lxc.net.0.veth.pair = {veth}
lxc.net.0.hwaddr = {mac}
lxc.net.0.ipv4.address = {address}/{prefixlen}
lxc.net.0.ipv4.gateway = {gateway}
lxc.log.file = {log}
lxc.log.level = WARN
"""

ADD_USER_SCRIPT = """\
set -eu
user="$1"
key="$2"
if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$user"
fi
printf '%s ALL=(ALL) NOPASSWD:ALL\\n' "$user" > "/etc/sudoers.d/90-k8s-$user"
chmod 0440 "/etc/sudoers.d/90-k8s-$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
printf '%s\\n' "$key" > "$home/.ssh/authorized_keys"
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
"""


def validate_host_name(name: str) -> None:
    if not isinstance(name, str) or not HOST_NAME.match(name):
        raise LocalHostError(
            f"invalid host name {name!r}: it must be a DNS label (lowercase letters, digits and "
            "'-', not starting or ending with '-', at most 63 characters)"
        )


def host_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """IPv4 nameservers of this machine that a container can reach through NAT (not loopback)."""
    candidates = [resolv_conf, Path("/run/systemd/resolve/resolv.conf")]
    for path in candidates:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        servers = []
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                try:
                    address = ipaddress.ip_address(words[1])
                except ValueError:
                    continue
                if address.version == 4 and not address.is_loopback:
                    servers.append(str(address))
        if servers:
            return servers
    raise LocalHostError(
        f"no IPv4 nameserver usable by containers in {' or '.join(map(str, candidates))} "
        "(loopback resolvers are not reachable from the hosts)"
    )


BOOT_ATTEMPTS = 4


# Each container's systemd takes ~8 inotify instances, all counted against root on this machine:
# the default of 128 lets ~15 hosts boot, then systemd exits at once (status 255) in the next.
KERNEL_LIMITS = {"/proc/sys/fs/inotify/max_user_instances": 8192}


def raise_kernel_limits() -> None:
    """Raise (never lower) the machine-wide limits many system containers need."""
    for path, wanted in KERNEL_LIMITS.items():
        current = int(Path(path).read_text())
        if current < wanted:
            Path(path).write_text(f"{wanted}\n")


def boot_slots() -> Slots:
    """Booting many containers at once starves each of CPU (sshd then answers only after
    minutes, or systemd gives up): admit a few boots per core at a time on this machine."""
    return Slots(machine_lock_dir(), "k8s-cluster-boot", 2 * (os.cpu_count() or 1))


class StoppedWhileBooting(LocalHostError):
    """The container stopped before its sshd answered."""


class LocalProvider:
    """Hosts of one deployment as LXC system containers on this machine (run as root)."""

    def __init__(
        self,
        deployment_id: str,
        state_dir: Path,
        subnet: str = "10.77.0.0/24",
        distribution: str = "bookworm",
        mirror: str = "http://deb.debian.org/debian",
        ssh_user: str = "root",
        cache_dir: Path | None = None,
        boot_timeout: float = 120.0,
    ) -> None:
        if not deployment_id:
            raise LocalHostError("deployment_id must not be empty")
        if not USER_NAME.match(ssh_user):
            raise LocalHostError(f"invalid ssh_user {ssh_user!r}")
        self.deployment_id = deployment_id
        self.state_dir = Path(state_dir).expanduser().absolute()
        # Names on this machine (bridge, veths, containers) derive from the state folder, not the
        # deployment id alone: two state folders may hold deployments of the same id.
        self.identity = str(self.state_dir)
        self.network = Network(self.identity, parse_subnet(subnet))
        self.distribution = distribution
        self.mirror = mirror
        self.ssh_user = ssh_user
        self.cache_dir = Path(cache_dir).expanduser().absolute() if cache_dir else None
        self.boot_timeout = boot_timeout
        self._prefix = f"k8s{short_hash(self.identity)}-"
        for path in (self.state_dir, self._cache_dir):
            if re.search(r"[\s:,]", str(path)):
                raise LocalHostError(
                    f"{path}: LXC and overlayfs need a path without spaces, ':' or ','"
                )

    # --- paths and names --------------------------------------------------------------------

    @property
    def _cache_dir(self) -> Path:
        return self.cache_dir or default_cache_dir()

    @property
    def lxc_path(self) -> Path:
        return self.state_dir / "lxc"

    @property
    def key_file(self) -> Path:
        """The deployment's private SSH key (mode 0600), authorized on every host."""
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def known_hosts_file(self) -> Path:
        return self.state_dir / "ssh" / "known_hosts"

    @property
    def gateway(self) -> str:
        """This machine's address on the hosts' network (e.g. to serve them a package mirror)."""
        return str(self.network.gateway)

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "local-hosts.json"

    def _deployment_lock(self) -> FileLock:
        return FileLock(self.state_dir / ".local-hosts.lock")

    def _host_lock(self, name: str) -> FileLock:
        return FileLock(self.state_dir / "locks" / f"{name}.lock")

    def container_name(self, name: str) -> str:
        return self._prefix + name

    def _container_dir(self, name: str) -> Path:
        return self.lxc_path / self.container_name(name)

    def _upper(self, name: str) -> Path:
        return self._container_dir(name) / "delta0"

    def _lxc(self, command: str, name: str, *args: str, check: bool = True, timeout: float = 60):
        argv = [command, "-P", str(self.lxc_path), "-n", self.container_name(name), *args]
        return run(argv, f"{command} of host {name}", check=check, timeout=timeout)

    # --- records ------------------------------------------------------------------------------

    def _load(self) -> dict:
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}
        state.setdefault("deployment_id", self.deployment_id)
        state.setdefault("subnet", str(self.network.subnet))
        state.setdefault("bridge", self.network.bridge)
        state.setdefault("hosts", {})
        return state

    def _save(self, state: dict) -> None:
        write_file(self._state_file, json.dumps(state, indent=2, sort_keys=True) + "\n", 0o600)
        lines = [
            f"{host['address']} {host['host_key']}\n"
            for host in state["hosts"].values()
            if host.get("host_key")
        ]
        if lines or self.known_hosts_file.exists():
            write_file(self.known_hosts_file, "".join(sorted(lines)), 0o600)

    def _check_subnet(self, state: dict) -> None:
        if state["subnet"] != str(self.network.subnet) and state["hosts"]:
            raise LocalHostError(
                f"deployment {self.deployment_id!r} already has hosts on subnet {state['subnet']}, "
                f"not {self.network.subnet}; destroy them before changing the subnet"
            )

    def _allocate(self, state: dict, name: str) -> str:
        state["subnet"] = str(self.network.subnet)
        hosts = state["hosts"]
        if name in hosts:
            return hosts[name]["address"]
        used = {host["address"] for host in hosts.values()}
        if self._defined(name):  # its record was lost: keep the address the container has
            previous = self._address_of(name)
            if previous and previous not in used:
                hosts[name] = {"address": previous, "host_key": ""}
                return previous
        index = 0
        while str(self.network.host_address(index)) in used:
            index += 1
        address = str(self.network.host_address(index))
        hosts[name] = {"address": address, "host_key": ""}
        return address

    def _ensure_key(self) -> str:
        """Create the deployment key pair once; return the public key line."""
        public = self.key_file.with_name(self.key_file.name + ".pub")
        if not (self.key_file.exists() and public.exists()):
            key = Ed25519PrivateKey.generate()
            private_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ).decode()
            public_line = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file(self.key_file, private_pem, 0o600)
            write_file(public, f"{public_line.decode()} k8s-cluster-{self.deployment_id}\n", 0o644)
        return public.read_text(encoding="utf-8").strip()

    def ssh_public_key(self) -> str:
        """The deployment's public key line (created on first use)."""
        with self._deployment_lock():
            return self._ensure_key()

    # --- queries --------------------------------------------------------------------------------

    def _address_of(self, name: str) -> str:
        """The address in the container's configuration ("" if none)."""
        return self._config(name).get("lxc.net.0.ipv4.address", "").split("/")[0]

    def _config(self, name: str) -> dict[str, str]:
        """The container's LXC config as key -> value (the last value of repeated keys)."""
        text = (self._container_dir(name) / "config").read_text(encoding="utf-8")
        pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
        return {key.strip(): value.strip() for key, value in pairs if not key.startswith("#")}

    def _defined(self, name: str) -> bool:
        return (self._container_dir(name) / "config").exists()

    def state(self, name: str) -> str:
        """LXC state of a host: RUNNING, STOPPED, FROZEN, ... or ABSENT if it does not exist."""
        validate_host_name(name)
        if not self._defined(name):
            return "ABSENT"
        return self._lxc("lxc-info", name, "-s", "-H").stdout.strip()

    def is_running(self, name: str) -> bool:
        """True when the host runs normally (a frozen, i.e. hung, host is not running)."""
        return self.state(name) == "RUNNING"

    def host_names(self) -> list[str]:
        """Hosts of this deployment that exist, running or not, including half-created ones."""
        names = set(self._load()["hosts"])
        if self.lxc_path.is_dir():
            for entry in self.lxc_path.iterdir():
                if entry.name.startswith(self._prefix) and (entry / "config").exists():
                    names.add(entry.name[len(self._prefix) :])
        return sorted(names)

    # --- create ---------------------------------------------------------------------------------

    def create_host(self, name: str, role: str = "worker") -> Host:
        """Create and start host `name`, or return it if it exists (starting it if stopped).
        Every local host is alike, whatever its `role`."""
        validate_host_name(name)
        self._check_machine()
        lower = ensure_base_rootfs(self._cache_dir, self.distribution, self.mirror)
        lock = self._host_lock(name)
        with lock:
            try:
                with self._deployment_lock():
                    state = self._load()
                    self._check_subnet(state)
                    ensure_network(self.network)
                    public_key = self._ensure_key()
                    address = self._allocate(state, name)
                    self._save(state)
            except BaseException:
                if name not in self._load()["hosts"]:  # nothing of this host exists: no trace
                    lock.remove()
                    self._teardown_if_unused()
                raise
            self._converge(name, address, lower, public_key)
            host_key = self._read_host_key(name)
            with self._deployment_lock():
                state = self._load()
                state["hosts"][name] = {"address": address, "host_key": host_key}
                self._save(state)
        return Host(
            name=name,
            address=address,
            user=self.ssh_user,
            key_file=str(self.key_file),
            host_key=host_key,
            port=SSH_PORT,
        )

    def _check_machine(self) -> None:
        if os.geteuid() != 0:
            raise LocalHostError("the local provider runs LXC system containers and needs root")
        for tool in ("lxc-start", "debootstrap", "iptables", "ip"):
            if shutil.which(tool) is None:
                raise LocalHostError(
                    f"the local provider needs `{tool}` (Debian packages lxc, debootstrap, "
                    "iptables, iproute2)"
                )
        raise_kernel_limits()

    def _converge(self, name: str, address: str, lower: Path, public_key: str) -> None:
        """Bring the container to RUNNING with sshd answering, whatever state it was left in."""
        if self._defined(name):
            config = self._config(name)
            if self._address_of(name) != address:
                raise LocalHostError(
                    f"host {name} (container {self.container_name(name)}) has an address other "
                    f"than its record {address}; destroy it first"
                )
            base = config.get("lxc.rootfs.path", "").split(":")
            if len(base) != 3 or not Path(base[1]).is_dir():
                if self.state(name) != "STOPPED":
                    raise LocalHostError(
                        f"host {name} (container {self.container_name(name)}) runs on a base "
                        f"rootfs that no longer exists ({base}); destroy it first"
                    )
                remove_tree(self._container_dir(name))  # it cannot boot any more: define anew
        if not self._defined(name):
            self._define(name, address, lower, public_key)
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            try:
                with boot_slots():
                    self._start(name)
                    if self.ssh_user != "root":
                        self._add_ssh_user(name, public_key)
                    self._wait_ssh(name, address)
                return
            except StoppedWhileBooting:
                # A fresh container's systemd exits at once (status 255, no output) when the
                # machine lacks a resource for it, as inotify instances were before
                # raise_kernel_limits: a later start may find it; give up after a few.
                if attempt == BOOT_ATTEMPTS:
                    raise
                time.sleep(attempt)

    def _start(self, name: str) -> None:
        state = self.state(name)
        if state == "FROZEN":
            self._lxc("lxc-unfreeze", name)
        elif state == "STOPPED":
            delete_link(veth_name(self.identity, name))  # left over by a crash, if any
            forget_neighbor(self._address_of(name))
            try:
                self._lxc("lxc-start", name, "-d", timeout=120)
            except CommandError as exc:
                raise LocalHostError(f"{exc}\n{self._log_tail(name)}") from exc
        elif state != "RUNNING":
            self._wait_state(name, "RUNNING", timeout=30)

    def _add_ssh_user(self, name: str, public_key: str) -> None:
        self._lxc(
            "lxc-attach",
            name,
            "--clear-env",
            "--",
            "/bin/sh",
            "-c",
            ADD_USER_SCRIPT,
            "sh",
            self.ssh_user,
            public_key,
        )

    def _define(self, name: str, address: str, lower: Path, public_key: str) -> None:
        """Write the container's directory; its config, written last, marks it complete."""
        directory = self._container_dir(name)
        remove_tree(directory)  # whatever a crash left half-written
        upper = self._upper(name)
        upper.mkdir(parents=True)
        os.chmod(directory, 0o700)
        containerd = directory / "containerd"
        containerd.mkdir(mode=0o711)
        resolv = "".join(f"nameserver {server}\n" for server in host_nameservers())
        self._write_upper(upper, lower, "etc/resolv.conf", resolv, 0o644)
        hosts = (
            f"127.0.0.1\tlocalhost\n{address}\t{name}\n"
            "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
        )
        self._write_upper(upper, lower, "etc/hosts", hosts, 0o644)
        if self.ssh_user == "root":
            self._write_upper(upper, lower, "root/.ssh/authorized_keys", public_key + "\n", 0o600)
        mac = "02:" + ":".join(
            short_hash(self.identity, name, length=10)[i : i + 2] for i in range(0, 10, 2)
        )
        text = CONFIG_TEMPLATE.format(
            name=name,
            deployment_id=self.deployment_id,
            lower=lower,
            upper=upper,
            containerd=containerd,
            bridge=self.network.bridge,
            veth=veth_name(self.identity, name),
            mac=mac,
            address=address,
            prefixlen=self.network.subnet.prefixlen,
            gateway=self.network.gateway,
            log=directory / "lxc.log",
        )
        write_file(directory / "config", text, 0o600)

    @staticmethod
    def _write_upper(upper: Path, lower: Path, relative: str, text: str, mode: int) -> None:
        """Write a file into the overlay's upper layer; new directories copy the lower's modes."""
        parts = Path(relative).parts
        for depth in range(1, len(parts)):
            sub = Path(*parts[:depth])
            target = upper / sub
            if not target.exists():
                target.mkdir()
                source = lower / sub
                if source.is_dir():
                    info = source.stat()
                    os.chmod(target, info.st_mode & 0o7777)
                    os.chown(target, info.st_uid, info.st_gid)
                else:
                    os.chmod(target, 0o700 if sub.name == ".ssh" else 0o755)
        write_file(upper / relative, text, mode)

    def _wait_state(self, name: str, wanted: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (state := self.state(name)) != wanted:
            if time.monotonic() > deadline:
                raise LocalHostError(
                    f"host {name} (container {self.container_name(name)}) stayed {state}, "
                    f"not {wanted}, for {timeout:g} s\n{self._log_tail(name)}"
                )
            time.sleep(0.2)

    def _wait_ssh(self, name: str, address: str) -> None:
        """Wait until sshd on the host answers with its banner."""
        deadline = time.monotonic() + self.boot_timeout
        next_check = time.monotonic() + 2
        last_error = ""
        while True:
            try:
                with socket.create_connection((address, SSH_PORT), timeout=1) as sock:
                    sock.settimeout(2)
                    banner = sock.recv(256)
                if banner.startswith(b"SSH-"):
                    return
                last_error = f"unexpected banner {banner[:40]!r}"
            except OSError as exc:
                last_error = str(exc) or type(exc).__name__
            now = time.monotonic()
            if now > deadline:
                raise LocalHostError(
                    f"host {name} (container {self.container_name(name)}, {address}) did not "
                    f"answer SSH within {self.boot_timeout:g} s: {last_error}\n"
                    + self._log_tail(name)
                )
            if now > next_check:
                state = self.state(name)
                if state != "RUNNING":
                    raise StoppedWhileBooting(
                        f"host {name} (container {self.container_name(name)}) is {state} while "
                        f"waiting for SSH\n{self._log_tail(name)}"
                    )
                next_check = now + 2
            time.sleep(0.05)

    def _read_host_key(self, name: str) -> str:
        """The host's SSH host key, read from its root filesystem on this machine (not the net)."""
        path = self._upper(name) / HOSTKEY_PUB
        try:
            words = path.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            words = []
        if len(words) < 2 or words[0] != "ssh-ed25519":
            raise LocalHostError(
                f"host {name} (container {self.container_name(name)}) has no usable SSH host key "
                f"in {path}"
            )
        return f"{words[0]} {words[1]}"

    def _log_tail(self, name: str) -> str:
        log = self._container_dir(name) / "lxc.log"
        try:
            text = tail(log.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            return "(no LXC log)"
        return f"LXC log {log}:\n{text}" if text else f"(LXC log {log} is empty)"

    # --- failures -------------------------------------------------------------------------------

    def power_off(self, name: str) -> None:
        """Simulate a failed machine: cut its network silently, then kill it."""
        validate_host_name(name)
        if not self._defined(name):
            raise LocalHostError(f"host {name} of deployment {self.deployment_id!r} does not exist")
        veth = veth_name(self.identity, name)
        run(["ip", "link", "set", "dev", veth, "down"], f"cut host {name}'s network", check=False)
        self._kill(name)

    def freeze(self, name: str) -> None:
        """Simulate a hung machine: freeze every process in it (TCP peers see silence)."""
        state = self.state(name)
        if state == "FROZEN":
            return
        if state != "RUNNING":
            raise LocalHostError(f"host {name} is {state}, not RUNNING: cannot freeze it")
        self._lxc("lxc-freeze", name)

    def _kill(self, name: str) -> None:
        state = self.state(name)
        if state == "FROZEN":  # a frozen init cannot die until thawed
            self._lxc("lxc-unfreeze", name, check=False)
        if state not in ("STOPPED", "ABSENT"):
            self._lxc("lxc-stop", name, "-k", timeout=60)

    # --- destroy --------------------------------------------------------------------------------

    def destroy_host(self, name: str, keep_address: bool = False) -> None:
        """Remove host `name` entirely; with the deployment's last host, its network too.
        keep_address: keep its address reserved, so a replacement of the same name gets it."""
        validate_host_name(name)
        lock = self._host_lock(name)
        with lock:
            if self._defined(name):
                self._kill(name)
            remove_tree(self._container_dir(name))
            delete_link(veth_name(self.identity, name))
            with self._deployment_lock():
                state = self._load()
                record = state["hosts"].pop(name, None)
                if record is not None and keep_address:
                    state["hosts"][name] = {"address": record["address"], "host_key": ""}
                if record is not None:
                    self._save(state)
            lock.remove()
        self._teardown_if_unused()

    def _teardown_if_unused(self) -> None:
        lock = self._deployment_lock()
        with lock:
            if self.host_names():
                return
            remove_network(self.network)
            public = self.key_file.with_name(self.key_file.name + ".pub")
            for path in (self._state_file, self.known_hosts_file, self.key_file, public):
                path.unlink(missing_ok=True)
            for directory in (self.key_file.parent, self.lxc_path, self.state_dir / "locks"):
                # absent, or holds something not ours (or a lock being taken now)
                with contextlib.suppress(OSError):
                    directory.rmdir()
            lock.remove()

    # --- volumes (k8s_cluster.storage) ------------------------------------------------------------
    # A volume's backing store is a sparse file in the deployment's state folder, outside the
    # container, so it outlives it: <state_dir>/volumes/<host>/<name>.img. To attach it, this
    # machine binds it to a loop device, whose node is made inside the container; the host then
    # mounts it. The loop device is released at once (autoclear): the kernel detaches it when the
    # host unmounts it or the container goes, so no loop device is ever left behind.

    def volume_file(self, name: str, volume: str) -> Path:
        return self.state_dir / "volumes" / name / f"{volume}.img"

    def volume_space(self) -> int | None:
        """Bytes free for backing files."""
        return shutil.disk_usage(self.state_dir).free

    def create_volume(self, name: str, volume: str, size_bytes: int, device: str = "") -> None:
        """Make the backing file (sparse) if it does not exist. `device`: existing machines only."""
        if device:
            raise LocalHostError("a device is only given for existing machines, not local hosts")
        path = self.volume_file(name, volume)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            with open(path, "xb") as backing:
                backing.truncate(size_bytes)
            os.chmod(path, 0o600)

    @contextlib.contextmanager
    def volume_device(self, name: str, volume: str):
        """The volume as a block device inside the running host, for the time of a mount."""
        path = self.volume_file(name, volume)
        if not path.exists():
            raise LocalHostError(f"volume {volume} of host {name} has no backing file {path}")
        inside = f"/dev/k8s-volume-{volume}"
        if self.volume_attached(name, volume):
            # mounted already (a re-run), or still held by a host going away: never a second
            # loop device on the same file (two mounts of one filesystem would corrupt it)
            yield inside
            return
        loop = run(["losetup", "--find", "--show", str(path)], f"attach {path}").stdout.strip()
        try:
            minor = os.minor(os.stat(loop).st_rdev)
            make_node = f'rm -f "$1" && mknod -m 0600 "$1" b 7 {minor}'
            self._lxc(
                "lxc-attach", name, "--clear-env", "--", "/bin/sh", "-c", make_node, "sh", inside
            )
            yield inside
        finally:
            # busy (mounted): detached when the host lets it go; idle: detached now
            run(["losetup", "-d", loop], f"release {loop}", check=False)

    def volume_attached(self, name: str, volume: str) -> bool:
        path = self.volume_file(name, volume)
        return bool(run(["losetup", "-j", str(path)], f"look up {path}").stdout.strip())

    def delete_volume(self, name: str, volume: str) -> None:
        """Delete the backing file; refused while a host still has it mounted."""
        path = self.volume_file(name, volume)
        if path.exists() and self.volume_attached(name, volume):
            raise LocalHostError(f"volume {volume} of host {name} is still mounted ({path})")
        path.unlink(missing_ok=True)
        for directory in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                directory.rmdir()
