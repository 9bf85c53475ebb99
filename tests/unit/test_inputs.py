"""Unit tests of input validation: k8s_cluster.inputs.validate and its error messages."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from k8s_cluster.inputs import (
    DEFAULTS,
    FLANNEL_MANIFEST,
    ClusterSpec,
    ContainerRuntime,
    InputError,
    LocalSettings,
    Machine,
    validate,
)
from tests.unit.image_archives import KUBEADM_1_37_2, write_bundle, write_image

SECRET = "c2VjcmV0IGtleSBtYXRlcmlhbA"  # stands for key material that must never be shown


def openssh_key(cipher: bytes = b"none") -> str:
    """A private key in OpenSSH format, as far as validation reads it."""
    blob = b"openssh-key-v1\0" + len(cipher).to_bytes(4, "big") + cipher + b"\0\0\0\4none"
    body = base64.b64encode(blob).decode() + SECRET
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


def write_key(path: Path, text: str | None = None, mode: int = 0o600) -> str:
    path.write_text(openssh_key() if text is None else text)
    path.chmod(mode)
    return str(path)


@pytest.fixture
def key(tmp_path: Path) -> str:
    return write_key(tmp_path / "id_cluster")


def problems_of(raw: dict, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(InputError) as caught:
        validate(raw, base_dir)
    return caught.value.problems


def the_problem(raw: dict, base_dir: Path | None = None) -> str:
    found = problems_of(raw, base_dir)
    assert len(found) == 1, found
    return found[0]


def assert_problem(line: str, start: str, accepted: str) -> None:
    """The line names the input and the value first, then what would be accepted."""
    assert line.startswith(start), line
    assert "; expected " in line, line
    assert accepted in line.split("; expected ", 1)[1], line


# --- Defaults ------------------------------------------------------------------------------------


def test_defaults_are_valid() -> None:
    assert validate({}) == ClusterSpec(
        provider="local",
        control_plane_count=1,
        worker_count=2,
        kubernetes_version="1.37",
        kubernetes_minor="1.37",
        package_version_pattern="1.37.*",
        package_repository="https://pkgs.k8s.io/core:/stable:/v1.37/deb/",
        repository_is_local=False,
        pod_cidr="10.244.0.0/16",
        service_cidr="10.96.0.0/12",
        cni_manifest=FLANNEL_MANIFEST,
        cni_manifest_is_local=False,
        image_bundle=None,
        ssh_user="root",
        ssh_private_key_file="",
        local=LocalSettings("10.77.0.0/24", "bookworm", "http://deb.debian.org/debian"),
        existing_machines=(),
        container_runtime=ContainerRuntime(
            source="auto",
            containerd_version="2.4.2",
            containerd_url="https://github.com/containerd/containerd/releases/download/"
            "v{version}/containerd-{version}-linux-{arch}.tar.gz",
            runc_version="1.5.2",
            runc_url="https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}",
        ),
    )


def test_container_runtime_release_settings_are_checked_all_at_once() -> None:
    found = problems_of(
        {
            "container_runtime": {
                "source": "docker",
                "containerd_version": "1.7.24",
                "containerd_url": "ftp://mirror/containerd.tgz",
                "runc_url": "https://mirror/{release}/runc",
                "extra": 1,
            }
        }
    )
    assert found[0] == (
        "container_runtime: unknown key 'extra'; expected only 'source', 'containerd_version', "
        "'containerd_url', 'runc_version', 'runc_url'"
    )
    assert_problem(found[1], "container_runtime.source: 'docker'", "'auto', 'packages', 'release'")
    assert_problem(found[2], "container_runtime.containerd_version: '1.7.24' is too old", "X >= 2")
    assert_problem(found[3], "container_runtime.containerd_url: 'ftp://", "http(s) URL")
    assert_problem(
        found[4], "container_runtime.runc_url: 'https://mirror/{release}/runc'", "{arch}"
    )
    assert len(found) == 5


def test_container_runtime_takes_defaults_for_what_it_does_not_name() -> None:
    runtime = validate({"container_runtime": {"source": "release"}}).container_runtime
    assert runtime.source == "release" and runtime.containerd_version == "2.4.2"
    assert the_problem({"container_runtime": "release"}).startswith(
        "container_runtime: 'release' is not a mapping"
    )


def test_default_cni_manifest_is_a_pinned_flannel_release() -> None:
    assert FLANNEL_MANIFEST == (
        "https://github.com/flannel-io/flannel/releases/download/v0.28.10/kube-flannel.yml"
    )
    assert "latest" not in FLANNEL_MANIFEST


def test_explicit_defaults_are_valid_and_unknown_inputs_ignored() -> None:
    assert validate({**DEFAULTS, "some_other_input": object()}) == validate({})


def test_partial_local_settings_take_the_other_defaults() -> None:
    spec = validate({"local_settings": {"distribution": "trixie"}})
    assert spec.local == LocalSettings("10.77.0.0/24", "trixie", "http://deb.debian.org/debian")


# --- One bad input at a time ---------------------------------------------------------------------

BAD_INPUTS = [
    # (inputs, the problem line's start: "<input>: <value>", part of the accepted form)
    ({"infrastructure_provider": "aws"}, "infrastructure_provider: 'aws'", "'local', 'existing'"),
    (
        {"control_plane_count": 3},
        "control_plane_count: 3 is not supported yet: highly available control planes",
        "1 (one control plane)",
    ),
    ({"control_plane_count": 0}, "control_plane_count: 0 is not a positive count", "1 (one"),
    ({"control_plane_count": -1}, "control_plane_count: -1", "1 (one control plane)"),
    ({"control_plane_count": "1"}, "control_plane_count: '1' is not an integer", "1 (one"),
    ({"worker_count": -1}, "worker_count: -1 is negative", "an integer from 0 to 100"),
    ({"worker_count": True}, "worker_count: True is not an integer", "an integer from 0 to 100"),
    ({"worker_count": 2.0}, "worker_count: 2.0 is not an integer", "an integer from 0 to 100"),
    (
        {"worker_count": 101},
        "worker_count: 101 is more than one deployment takes",
        "an integer from 0 to 100",
    ),
    ({"kubernetes_version": "1.29"}, "kubernetes_version: '1.29' is out of support", "Y >= 30"),
    ({"kubernetes_version": "2.1"}, "kubernetes_version: '2.1' has major version 2", "'1.Y'"),
    ({"kubernetes_version": "1.36.x"}, "kubernetes_version: '1.36.x'", "'1.Y' or '1.Y.Z'"),
    ({"kubernetes_version": "1.36.2.1"}, "kubernetes_version: '1.36.2.1'", "'1.Y.Z'"),
    ({"kubernetes_version": 1.3}, "kubernetes_version: 1.3 is a number", "a quoted string"),
    ({"package_repository": "ftp://m/k8s"}, "package_repository: 'ftp://m/k8s'", "http(s) URL"),
    ({"package_repository": "https://"}, "package_repository: 'https://'", "http(s) URL"),
    ({"package_repository": "repo/k8s"}, "package_repository: 'repo/k8s'", "absolute path"),
    ({"package_repository": "/no/such/repo"}, "package_repository: '/no/such/repo'", "Release"),
    (
        {"pod_cidr": "10.244.1.0/16"},
        "pod_cidr: '10.244.1.0/16' has host bits set",
        "did you mean '10.244.0.0/16'?",
    ),
    (
        {"pod_cidr": "10.244.0.0/25"},
        "pod_cidr: '10.244.0.0/25' has a /25 prefix",
        "between /8 and /24",
    ),
    ({"pod_cidr": "10.0.0.0/7"}, "pod_cidr: '10.0.0.0/7'", "between /8 and /24"),
    ({"pod_cidr": "fd00::/64"}, "pod_cidr: 'fd00::/64' is an IPv6 network", "an IPv4 network"),
    ({"pod_cidr": "10.244.0.0"}, "pod_cidr: '10.244.0.0' is not a network", "CIDR notation"),
    ({"pod_cidr": "127.0.0.0/16"}, "pod_cidr: '127.0.0.0/16' overlaps the loopback", "IPv4"),
    (
        {"service_cidr": "10.0.0.0/8"},
        "service_cidr: '10.0.0.0/8' has a /8 prefix",
        "between /12 and /26",
    ),
    ({"service_cidr": "10.96.0.0/27"}, "service_cidr: '10.96.0.0/27'", "between /12 and /26"),
    (
        {"service_cidr": "10.96.0.1/12"},
        "service_cidr: '10.96.0.1/12' has host bits",
        "'10.96.0.0/12'",
    ),
    (
        {"pod_cidr": "10.96.0.0/16"},
        "pod_cidr: '10.96.0.0/16' overlaps service_cidr",
        "separate ranges",
    ),
    (
        {"pod_cidr": "10.77.0.0/16"},
        "pod_cidr: '10.77.0.0/16' overlaps local_settings.subnet",
        "separate ranges",
    ),
    (
        {"pod_cidr": "10.244.0.0/24"},
        "pod_cidr: '10.244.0.0/24' has room for 1 node range",
        "a /22 or larger",
    ),
    (
        {"cni_manifest": "ftp://x/c.yml"},
        "cni_manifest: 'ftp://x/c.yml'",
        "an http(s) URL or a readable local file",
    ),
    (
        {"cni_manifest": "/no/such/cni.yml"},
        "cni_manifest: '/no/such/cni.yml' is not a file",
        "readable local file",
    ),
    ({"cni_manifest": "cni.yml"}, "cni_manifest: 'cni.yml' is a relative path", "http(s) URL"),
    ({"ssh_user": "-root"}, "ssh_user: '-root' is not a valid user name", "a POSIX user name"),
    ({"ssh_user": "9lives"}, "ssh_user: '9lives'", "not starting with a digit"),
    ({"ssh_user": "u" * 33}, f"ssh_user: {'u' * 33!r}", "at most 32 characters"),
    ({"ssh_user": "bad user"}, "ssh_user: 'bad user'", "a POSIX user name"),
    (
        {"ssh_private_key_file": "/no/such/key"},
        "ssh_private_key_file: '/no/such/key' does not exist",
        "SSH private key file",
    ),
    (
        {"local_settings": {"subnet": "10.77.0.0/29"}},
        "local_settings.subnet: '10.77.0.0/29' has a /29 prefix",
        "between /16 and /28",
    ),
    (
        {"local_settings": {"subnet": "10.76.0.0/15"}},
        "local_settings.subnet: '10.76.0.0/15'",
        "between /16 and /28",
    ),
    (
        {"local_settings": {"boot_timeout": 5}},
        "local_settings.boot_timeout: 5 is not a number of seconds in range",
        "an integer from 10 to 1800",
    ),
    (
        {"local_settings": {"subnet": "10.77.0.1/24"}},
        "local_settings.subnet: '10.77.0.1/24' has host bits",
        "'10.77.0.0/24'",
    ),
    (
        {"local_settings": {"subnet": "10.77.0.0/28"}, "worker_count": 5},
        "local_settings.subnet: '10.77.0.0/28' has 13 addresses",
        "room for 6 machines plus 8 spare",
    ),
    (
        {"local_settings": {"distribution": "buster"}},
        "local_settings.distribution: 'buster'",
        "'bookworm', 'trixie'",
    ),
    (
        {"local_settings": {"debian_mirror": "deb.debian.org"}},
        "local_settings.debian_mirror: 'deb.debian.org'",
        "http(s) URL",
    ),
    (
        {"local_settings": "10.77.0.0/24"},
        "local_settings: '10.77.0.0/24' is not a mapping",
        "'subnet', 'distribution', 'debian_mirror'",
    ),
    (
        {"existing_machines": [{"address": "10.0.0.5", "role": "worker"}]},
        (
            "existing_machines: [{'address': '10.0.0.5', 'role': 'worker'}] is only used with "
            "infrastructure_provider: 'existing'"
        ),
        "[] with infrastructure_provider 'local'",
    ),
    ({"existing_machines": "10.0.0.5"}, "existing_machines: '10.0.0.5' is not a list", "a list of"),
    (
        {"infrastructure_provider": "existing"},
        "existing_machines: [] is empty",
        "the machines to adopt",
    ),
]


@pytest.mark.parametrize(("raw", "start", "accepted"), BAD_INPUTS)
def test_bad_input_is_reported_with_its_value_and_the_accepted_form(
    raw: dict, start: str, accepted: str
) -> None:
    assert_problem(the_problem(raw), start, accepted)


def test_unknown_local_setting_names_the_key_and_the_accepted_keys() -> None:
    line = the_problem({"local_settings": {"bridge": "lxcbr0"}})
    assert line == (
        "local_settings: unknown key 'bridge'; "
        "expected only 'subnet', 'distribution', 'debian_mirror', 'boot_timeout'"
    )


def test_several_bad_inputs_are_all_reported_in_input_order() -> None:
    raw = {
        "infrastructure_provider": "cloud",
        "worker_count": -2,
        "kubernetes_version": "1.20",
        "service_cidr": "10.96.0.0/33",
        "ssh_user": "",
    }
    with pytest.raises(InputError) as caught:
        validate(raw)
    found = caught.value.problems
    assert [line.split(":", 1)[0] for line in found] == [
        "infrastructure_provider",
        "worker_count",
        "kubernetes_version",
        "service_cidr",
        "ssh_user",
    ]
    assert str(caught.value) == "5 invalid inputs:\n" + "\n".join(f"  - {line}" for line in found)


def test_one_problem_is_reported_in_the_singular() -> None:
    with pytest.raises(InputError) as caught:
        validate({"worker_count": -1})
    assert str(caught.value).startswith("1 invalid input:\n  - worker_count: -1 ")


# --- Normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "version", "minor", "pattern"),
    [
        ("v1.36.2", "1.36.2", "1.36", "1.36.2-*"),
        ("1.36.2", "1.36.2", "1.36", "1.36.2-*"),
        ("v1.31", "1.31", "1.31", "1.31.*"),
        ("1.30", "1.30", "1.30", "1.30.*"),
    ],
)
def test_version_is_normalised_into_an_apt_pin(
    given: str, version: str, minor: str, pattern: str
) -> None:
    spec = validate({"kubernetes_version": given})
    assert (spec.kubernetes_version, spec.kubernetes_minor) == (version, minor)
    assert spec.package_version_pattern == pattern
    assert spec.package_repository == f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/"


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://mirror.example.com/k8s", "https://mirror.example.com/k8s/"),
        ("https://mirror.example.com/k8s/", "https://mirror.example.com/k8s/"),
        ("http://10.0.0.2:8080/repo", "http://10.0.0.2:8080/repo/"),
    ],
)
def test_repository_url_gets_a_trailing_slash(given: str, normalised: str) -> None:
    spec = validate({"package_repository": given})
    assert (spec.package_repository, spec.repository_is_local) == (normalised, False)


def test_debian_mirror_loses_its_trailing_slash() -> None:
    spec = validate({"local_settings": {"debian_mirror": "https://mirror.example.com/debian/"}})
    assert spec.local.debian_mirror == "https://mirror.example.com/debian"


# --- Local package repository --------------------------------------------------------------------


@pytest.mark.parametrize("release_file", ["Release", "InRelease"])
def test_local_repository_with_a_release_file_is_accepted(
    tmp_path: Path, release_file: str
) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / release_file).write_text("Origin: mirror\n")
    spec = validate({"package_repository": f"{tmp_path}/repo/./"})
    assert (spec.package_repository, spec.repository_is_local) == (str(tmp_path / "repo"), True)


def test_local_repository_without_a_release_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Packages").write_text("")
    line = the_problem({"package_repository": str(tmp_path)})
    assert_problem(line, f"package_repository: {str(tmp_path)!r} holds no Release", "InRelease")


# --- CNI manifest --------------------------------------------------------------------------------


def test_cni_manifest_relative_to_the_blueprint_folder(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "cni.yaml").write_text("kind: Namespace\n")
    spec = validate({"cni_manifest": "manifests/cni.yaml"}, base_dir=tmp_path)
    assert spec.cni_manifest == str(tmp_path / "manifests" / "cni.yaml")
    assert spec.cni_manifest_is_local is True


def test_cni_manifest_missing_in_the_blueprint_folder_names_where_it_looked(
    tmp_path: Path,
) -> None:
    line = the_problem({"cni_manifest": "cni.yaml"}, base_dir=tmp_path)
    assert_problem(line, "cni_manifest: 'cni.yaml' is not a file", "readable local file")
    assert str(tmp_path / "cni.yaml") in line


# --- SSH private keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_readable_by_its_owner_only_is_accepted(tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path / "id", mode=mode)
    assert validate({"ssh_private_key_file": path}).ssh_private_key_file == path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_readable_by_others_is_refused_like_ssh_does(tmp_path: Path, mode: int) -> None:
    path = write_key(tmp_path / "id", mode=mode)
    line = the_problem({"ssh_private_key_file": path})
    assert line == (
        f"ssh_private_key_file: {path!r} is refused by ssh: permissions {mode:04o} are too open; "
        f"expected a key only its owner can read: chmod 600 {path}"
    )
    assert SECRET not in line


def test_private_key_relative_to_the_blueprint_folder(tmp_path: Path) -> None:
    write_key(tmp_path / "id")
    spec = validate({"ssh_private_key_file": "id"}, base_dir=tmp_path)
    assert spec.ssh_private_key_file == str(tmp_path / "id")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            f"ssh-ed25519 AAAAC3Nza{SECRET} me@host\n",
            "is not a private key (it looks like a public key)",
        ),
        (f"{SECRET}\n", "is not a private key"),
        (f"-----BEGIN CERTIFICATE-----\n{SECRET}\n", "is not a private key"),
        (openssh_key(cipher=b"aes256-ctr"), "is protected by a passphrase"),
        (f"-----BEGIN ENCRYPTED PRIVATE KEY-----\n{SECRET}\n", "is protected by a passphrase"),
        (
            f"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n{SECRET}\n",
            "is protected by a passphrase",
        ),
    ],
)
def test_file_that_is_no_usable_private_key_is_refused_without_showing_it(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = write_key(tmp_path / "id", text=content)
    line = the_problem({"ssh_private_key_file": path})
    assert_problem(line, f"ssh_private_key_file: {path!r} {problem}", "private key")
    assert SECRET not in line


def test_key_content_given_instead_of_a_path_is_never_shown() -> None:
    line = the_problem({"ssh_private_key_file": openssh_key()})
    assert_problem(line, "ssh_private_key_file: <hidden", "the path of")
    assert SECRET not in line and "BEGIN" not in line


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
@pytest.mark.parametrize(
    ("options", "usable"),
    [
        (["-t", "ed25519", "-N", ""], True),
        (["-t", "ecdsa", "-m", "PEM", "-N", ""], True),
        (["-t", "ed25519", "-N", "passphrase"], False),
        (["-t", "ecdsa", "-m", "PEM", "-N", "passphrase"], False),
    ],
)
def test_keys_made_by_ssh_keygen(tmp_path: Path, options: list[str], usable: bool) -> None:
    path = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", *options, "-f", str(path)], check=True)
    raw = {"ssh_private_key_file": str(path)}
    if usable:
        assert validate(raw).ssh_private_key_file == str(path)
    else:
        assert "is protected by a passphrase" in the_problem(raw)


# --- Existing machines ---------------------------------------------------------------------------


def existing(*machines: dict, **inputs: object) -> dict:
    return {"infrastructure_provider": "existing", "existing_machines": list(machines), **inputs}


CP = {"address": "192.168.1.10", "role": "control-plane"}
W1 = {"address": "192.168.1.11", "role": "worker"}
W2 = {"address": "node2.example.com", "role": "worker"}


def test_valid_existing_machines_get_their_defaults(tmp_path: Path, key: str) -> None:
    own_key = write_key(tmp_path / "id_w2")
    host_key = "ssh-ed25519 " + base64.b64encode(b"\0\0\0\x0bssh-ed25519" + b"\1" * 36).decode()
    spec = validate(
        existing(
            {**CP, "host_key": host_key + " root@cp"},
            {**W1, "name": "worker-a", "port": 2222},
            {**W2, "address": "Node2.Example.com", "user": "debian", "private_key_file": own_key},
            ssh_user="admin",
            ssh_private_key_file=key,
        )
    )
    assert spec.provider == "existing"
    assert spec.existing_machines == (
        Machine("192.168.1.10", "control-plane", "admin", key, "ip-192-168-1-10", 22, host_key),
        Machine("192.168.1.11", "worker", "admin", key, "worker-a", 2222, ""),
        Machine("node2.example.com", "worker", "debian", own_key, "node2", 22, ""),
    )


def test_existing_machines_may_each_bring_their_own_key(tmp_path: Path) -> None:
    machines = [
        {**m, "private_key_file": write_key(tmp_path / str(i))} for i, m in enumerate([CP, W1, W2])
    ]
    spec = validate(existing(*machines))
    assert [m.private_key_file for m in spec.existing_machines] == [
        str(tmp_path / "0"),
        str(tmp_path / "1"),
        str(tmp_path / "2"),
    ]


BAD_MACHINES = [
    # (machines, the problem line's start, part of the accepted form)
    (
        [{**CP, "role": "master"}, W1, W2],
        "existing_machines[0].role: 'master' is not a role",
        "'control-plane', 'worker'",
    ),
    (
        [CP, {"address": "192.168.1.11"}, W2],
        "existing_machines[1].role: is missing",
        "'control-plane', 'worker'",
    ),
    (
        [CP, W1, {**W2, "address": "10.0.0.300"}],
        "existing_machines[2].address: '10.0.0.300'",
        "an IPv4 address or a DNS host name",
    ),
    (
        [CP, W1, {**W2, "address": "fe80::1"}],
        "existing_machines[2].address: 'fe80::1' is an IPv6 address",
        "IPv4 address",
    ),
    (
        [CP, W1, {**W2, "address": "127.0.0.1"}],
        "existing_machines[2].address: '127.0.0.1' is in the loopback",
        "IPv4 address",
    ),
    (
        [CP, W1, {**W2, "address": "bad_host"}],
        "existing_machines[2].address: 'bad_host'",
        "DNS host name",
    ),
    (
        [CP, W1, {**W2, "address": "192.168.1.11"}],
        "existing_machines[2].address: '192.168.1.11' is also used by existing_machines[1]",
        "a different address",
    ),
    (
        [CP, W1, {**W2, "name": "ip-192-168-1-11"}],
        "existing_machines[2].name: 'ip-192-168-1-11' is also used by existing_machines[1]",
        "set name:",
    ),
    (
        [CP, W1, {**W2, "name": "Node_2"}],
        "existing_machines[2].name: 'Node_2' is not a DNS label",
        "lower-case letters",
    ),
    ([CP, {**W1, "port": 0}, W2], "existing_machines[1].port: 0 is not a TCP port", "1 to 65535"),
    ([CP, {**W1, "port": "22"}, W2], "existing_machines[1].port: '22'", "1 to 65535"),
    ([CP, {**W1, "user": "-x"}, W2], "existing_machines[1].user: '-x'", "a POSIX user name"),
    (
        [CP, {**W1, "host_key": "ssh-ed25519 bm9wZQ=="}, W2],
        "existing_machines[1].host_key: 'ssh-ed25519 bm9wZQ==' does not hold an ssh-ed25519 key",
        "public host key",
    ),
    (
        [CP, {**W1, "host_key": "AAAA"}, W2],
        "existing_machines[1].host_key: 'AAAA'",
        "'ssh-ed25519 AAAA...'",
    ),
    (
        [CP, {**W1, "private_key_file": "/no/such/key"}, W2],
        "existing_machines[1].private_key_file: '/no/such/key' does not exist",
        "private key",
    ),
    (
        [CP, W1, "192.168.1.12"],
        "existing_machines[2]: '192.168.1.12' is not a mapping",
        "{address, role, ...}",
    ),
    (
        [CP, W1],
        "existing_machines: 1 control-plane and 1 worker machines are listed",
        "1 control-plane and at least 2 worker machines",
    ),
    (
        [CP, W1, {**W2, "role": "control-plane"}],
        "existing_machines: 2 control-plane and 1 worker",
        "1 control-plane and at least 2 worker",
    ),
]


def test_workers_listed_beyond_worker_count_are_spares_for_scale_out(key: str) -> None:
    spare = {**W2, "address": "192.168.1.13", "name": "w3"}
    spec = validate(existing(CP, W1, W2, spare, ssh_private_key_file=key))
    assert [m.name for m in spec.existing_machines][-1] == "w3" and spec.worker_count == 2


@pytest.mark.parametrize(("machines", "start", "accepted"), BAD_MACHINES)
def test_bad_existing_machine_is_reported_with_its_path(
    key: str, machines: list, start: str, accepted: str
) -> None:
    assert_problem(the_problem(existing(*machines, ssh_private_key_file=key)), start, accepted)


def test_unknown_machine_key_is_named_but_its_value_never_shown(key: str) -> None:
    machines = [CP, {**W1, "private_key": openssh_key()}, W2]
    line = the_problem(existing(*machines, ssh_private_key_file=key))
    assert line.startswith("existing_machines[1]: unknown key 'private_key'; expected only ")
    assert "'private_key_file'" in line
    assert SECRET not in line


def test_machine_without_any_key_is_reported(key: str) -> None:
    machines = [{**CP, "private_key_file": key}, W1, {**W2, "private_key_file": key}]
    line = the_problem(existing(*machines))
    assert_problem(
        line, "existing_machines[1].private_key_file: is missing;", "ssh_private_key_file"
    )


def test_cluster_networks_must_not_hold_a_machine_address(key: str) -> None:
    machines = [CP, {**W1, "address": "10.244.3.7"}, W2]
    line = the_problem(existing(*machines, ssh_private_key_file=key))
    assert_problem(
        line,
        "pod_cidr: '10.244.0.0/16' contains 10.244.3.7, the address of existing_machines[1]",
        "none of the machines' addresses",
    )


def test_existing_provider_does_not_check_the_local_subnet(key: str) -> None:
    raw = existing(CP, W1, W2, ssh_private_key_file=key, pod_cidr="10.77.0.0/16")
    assert validate(raw).pod_cidr == "10.77.0.0/16"


def test_min_workers_above_worker_count_is_refused() -> None:
    line = the_problem({"min_workers": 3, "worker_count": 2})
    assert line == "min_workers: 3 is above worker_count (2); expected at most worker_count"


# --- Image bundle --------------------------------------------------------------------------------

BUNDLE_ACCEPTED = (
    "'' (pull from the registries), a folder of image archives (*.tar), or an http(s) URL of "
    "one that has an images.json"
)


def test_no_image_bundle_by_default() -> None:
    assert validate({}).image_bundle is None
    assert validate({"image_bundle": ""}).image_bundle is None


def test_image_bundle_with_every_kubeadm_image_is_accepted(tmp_path: Path) -> None:
    folder = write_bundle(tmp_path / "images")
    spec = validate({"image_bundle": str(folder), "kubernetes_version": "1.37.2"})
    assert spec.image_bundle is not None
    assert spec.image_bundle.source == str(folder)
    assert spec.image_bundle.is_local is True
    assert spec.image_bundle.names() == sorted(KUBEADM_1_37_2)
    assert spec.kubernetes_version == "1.37.2"


def test_image_bundle_relative_to_the_blueprint_folder(tmp_path: Path) -> None:
    write_bundle(tmp_path / "bundle" / "images")
    spec = validate(
        {"image_bundle": "bundle/images", "kubernetes_version": "1.37"}, base_dir=tmp_path
    )
    assert spec.image_bundle.source == str(tmp_path / "bundle" / "images")


def test_missing_image_bundle_folder_is_refused(tmp_path: Path) -> None:
    value = str(tmp_path / "nowhere")
    line = the_problem({"image_bundle": value, "kubernetes_version": "1.37.2"})
    assert_problem(
        line,
        f"image_bundle: {value!r} cannot be used: {value} is not a folder",
        "a folder of image archives (*.tar)",
    )
    assert line.endswith("; expected " + BUNDLE_ACCEPTED)


def test_image_bundle_with_a_file_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    (tmp_path / "x.tar").write_text("hello\n")
    line = the_problem({"image_bundle": str(tmp_path), "kubernetes_version": "1.37.2"})
    assert_problem(
        line,
        f"image_bundle: {str(tmp_path)!r} cannot be used: {tmp_path / 'x.tar'} is not an image "
        "archive",
        "a folder of image archives (*.tar)",
    )
    assert line.endswith("; expected " + BUNDLE_ACCEPTED)


def test_image_bundle_without_kubeadm_images_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path, "registry.k8s.io/pause:3.10.2")
    write_image(tmp_path, "registry.k8s.io/kube-proxy:v1.37.2")
    line = the_problem({"image_bundle": str(tmp_path), "kubernetes_version": "1.37.2"})
    assert line == (
        f"image_bundle: {str(tmp_path)!r} lacks images kubeadm runs: kube-apiserver, "
        "kube-controller-manager, kube-scheduler, etcd, coredns (it has: "
        "registry.k8s.io/kube-proxy:v1.37.2, registry.k8s.io/pause:3.10.2); "
        "expected a bundle with kubeadm's images for Kubernetes 1.37.2"
    )


def test_image_bundle_of_another_kubernetes_version_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path)  # of 1.37.2
    line = the_problem({"image_bundle": str(tmp_path), "kubernetes_version": "1.36"})
    assert_problem(
        line,
        f"image_bundle: {str(tmp_path)!r} lacks images kubeadm runs: kube-apiserver, "
        "kube-controller-manager, kube-scheduler, kube-proxy (it has: ",
        "a bundle with kubeadm's images for Kubernetes 1.36",
    )


def test_image_bundle_is_not_checked_against_an_invalid_version(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    found = problems_of({"image_bundle": str(tmp_path), "kubernetes_version": "1.20"})
    assert [line.split(":", 1)[0] for line in found] == ["kubernetes_version"]


@pytest.mark.parametrize(
    ("value", "start"),
    [
        (5, "image_bundle: 5 is neither a folder nor a URL"),
        ("ftp://mirror/images", "image_bundle: 'ftp://mirror/images' is not an http(s) URL"),
        ("images", "image_bundle: 'images' is a relative path"),
    ],
)
def test_image_bundle_that_is_no_folder_or_url_is_refused(value: object, start: str) -> None:
    assert_problem(the_problem({"image_bundle": value}), start, "a folder of image archives")


def test_unreachable_image_bundle_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/images"
    line = the_problem({"image_bundle": url})
    assert_problem(
        line,
        f"image_bundle: {url!r} cannot be used: {url}/images.json could not be read (",
        "an http(s) URL of one that has an images.json",
    )
