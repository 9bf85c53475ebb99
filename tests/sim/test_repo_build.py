"""The kube-sim package repository: packages, index, signatures, idempotent rebuilds."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kube_sim import build_repo
from kube_sim.common import unitfiles

REPO = Path(__file__).resolve().parents[2]
VERSIONS = ["1.36.2", "1.36.1"]

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("dpkg-deb", "gpg", "gpgv", "kubectl")),
    reason="needs dpkg-deb, gpg, gpgv and kubectl",
)


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith(" "):
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(": ")
                fields[key] = value
        out.append(fields)
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repo") / "kube-sim"
    proc = run(
        str(REPO / "kube_sim" / "build-repo"), "--out", str(out), "--versions", ",".join(VERSIONS)
    )
    assert proc.returncode == 0, proc.stderr
    assert "repository ready" in proc.stdout
    return out


def test_layout(repo: Path) -> None:
    for name in ("Packages", "Packages.gz", "Release", "InRelease", "Release.gpg", "Release.key"):
        assert (repo / name).is_file(), name
    assert (repo / "Release.key").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    key_dir = build_repo.default_key_dir(repo)
    assert key_dir.stat().st_mode & 0o777 == 0o700
    assert (key_dir / "secret-key.asc").stat().st_mode & 0o777 == 0o600
    # nothing secret inside the folder that is served
    files = [p for p in repo.rglob("*") if p.is_file()]
    assert not [p for p in files if b"PRIVATE KEY" in p.read_bytes()]
    assert (repo / "manifests/cni.yaml").is_file()
    debs = sorted(p.name for p in repo.glob("*.deb"))
    assert debs == sorted(
        f"{pkg}_{v}-sim_{build_repo.debian_arch()}.deb"
        for pkg in ("kubeadm", "kubelet", "kubectl")
        for v in VERSIONS
    )


def test_signatures_verify_against_release_key(repo: Path, tmp_path: Path) -> None:
    keyring = tmp_path / "keyring.gpg"
    dearmor = run(
        "gpg", "--batch", "--dearmor", "--output", str(keyring), str(repo / "Release.key")
    )
    assert dearmor.returncode == 0, dearmor.stderr
    inrelease = run("gpgv", "--keyring", str(keyring), str(repo / "InRelease"))
    assert inrelease.returncode == 0, inrelease.stderr
    detached = run(
        "gpgv", "--keyring", str(keyring), str(repo / "Release.gpg"), str(repo / "Release")
    )
    assert detached.returncode == 0, detached.stderr
    tampered = tmp_path / "Release"
    tampered.write_text((repo / "Release").read_text().replace("kube-sim", "kube-sin"))
    bad = run("gpgv", "--keyring", str(keyring), str(repo / "Release.gpg"), str(tampered))
    assert bad.returncode != 0


def test_packages_index(repo: Path) -> None:
    text = (repo / "Packages").read_text()
    assert gzip.decompress((repo / "Packages.gz").read_bytes()).decode() == text
    entries = stanzas(text)
    assert sorted((e["Package"], e["Version"]) for e in entries) == sorted(
        (pkg, f"{v}-sim") for pkg in ("kubeadm", "kubelet", "kubectl") for v in VERSIONS
    )
    for entry in entries:
        assert re.fullmatch(r"\d+\.\d+\.\d+-sim", entry["Version"])
        data = (repo / entry["Filename"]).read_bytes()
        assert entry["Size"] == str(len(data))
        assert entry["SHA256"] == hashlib.sha256(data).hexdigest()
        assert "kube-sim" in entry["Maintainer"]
        if entry["Package"] != "kubectl":
            assert "STAND-IN" in entry["Description"]
    kubeadm = next(e for e in entries if e["Package"] == "kubeadm" and e["Version"] == "1.36.2-sim")
    assert kubeadm["Depends"].startswith("kubelet (>= 1.36.2-sim), kubectl")
    kubelet = next(e for e in entries if e["Package"] == "kubelet")
    assert kubelet["Depends"] == "iproute2, openssl, python3"
    release = (repo / "Release").read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert f" {digest} {len(text.encode())} Packages\n" in release
    assert "Date: " in release and "Architectures: " in release


def test_deb_contents(repo: Path, tmp_path: Path) -> None:
    arch = build_repo.debian_arch()
    kubelet = repo / f"kubelet_1.36.2-sim_{arch}.deb"
    listing = run("dpkg-deb", "-c", str(kubelet)).stdout
    for path in (
        "./usr/bin/kubelet",
        "./usr/lib/systemd/system/kubelet.service",
        "./usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
        "./usr/lib/kube-sim/kubelet-lib/kube_sim/kubelet.py",
        "./etc/kubernetes/manifests/",
    ):
        assert path in listing, path
    assert all(" root/root " in line for line in listing.splitlines())
    assert "__pycache__" in listing  # byte-compiled at build time
    info = run("dpkg-deb", "-I", str(kubelet)).stdout
    assert "postinst" in info and "Package: kubelet" in info
    kubeadm = repo / f"kubeadm_1.36.1-sim_{arch}.deb"
    listing = run("dpkg-deb", "-c", str(kubeadm)).stdout
    assert "./usr/bin/kubeadm" in listing
    assert "./usr/lib/kube-sim/kube_sim/kubeadm.py" in listing
    assert "./usr/lib/kube-sim/kube_sim/manifests/cni.yaml" in listing
    assert "./usr/lib/kube-sim/kube_sim/CONTRACT.md" in listing
    if (REPO / "kube_sim" / "apiserver").is_dir():
        assert "./usr/lib/kube-sim/kube_sim/apiserver/" in listing
    fields = run("dpkg-deb", "-f", str(kubeadm), "Version", "Depends").stdout
    assert "Version: 1.36.1-sim" in fields
    assert "Depends: kubelet (>= 1.36.1-sim), kubectl" in fields

    root = tmp_path / "root"
    for deb in (kubeadm, repo / f"kubelet_1.36.1-sim_{arch}.deb"):
        assert run("dpkg-deb", "-x", str(deb), str(root)).returncode == 0
    assert (root / "usr/lib/systemd/system/kubelet.service").read_text() == (
        unitfiles.KUBELET_SERVICE
    )
    assert (root / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text() == (
        unitfiles.KUBEADM_DROPIN
    )
    wrapper = (root / "usr/bin/kubeadm").read_text()
    assert wrapper.startswith("#!/usr/bin/python3") and "STAND-IN" in wrapper
    assert os.access(root / "usr/bin/kubeadm", os.X_OK)
    # The packaged code reports the packaged version.
    env = dict(os.environ, PYTHONPATH=str(root / "usr/lib/kube-sim"))
    out = run(
        sys.executable, "-m", "kube_sim.kubeadm", "version", "-o", "short", env=env, cwd=tmp_path
    )
    assert out.stdout.strip() == "v1.36.1-sim", out.stderr
    env = dict(os.environ, PYTHONPATH=str(root / "usr/lib/kube-sim/kubelet-lib"))
    out = run(sys.executable, "-m", "kube_sim.kubelet", "--version", env=env, cwd=tmp_path)
    assert out.stdout.strip() == "Kubernetes v1.36.1-sim", out.stderr

    kubectl = repo / f"kubectl_1.36.2-sim_{arch}.deb"
    assert run("dpkg-deb", "-x", str(kubectl), str(tmp_path / "kubectl")).returncode == 0
    packaged = (tmp_path / "kubectl/usr/bin/kubectl").read_bytes()
    real = build_repo.find_kubectl(None).read_bytes()
    assert hashlib.sha256(packaged).digest() == hashlib.sha256(real).digest()


def test_rebuild_is_idempotent_and_fast(repo: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in repo.iterdir() if p.is_file()}
    release = (repo / "Release").read_bytes()
    started = time.monotonic()
    proc = run(
        sys.executable,
        "-m",
        "kube_sim.build_repo",
        "--out",
        str(repo),
        "--versions",
        ",".join(VERSIONS),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 20
    assert "built " not in proc.stdout and "signed Release" not in proc.stdout
    assert (repo / "Release").read_bytes() == release
    after = {p.name: p.stat().st_mtime_ns for p in repo.iterdir() if p.is_file()}
    assert before == after


def test_version_set_changes_and_key_is_kept(repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    shutil.copytree(build_repo.default_key_dir(repo), build_repo.default_key_dir(copy))
    key = (copy / "Release.key").read_text()
    proc = run(
        sys.executable,
        "-m",
        "kube_sim.build_repo",
        "--out",
        str(copy),
        "--versions",
        "1.36.2",
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "removed kubeadm_1.36.1-sim" in proc.stdout and "signed Release" in proc.stdout
    versions = {e["Version"] for e in stanzas((copy / "Packages").read_text())}
    assert versions == {"1.36.2-sim"}
    assert (copy / "Release.key").read_text() == key
    assert not list(copy.glob("*1.36.1-sim*.deb"))


def test_apt_accepts_the_repository(repo: Path, tmp_path: Path) -> None:
    if not shutil.which("apt-get"):
        pytest.skip("apt-get not available")
    state = tmp_path / "state"
    for sub in (
        "lists/partial",
        "../cache/archives/partial",
        "../etc/apt.conf.d",
        "../etc/preferences.d",
        "../etc/sources.list.d",
        "../etc/trusted.gpg.d",
    ):
        (state / sub).mkdir(parents=True, exist_ok=True)
    etc = tmp_path / "etc"
    keyring = etc / "kubernetes-apt-keyring.asc"
    shutil.copy(repo / "Release.key", keyring)
    (etc / "sources.list").write_text(f"deb [signed-by={keyring}] file://{repo} /\n")
    opts = [
        "-o",
        f"Dir::State={state}",
        "-o",
        "Dir::State::status=/var/lib/dpkg/status",
        "-o",
        f"Dir::Cache={tmp_path / 'cache'}",
        "-o",
        f"Dir::Etc={etc}",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        f"APT::Architecture={build_repo.debian_arch()}",
    ]
    update = run("apt-get", *opts, "update")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "NO_PUBKEY" not in update.stderr and "not signed" not in update.stderr
    policy = run("apt-cache", *opts, "policy", "kubeadm")
    assert "Candidate: 1.36.2-sim" in policy.stdout
    assert "1.36.1-sim" in policy.stdout
    sim = run(
        "apt-get",
        *opts,
        "install",
        "-s",
        "-y",
        "kubelet=1.36.*",
        "kubeadm=1.36.*",
        "kubectl=1.36.*",
    )
    if sim.returncode == 0:  # depends on python3/openssl/iproute2 being installed here
        assert "Inst kubeadm (1.36.2-sim" in sim.stdout


def test_wrapper_script_is_shellcheck_clean() -> None:
    script = REPO / "kube_sim" / "build-repo"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    if shutil.which("shellcheck"):
        proc = run("shellcheck", str(script))
        assert proc.returncode == 0, proc.stdout


def test_invalid_versions_are_refused(tmp_path: Path) -> None:
    proc = run(
        sys.executable,
        "-m",
        "kube_sim.build_repo",
        "--out",
        str(tmp_path / "r"),
        "--versions",
        "1.36",
        cwd=REPO,
    )
    assert proc.returncode == 2 and "invalid version" in proc.stderr
