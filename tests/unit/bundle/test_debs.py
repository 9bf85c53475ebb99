"""Unit tests of k8s_bundle.debs: control stanzas and a Packages index over real .deb files."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from k8s_bundle import debs
from k8s_bundle.debs import Deb, build_deb, control_text, packages_index

needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

DESCRIPTION = """\
Built from the upstream source of Kubernetes v1.37.2.

Not the official release binaries:
  the suite's offline bundle builder made them."""


def kubeadm_deb() -> Deb:
    return Deb(
        package="kubeadm",
        version="1.37.2",
        summary="Command-line utility for administering a Kubernetes cluster",
        description=DESCRIPTION,
        files={"usr/bin/kubeadm": (0o755, b"\x7fELF" + b"\0" * 3000)},
        depends="cri-tools (>= 1.37.0), kubernetes-cni (>= 1.10.0)",
        extra={"Conflicts": "kubeadm-official"},
    )


def test_control_fields() -> None:
    control = kubeadm_deb().control()
    assert control["Package"] == "kubeadm"
    assert control["Version"] == "1.37.2-1~src"
    assert control["Architecture"] == "amd64"
    assert control["Depends"] == "cri-tools (>= 1.37.0), kubernetes-cni (>= 1.10.0)"
    assert control["Conflicts"] == "kubeadm-official"
    assert control["Installed-Size"] == "3"  # 3004 bytes, in KiB rounded up
    assert list(control)[:2] == ["Package", "Version"]
    assert list(control)[-1] == "Description"


def test_description_continuation_lines() -> None:
    description = kubeadm_deb().control()["Description"]
    assert description.splitlines() == [
        "Command-line utility for administering a Kubernetes cluster",
        " Built from the upstream source of Kubernetes v1.37.2.",
        " .",
        " Not the official release binaries:",
        "   the suite's offline bundle builder made them.",
    ]


def test_no_depends_field_without_dependencies() -> None:
    deb = Deb("runc", "1.5.2", "runc", "runc built from source.")
    assert "Depends" not in deb.control()
    assert deb.filename == "runc_1.5.2-1~src_amd64.deb"
    assert deb.full_version == "1.5.2-1~src"


def test_control_text_is_one_field_a_line() -> None:
    text = control_text({"Package": "a", "Description": "short\n long"})
    assert text == "Package: a\nDescription: short\n long\n"


def test_revision_sorts_before_the_official_one() -> None:
    assert debs.REVISION == "1~src"
    if shutil.which("dpkg") is None:
        pytest.skip("needs dpkg")
    ours = Deb("kubeadm", "1.37.2", "s", "d").full_version
    assert subprocess.run(["dpkg", "--compare-versions", ours, "lt", "1.37.2-1.1"]).returncode == 0


def parse_stanzas(text: str) -> list[dict[str, str]]:
    stanzas = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith(" "):
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(": ")
                fields[key] = value
        stanzas.append(fields)
    return stanzas


@needs_dpkg_deb
def test_packages_index_over_built_debs(tmp_path: Path) -> None:
    packages = [
        kubeadm_deb(),
        Deb(
            "cri-tools",
            "1.37.0",
            "CLI for CRI runtimes",
            "crictl.",
            files={"usr/bin/crictl": (0o755, b"crictl")},
            conffiles=(),
        ),
    ]
    for deb in packages:
        assert build_deb(deb, tmp_path) == tmp_path / deb.filename
    stanzas = parse_stanzas(packages_index(packages, tmp_path))
    assert [s["Package"] for s in stanzas] == ["cri-tools", "kubeadm"]
    for stanza, deb in zip(stanzas, sorted(packages, key=lambda d: d.package), strict=True):
        data = (tmp_path / deb.filename).read_bytes()
        assert stanza["Filename"] == f"./{deb.filename}"
        assert stanza["Size"] == str(len(data))
        assert stanza["SHA256"] == hashlib.sha256(data).hexdigest()
        assert stanza["SHA512"] == hashlib.sha512(data).hexdigest()
        assert stanza["MD5sum"] == hashlib.md5(data).hexdigest()
        assert stanza["Version"] == deb.full_version
        assert stanza["Description"] == deb.control()["Description"]
        assert list(stanza)[-1] == "Description"
        # What dpkg-deb wrote into the package is the same control stanza.
        fields = subprocess.run(
            ["dpkg-deb", "--field", str(tmp_path / deb.filename), "Package", "Version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert fields == f"Package: {deb.package}\nVersion: {deb.full_version}\n"


@needs_dpkg_deb
def test_built_deb_holds_the_files_with_their_modes(tmp_path: Path) -> None:
    deb = Deb(
        "containerd",
        "2.4.2",
        "container runtime",
        "containerd.",
        files={
            "usr/bin/containerd": (0o755, b"bin"),
            "etc/containerd/config.toml": (0o644, b"version = 3\n"),
        },
        conffiles=("etc/containerd/config.toml",),
        reloads_systemd=True,
    )
    path = build_deb(deb, tmp_path)
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(path)], capture_output=True, text=True, check=True
    ).stdout
    lines = {line.split()[-1]: line.split()[:2] for line in listing.splitlines()}
    assert lines["./usr/bin/containerd"] == ["-rwxr-xr-x", "root/root"]
    assert lines["./etc/containerd/config.toml"] == ["-rw-r--r--", "root/root"]
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "--control", str(path), str(control)], check=True)
    assert (control / "conffiles").read_text() == "/etc/containerd/config.toml\n"
    assert (control / "postinst").read_text() == debs.RELOAD_SYSTEMD
    assert not list(tmp_path.glob(".*partial"))
