"""The existing provider hands out listed machines by role, stably, and never invents host keys."""

import subprocess

import pytest

from k8s_cluster.hosts.existing import ExistingProvider, ExistingProviderError, host_key_of
from k8s_cluster.inputs import Machine


def machine(address, role, host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC2k", name=None):
    return Machine(
        address=address,
        role=role,
        user="debian",
        private_key_file="/keys/id",
        name=name or f"m-{address.rsplit('.', 1)[-1]}",
        port=22,
        host_key=host_key,
    )


MACHINES = (
    machine("192.0.2.10", "control-plane"),
    machine("192.0.2.11", "worker"),
    machine("192.0.2.12", "worker"),
)


def test_machines_are_handed_out_by_role_and_claims_are_stable(tmp_path):
    provider = ExistingProvider(MACHINES, tmp_path)
    cp = provider.create_host("cp-aaa", "control-plane")
    w1 = provider.create_host("worker-bbb", "worker")
    w2 = provider.create_host("worker-ccc", "worker")
    assert (cp.address, w1.address, w2.address) == ("192.0.2.10", "192.0.2.11", "192.0.2.12")
    assert (w1.user, w1.key_file, w1.name) == ("debian", "/keys/id", "m-11")
    # a retried create (same claim) gets the same machine, also from a new provider object
    assert ExistingProvider(MACHINES, tmp_path).create_host("worker-bbb", "worker") == w1


def test_the_plan_is_what_create_would_hand_out_and_claims_nothing(tmp_path):
    provider = ExistingProvider(MACHINES, tmp_path)
    provider.create_host("worker-bbb", "worker")
    wanted = [("cp-aaa", "control-plane"), ("worker-ccc", "worker"), ("worker-bbb", "worker")]
    planned = provider.planned_hosts(wanted)
    assert [h.address for h in planned] == ["192.0.2.10", "192.0.2.12", "192.0.2.11"]
    assert [provider.create_host(claim, role) for claim, role in wanted] == planned
    with pytest.raises(ExistingProviderError, match="no free machine with role worker"):
        ExistingProvider(MACHINES, tmp_path / "new").planned_hosts(
            [(f"w{i}", "worker") for i in range(3)]
        )
    assert not (tmp_path / "new").exists()


def test_no_free_machine_is_a_clear_error(tmp_path):
    provider = ExistingProvider(MACHINES, tmp_path)
    provider.create_host("worker-1", "worker")
    provider.create_host("worker-2", "worker")
    with pytest.raises(ExistingProviderError, match="no free machine with role worker"):
        provider.create_host("worker-3", "worker")


def test_destroy_releases_the_machine_and_never_reports_hosts_left(tmp_path):
    provider = ExistingProvider(MACHINES, tmp_path)
    provider.create_host("worker-1", "worker")
    provider.create_host("worker-2", "worker")
    provider.destroy_host("worker-1")
    assert provider.create_host("worker-3", "worker").address == "192.0.2.11"
    assert provider.host_names() == []


def test_host_key_comes_from_inputs_or_known_hosts_never_from_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    unknown = machine("192.0.2.50", "worker", host_key="")
    with pytest.raises(ExistingProviderError, match=r"no SSH host key known for 192\.0\.2\.50"):
        host_key_of(unknown)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "k"], check=True
    )
    line = " ".join((tmp_path / "k.pub").read_text().split()[:2])
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(f"192.0.2.50 {line}\n")
    assert host_key_of(unknown) == line
    assert host_key_of(machine("192.0.2.51", "worker", host_key=line)) == line


def test_volumes_on_existing_machines_use_the_named_device_and_never_erase_it(tmp_path):
    provider = ExistingProvider(MACHINES, tmp_path)
    with pytest.raises(ExistingProviderError, match="give `device`, a block device"):
        provider.create_volume("worker-1", "data", 2**30, device="")
    provider.create_volume("worker-1", "data", 2**30, device="/dev/sdb")
    with provider.volume_device("worker-1", "data") as device:
        assert device == ""  # storage.attach then mounts the recorded device itself
    provider.delete_volume("worker-1", "data")
    assert provider.volume_space() is None
    assert list(tmp_path.iterdir()) == []
