"""The `local` provider: real LXC system containers on this machine (needs root and Debian lxc).

The first run builds the shared base rootfs (about a minute, needs Debian's mirror); later runs
reuse it and take a few seconds. Hosts live on the test subnet 10.79.0.0/24.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from k8s_cluster import health
from k8s_cluster.hosts import Host
from k8s_cluster.hosts.local import LocalProvider, host_nameservers, validate_host_name
from k8s_cluster.hosts.lxc_network import bridge_name, parse_subnet, veth_name
from k8s_cluster.hosts.lxc_util import FileLock, LocalHostError

TEST_SUBNET = "10.79.0.0/24"
NAMES = ("cp-1", "worker-1")

needs_lxc = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("lxc-start") or not shutil.which("debootstrap"),
    reason="local hosts need root and Debian's lxc and debootstrap packages",
)


# --- without containers --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "cp-1", "w0", "x" * 63, "1node"])
def test_valid_host_names(name: str) -> None:
    validate_host_name(name)


@pytest.mark.parametrize("name", ["", "Node", "-a", "a-", "a_b", "a.b", "x" * 64, "a b"])
def test_invalid_host_names(name: str) -> None:
    with pytest.raises(LocalHostError, match="DNS label"):
        validate_host_name(name)


@pytest.mark.parametrize("subnet", ["10.79.0.1/24", "fd00::/64", "10.79.0.0/29", "nonsense"])
def test_invalid_subnets(subnet: str) -> None:
    with pytest.raises(LocalHostError, match="subnet"):
        parse_subnet(subnet)


def test_interface_names_fit_the_kernel_limit() -> None:
    assert len(bridge_name("a-very-long-deployment-id" * 4)) <= 15
    assert len(veth_name("a-very-long-deployment-id" * 4, "x" * 63)) <= 15
    assert bridge_name("one") != bridge_name("two")
    assert veth_name("one", "a") != veth_name("two", "a")


def test_nameservers_skip_loopback(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n")
    assert host_nameservers(conf) == ["192.0.2.53"]


def test_file_lock_excludes_threads_of_one_process(tmp_path: Path) -> None:
    inside = 0
    overlaps = 0

    def critical() -> None:
        nonlocal inside, overlaps
        with FileLock(tmp_path / "x.lock"):
            inside += 1
            overlaps += inside > 1
            time.sleep(0.01)
            inside -= 1

    threads = [threading.Thread(target=critical) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0


# --- with containers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    state_dir = tmp_path_factory.mktemp("local-hosts") / "deployment"
    local = LocalProvider(f"test-{uuid.uuid4().hex[:8]}", state_dir, subnet=TEST_SUBNET)
    yield local
    for name in local.host_names():  # whatever a failed test left behind
        local.destroy_host(name)


@pytest.fixture(scope="module")
def hosts(provider: LocalProvider) -> dict[str, Host]:
    started = time.monotonic()
    with ThreadPoolExecutor(len(NAMES)) as pool:
        created = dict(zip(NAMES, pool.map(provider.create_host, NAMES), strict=True))
    print(f"created {len(NAMES)} hosts in {time.monotonic() - started:.2f} s")
    return created


def connect(host: Host, host_key: str | None = None, timeout: float = 5) -> paramiko.SSHClient:
    """SSH to a host, accepting only `host_key` (default: the recorded one)."""
    kind, blob = (host_key or host.host_key).split()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(host.address, kind, paramiko.Ed25519Key(data=base64.b64decode(blob)))
    client.connect(
        host.address,
        port=host.port,
        username=host.user,
        key_filename=host.key_file,
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def execute(host: Host, command: str, timeout: float = 120) -> str:
    client = connect(host)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=timeout)
        status = stdout.channel.recv_exit_status()
        output = stdout.read().decode()
        assert status == 0, f"{command!r} exited {status}: {output}{stderr.read().decode()}"
        return output
    finally:
        client.close()


def other_ed25519_key() -> str:
    """A host key that belongs to no host (paramiko cannot generate ed25519 keys itself)."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@needs_lxc
class TestLocalHosts:
    """Runs in order: create, use, break and destroy two hosts of one deployment."""

    def test_create_in_parallel(self, provider: LocalProvider, hosts: dict[str, Host]) -> None:
        subnet = parse_subnet(TEST_SUBNET)
        addresses = {host.address for host in hosts.values()}
        assert addresses == {"10.79.0.10", "10.79.0.11"}
        for name, host in hosts.items():
            assert host.name == name
            assert host.user == "root"
            assert host.port == 22
            assert host.key_file == str(provider.key_file)
            assert host.host_key.startswith("ssh-ed25519 AAAA")
            assert ipaddress.ip_address(host.address) in subnet
        assert len({host.host_key for host in hosts.values()}) == len(hosts), "shared host keys"
        assert provider.key_file.stat().st_mode & 0o777 == 0o600
        assert provider.ssh_public_key().startswith("ssh-ed25519 ")
        assert provider.host_names() == sorted(NAMES)
        assert all(provider.is_running(name) for name in NAMES)
        known = provider.known_hosts_file.read_text()
        for host in hosts.values():
            assert f"{host.address} {host.host_key}\n" in known

    def test_ssh_with_recorded_host_key(self, hosts: dict[str, Host]) -> None:
        for name, host in hosts.items():
            assert execute(host, "hostname").strip() == name
            assert f"inet {host.address}/24" in execute(host, "ip -4 -o addr show dev eth0")
            assert execute(host, "systemctl is-system-running --wait || true").strip() in (
                "running",
                "degraded",
            )

    def test_wrong_host_key_is_rejected(self, hosts: dict[str, Host]) -> None:
        host = hosts[NAMES[0]]
        with pytest.raises(paramiko.BadHostKeyException):
            connect(host, host_key=other_ed25519_key())

    def test_apt_get_update_through_nat(self, hosts: dict[str, Host]) -> None:
        output = execute(hosts[NAMES[0]], "apt-get update 2>&1")
        assert "Reading package lists" in output

    def test_create_is_idempotent(self, provider: LocalProvider, hosts: dict[str, Host]) -> None:
        for name, host in hosts.items():
            assert provider.create_host(name) == host

    def test_subnet_of_another_deployment_is_refused(
        self, provider: LocalProvider, hosts: dict[str, Host], tmp_path: Path
    ) -> None:
        other = LocalProvider("other-deployment", tmp_path / "other", subnet="10.79.0.128/25")
        with pytest.raises(LocalHostError, match=provider.network.bridge) as info:
            other.create_host("x")
        assert "10.79.0.128/25" in str(info.value)
        assert provider.identity in str(info.value)  # names the deployment by its state folder
        assert not any((tmp_path / "other").iterdir()), "a refused create left files behind"

    def test_power_off_makes_ssh_time_out(
        self, provider: LocalProvider, hosts: dict[str, Host]
    ) -> None:
        name = NAMES[1]
        provider.power_off(name)
        assert not provider.is_running(name)
        assert provider.host_names() == sorted(NAMES), "a powered-off host still exists"
        started = time.monotonic()
        with pytest.raises((OSError, paramiko.SSHException)):
            connect(hosts[name], timeout=2)
        assert time.monotonic() - started < 5
        # Creating it again boots the same machine: same address, same host key.
        assert provider.create_host(name) == hosts[name]
        assert execute(hosts[name], "hostname").strip() == name

    def test_frozen_host_hangs_and_recovers(
        self, provider: LocalProvider, hosts: dict[str, Host]
    ) -> None:
        name = NAMES[1]
        provider.freeze(name)
        assert provider.state(name) == "FROZEN"
        with pytest.raises((OSError, paramiko.SSHException)):
            connect(hosts[name], timeout=2)
        assert provider.create_host(name) == hosts[name]

    def test_ssh_failures_are_said_in_plain_words(
        self, provider: LocalProvider, hosts: dict[str, Host], tmp_path: Path
    ) -> None:
        """What check_cluster's SSH column says, for each way a real host can fail to answer."""
        host, other = hosts[NAMES[0]], hosts[NAMES[1]]
        stranger = tmp_path / "id_stranger"  # a key the host never authorized
        stranger.write_bytes(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
        stranger.chmod(0o600)
        unused = str(provider.network.host_address(200))  # on the bridge, no host there
        cases = {
            "host key mismatch": replace(host, host_key=other.host_key),
            "authentication refused": replace(host, key_file=str(stranger)),
            "connection refused": replace(host, port=2222),
            "no route to host": replace(host, address=unused),
        }
        for words, case in cases.items():
            assert health.probe_host(case, timeout=8) == (words, "unknown"), words
        provider.freeze(NAMES[1])
        try:
            assert health.probe_host(other, timeout=3) == ("timed out", "unknown")
        finally:
            provider.create_host(NAMES[1])
        assert health.probe_host(host, timeout=8)[0] == health.SSH_OK

    def test_half_created_host_is_completed(self, provider: LocalProvider) -> None:
        # A crash while defining the container leaves a directory without its config.
        leftover = provider.lxc_path / provider.container_name("half") / "delta0"
        leftover.mkdir(parents=True)
        (leftover / "junk").write_text("left by a crash")
        host = provider.create_host("half")
        assert execute(host, "hostname").strip() == "half"
        assert host.address == "10.79.0.12"
        provider.destroy_host("half")
        assert not (provider.lxc_path / provider.container_name("half")).exists()

    def test_destroy_leaves_nothing(self, provider: LocalProvider, hosts: dict[str, Host]) -> None:
        with ThreadPoolExecutor(len(NAMES)) as pool:
            list(pool.map(provider.destroy_host, NAMES))
        provider.destroy_host(NAMES[0])  # idempotent
        assert provider.host_names() == []
        links = subprocess.run(
            ["ip", "-o", "link"], check=False, capture_output=True, text=True
        ).stdout
        assert provider.network.bridge not in links
        for name in NAMES:
            assert veth_name(provider.identity, name) not in links
        ruleset = subprocess.run(
            ["iptables-save"], check=False, capture_output=True, text=True
        ).stdout
        assert provider.network.bridge not in ruleset
        assert TEST_SUBNET not in ruleset
        containers = subprocess.run(
            ["lxc-ls", "-P", str(provider.lxc_path)], check=False, capture_output=True, text=True
        ).stdout
        assert containers.strip() == ""
        assert list(provider.state_dir.iterdir()) == []
        for host in hosts.values():
            with pytest.raises((OSError, paramiko.SSHException)):
                connect(host, timeout=1)
