"""Debian packages and a signed flat repository of the same shape as pkgs.k8s.io.

The repository is read with `deb [signed-by=KEYRING] URL /`: Packages, Packages.gz, Release,
InRelease, Release.gpg and Release.key beside the .deb files. The signing key is generated once
and kept, armored and 0600, outside the folder that is served.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

MAINTAINER = "k8s-cluster offline bundle builder <bundle@k8s-cluster.invalid>"
KEY_UID = "k8s-cluster offline bundle (built from upstream source) <bundle@k8s-cluster.invalid>"
HASHES = (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512"))
# Upstream source built here, not the official packages: the revision says so, and sorts before
# the official "-1.1", so a host that can reach both prefers the official build.
REVISION = "1~src"

RELOAD_SYSTEMD = """\
#!/bin/sh
# Reload systemd when it runs (not in a chroot or an image build).
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
"""


class RepositoryError(RuntimeError):
    pass


@dataclass
class Deb:
    package: str
    version: str  # upstream version, e.g. "1.37.2"
    summary: str
    description: str
    files: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> (mode, data)
    depends: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # Conflicts, Replaces, Provides...
    conffiles: tuple[str, ...] = ()
    reloads_systemd: bool = False
    arch: str = "amd64"

    @property
    def full_version(self) -> str:
        return f"{self.version}-{REVISION}"

    @property
    def filename(self) -> str:
        return f"{self.package}_{self.full_version}_{self.arch}.deb"

    def control(self) -> dict[str, str]:
        installed_kb = sum((len(data) + 1023) // 1024 for _mode, data in self.files.values())
        control = {
            "Package": self.package,
            "Version": self.full_version,
            "Architecture": self.arch,
            "Maintainer": MAINTAINER,
            "Installed-Size": str(installed_kb),
        }
        if self.depends:
            control["Depends"] = self.depends
        control.update(self.extra)
        control["Section"] = "admin"
        control["Priority"] = "optional"
        body = "\n".join(f" {line}" if line else " ." for line in self.description.splitlines())
        control["Description"] = f"{self.summary}\n{body}"
        return control


def control_text(control: dict[str, str]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in control.items())


def build_deb(deb: Deb, out: Path) -> Path:
    """Build out/<deb.filename> with dpkg-deb (zstd), replacing any earlier build."""
    with tempfile.TemporaryDirectory(prefix="k8s-bundle-deb-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        for relative, (mode, data) in deb.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.chmod(path, mode)
        for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            os.chmod(directory, 0o755)
        meta = root / "DEBIAN"
        meta.mkdir()
        (meta / "control").write_text(control_text(deb.control()))
        if deb.conffiles:
            (meta / "conffiles").write_text("".join(f"/{path}\n" for path in deb.conffiles))
        if deb.reloads_systemd:
            for script in ("postinst", "postrm"):
                (meta / script).write_text(RELOAD_SYSTEMD)
                os.chmod(meta / script, 0o755)
        partial = out / f".{deb.filename}.partial"
        _run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(root), str(partial)])
        target = out / deb.filename
        os.replace(partial, target)
    return target


def packages_index(debs: list[Deb], out: Path) -> str:
    stanzas = []
    for deb in sorted(debs, key=lambda d: d.package):
        data = (out / deb.filename).read_bytes()
        fields = deb.control()
        description = fields.pop("Description")
        fields["Filename"] = f"./{deb.filename}"
        fields["Size"] = str(len(data))
        for title, algorithm in HASHES:
            fields[title if title != "MD5Sum" else "MD5sum"] = hashlib.new(
                algorithm, data
            ).hexdigest()
        fields["Description"] = description
        stanzas.append(control_text(fields))
    return "\n".join(stanzas)


def release_text(out: Path, arch: str, label: str) -> str:
    lines = [
        "Origin: k8s-cluster",
        f"Label: {label}",
        f"Date: {formatdate(usegmt=True)}",
        f"Architectures: {arch}",
        "Description: Kubernetes and its container runtime built from upstream source by the",
        " k8s-cluster offline bundle builder (not the official release binaries).",
    ]
    for title, algorithm in HASHES:
        lines.append(f"{title}:")
        for name in ("Packages", "Packages.gz"):
            data = (out / name).read_bytes()
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


def write_repository(debs: list[Deb], out: Path, key_dir: Path, label: str) -> str:
    """Build every package into `out` and index and sign it; returns the key's fingerprint."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.deb"):
        stale.unlink()
    for deb in debs:
        build_deb(deb, out)
    index = packages_index(debs, out).encode()
    (out / "Packages").write_bytes(index)
    (out / "Packages.gz").write_bytes(gzip.compress(index, mtime=0))
    (out / "Release").write_text(release_text(out, debs[0].arch, label))
    with Signer(key_dir) as signer:
        (out / "Release.key").write_bytes(signer.public_key())
        signer.sign(out / "Release")
        return signer.fingerprint


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        error = proc.stderr.decode(errors="replace").strip()
        raise RepositoryError(f"{' '.join(argv[:3])} ... failed: {error}")
    return proc


class Signer:
    """GnuPG in a private temporary home; the key itself is kept armored in key_dir (0700)."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self.secret_file = key_dir / "secret-key.asc"

    def __enter__(self) -> Signer:
        self.home = tempfile.mkdtemp(prefix="k8s-bundle-gpg-")
        os.chmod(self.home, 0o700)
        self.key_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.key_dir, 0o700)
        if self.secret_file.exists():
            self._gpg("--import", str(self.secret_file))
        else:
            self._gpg("--quick-generate-key", KEY_UID, "rsa3072", "sign", "never")
            secret = self._gpg("--armor", "--export-secret-keys").stdout
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
        self.fingerprint = self._fingerprint()
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True, check=False
        )
        shutil.rmtree(self.home, ignore_errors=True)

    def _gpg(self, *args: str) -> subprocess.CompletedProcess:
        return _run(
            [
                "gpg",
                "--homedir",
                self.home,
                "--batch",
                "--yes",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ]
        )

    def _fingerprint(self) -> str:
        listing = self._gpg("--list-secret-keys", "--with-colons").stdout.decode()
        for line in listing.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise RepositoryError(f"no secret key in {self.secret_file}")

    def public_key(self) -> bytes:
        return self._gpg("--armor", "--export", self.fingerprint).stdout

    def sign(self, release: Path) -> None:
        user = ("--local-user", self.fingerprint, "--digest-algo", "SHA256")
        out = release.parent
        self._gpg(*user, "--clearsign", "--output", str(out / "InRelease"), str(release))
        self._gpg(
            *user, "--armor", "--detach-sign", "--output", str(out / "Release.gpg"), str(release)
        )
