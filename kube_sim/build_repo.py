"""Build the kube-sim package repository: STAND-IN kubeadm / kubelet + the real kubectl.

    python3 -m kube_sim.build_repo --out DIR [--versions 1.36.2,1.36.1]

DIR becomes a flat, signed Debian repository shaped like pkgs.k8s.io
(`deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] URL /`): Packages, Packages.gz,
Release, InRelease, Release.gpg, Release.key and the .deb files. The signing key is generated
once and kept (armored, mode 0600) beside DIR in DIR.signing-key/ (or --key-dir), never inside
the folder that is served; rebuilding into the same DIR
reuses it and only rebuilds what changed. The packages are for tests and rehearsals: they must
never be installed on a real cluster.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from kube_sim.common import unitfiles

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_VERSIONS = ["1.36.2", "1.36.1"]
PACKAGES = ("kubeadm", "kubelet", "kubectl")
MAINTAINER = "kube-sim stand-ins of the k8s-cluster blueprint suite <kube-sim@example.invalid>"
KEY_UID = "kube-sim STAND-IN package repository (tests only) <kube-sim@example.invalid>"
LIB_DIR = "usr/lib/kube-sim"
KUBELET_LIB_DIR = "usr/lib/kube-sim/kubelet-lib"
STAMP_DIR = ".kube-sim-build"
HASHES = (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512"))

POSTINST = """\
#!/bin/sh
# kube-sim STAND-IN package: reload systemd units when systemd runs (not in chroots/containers
# without systemd).
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
"""

WRAPPER = """\
#!/usr/bin/python3
# {name} STAND-IN (kube-sim): for end-to-end tests and offline rehearsals only.
# It never runs a container and must never be installed on a real cluster.
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, "{lib}")
from kube_sim.{module} import main  # noqa: E402

sys.exit(main())
"""

DESCRIPTIONS = {
    "kubelet": (
        "Kubernetes node agent - kube-sim STAND-IN for tests, never for real clusters",
        (
            "STAND-IN for end-to-end tests and offline rehearsals: this kubelet registers its\n"
            "Node, heartbeats and reports the pods bound to it Running and Ready, but never\n"
            "runs a container. Never install it on a real cluster."
        ),
    ),
    "kubeadm": (
        "Kubernetes cluster bootstrapping tool - kube-sim STAND-IN for tests only",
        (
            "STAND-IN for end-to-end tests and offline rehearsals: kubeadm init/join/token/\n"
            "reset with real certificates and bootstrap tokens, and a simulated API server\n"
            "(kube-apiserver-sim.service) instead of a real control plane. No container\n"
            "runs. Never install it on a real cluster."
        ),
    ),
    "kubectl": (
        "Kubernetes command-line tool (real binary, shipped by the kube-sim test repository)",
        (
            "The real kubectl binary of the machine that built this kube-sim STAND-IN\n"
            "repository, packaged so that host-side kubectl is real. The repository it comes\n"
            "from is for tests and rehearsals only."
        ),
    ),
}


class BuildError(RuntimeError):
    pass


@dataclass
class Deb:
    package: str
    version: str
    arch: str
    control: dict[str, str]
    filename: str
    files: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> (mode, data)


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        err = (
            proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        )
        raise BuildError(f"{' '.join(argv[:3])} ... failed: {err.strip()}")
    return proc


def debian_arch() -> str:
    try:
        return _run(["dpkg", "--print-architecture"]).stdout.decode().strip()
    except (BuildError, FileNotFoundError):
        from kube_sim.common.version import machine_arch

        return machine_arch()


# -- package contents -----------------------------------------------------------------------
def _python_tree(include: list[str]) -> dict[str, tuple[int, bytes]]:
    """Files of the kube_sim package (relative paths under kube_sim/), without caches."""
    files: dict[str, tuple[int, bytes]] = {}
    for rel in include:
        source = PACKAGE_ROOT / rel
        candidates = [source] if source.is_file() else sorted(source.rglob("*"))
        for path in candidates:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            relative = path.relative_to(PACKAGE_ROOT).as_posix()
            if relative in ("build-repo",):
                continue
            files[f"kube_sim/{relative}"] = (0o644, path.read_bytes())
    return files


def kubelet_deb(version: str, arch: str) -> Deb:
    files: dict[str, tuple[int, bytes]] = {}
    tree = _python_tree(["__init__.py", "common", "kubelet.py", "kubelet_lib"])
    tree["kube_sim/VERSION"] = (0o644, f"{version}\n".encode())
    for rel, item in tree.items():
        files[f"{KUBELET_LIB_DIR}/{rel}"] = item
    wrapper = WRAPPER.format(name="kubelet", lib=f"/{KUBELET_LIB_DIR}", module="kubelet")
    files["usr/bin/kubelet"] = (0o755, wrapper.encode())
    files["usr/lib/systemd/system/kubelet.service"] = (0o644, unitfiles.KUBELET_SERVICE.encode())
    files["usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"] = (
        0o644,
        unitfiles.KUBEADM_DROPIN.encode(),
    )
    control = {
        "Depends": "iproute2, openssl, python3",
        "Section": "admin",
    }
    return _deb("kubelet", version, arch, control, files)


def kubeadm_deb(version: str, arch: str) -> Deb:
    files: dict[str, tuple[int, bytes]] = {}
    tree = _python_tree(["."])
    tree["kube_sim/VERSION"] = (0o644, f"{version}\n".encode())
    for rel, item in tree.items():
        files[f"{LIB_DIR}/{rel}"] = item
    wrapper = WRAPPER.format(name="kubeadm", lib=f"/{LIB_DIR}", module="kubeadm")
    files["usr/bin/kubeadm"] = (0o755, wrapper.encode())
    control = {
        "Depends": f"kubelet (>= {version}-sim), kubectl, python3, openssl",
        "Section": "admin",
    }
    return _deb("kubeadm", version, arch, control, files)


def kubectl_deb(version: str, arch: str, kubectl: Path) -> Deb:
    files = {"usr/bin/kubectl": (0o755, kubectl.read_bytes())}
    return _deb("kubectl", version, arch, {"Section": "admin"}, files)


def _deb(package: str, version: str, arch: str, extra: dict[str, str], files: dict) -> Deb:
    full = f"{version}-sim"
    installed_kb = sum((len(data) + 1023) // 1024 for _mode, data in files.values())
    summary, body = DESCRIPTIONS[package]
    control = {
        "Package": package,
        "Version": full,
        "Architecture": arch,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed_kb),
        **extra,
        "Priority": "optional",
        "Description": summary + "\n" + "\n".join(f" {line}" for line in body.splitlines()),
    }
    return Deb(package, full, arch, control, f"{package}_{full}_{arch}.deb", files)


def control_text(control: dict[str, str]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in control.items())


def digest(deb: Deb, compression: str) -> str:
    h = hashlib.sha256()
    h.update(control_text(deb.control).encode())
    h.update(compression.encode())
    for path in sorted(deb.files):
        mode, data = deb.files[path]
        h.update(f"\0{path}\0{mode:o}\0{len(data)}\0".encode())
        h.update(data)
    h.update(POSTINST.encode())
    return h.hexdigest()


def build_deb(deb: Deb, out: Path, compression: str) -> bool:
    """Build out/<deb.filename> unless an identical one exists; True when (re)built."""
    stamp = out / STAMP_DIR / f"{deb.filename}.sha256"
    wanted = digest(deb, compression)
    target = out / deb.filename
    if target.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return False
    with tempfile.TemporaryDirectory(prefix="kube-sim-deb-") as tmp:
        root = Path(tmp) / "root"
        for rel, (mode, data) in deb.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.chmod(path, mode)
        if deb.package in ("kubelet", "kubeadm"):
            _compile(root)
        if deb.package == "kubelet":
            (root / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
        for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            os.chmod(directory, 0o755)
        meta = root / "DEBIAN"
        meta.mkdir()
        (meta / "control").write_text(control_text(deb.control))
        if deb.package in ("kubelet", "kubeadm"):
            for script in ("postinst", "postrm"):
                (meta / script).write_text(POSTINST)
                os.chmod(meta / script, 0o755)
        partial = out / f".{deb.filename}.partial"
        _run(
            [
                "dpkg-deb",
                "--root-owner-group",
                f"-Z{compression}",
                "--build",
                str(root),
                str(partial),
            ]
        )
        os.replace(partial, target)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted + "\n")
    return True


def _compile(root: Path) -> None:
    """Byte-compile the Python files so hosts never write __pycache__ under /usr/lib."""
    for path in sorted(root.rglob("*.py")):
        py_compile.compile(str(path), doraise=True, quiet=1)
    for cache in root.rglob("__pycache__"):
        os.chmod(cache, 0o755)
        for pyc in cache.iterdir():
            os.chmod(pyc, 0o644)


# -- index and signatures -------------------------------------------------------------------
def packages_index(debs: list[Deb], out: Path) -> str:
    stanzas = []
    for deb in sorted(debs, key=lambda d: (d.package, d.version)):
        data = (out / deb.filename).read_bytes()
        fields = dict(deb.control)
        description = fields.pop("Description")
        fields["Filename"] = f"./{deb.filename}"
        fields["Size"] = str(len(data))
        fields["MD5sum"] = hashlib.md5(data).hexdigest()
        fields["SHA1"] = hashlib.sha1(data).hexdigest()
        fields["SHA256"] = hashlib.sha256(data).hexdigest()
        fields["SHA512"] = hashlib.sha512(data).hexdigest()
        fields["Description"] = description
        stanzas.append(control_text(fields))
    return "\n".join(stanzas)


def release_body(out: Path, arch: str) -> str:
    lines = [
        "Origin: kube-sim",
        "Label: kube-sim STAND-IN packages (tests only)",
        f"Architectures: {arch}",
        "Description: kube-sim STAND-IN kubeadm/kubelet and the real kubectl, for end-to-end",
        " tests and offline rehearsals. Never install these packages on a real cluster.",
    ]
    for title, algorithm in HASHES:
        lines.append(f"{title}:")
        for name in ("Packages", "Packages.gz"):
            data = (out / name).read_bytes()
            lines.append(f" {hashlib.new(algorithm, data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


class Signer:
    """GnuPG in a private temporary home; the key itself is kept armored in key_dir."""

    def __init__(self, key_dir: Path) -> None:
        self.key_dir = key_dir
        self.secret_file = key_dir / "secret-key.asc"

    def __enter__(self) -> Signer:
        self._tmp = tempfile.mkdtemp(prefix="ksg-")
        os.chmod(self._tmp, 0o700)
        self.home = self._tmp
        self.key_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.key_dir, 0o700)
        if self.secret_file.exists():
            self._gpg(["--import", str(self.secret_file)])
        else:
            self._gpg(["--quick-generate-key", KEY_UID, "rsa3072", "sign", "never"])
            secret = self._gpg(["--armor", "--export-secret-keys"]).stdout
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
        self.fingerprint = self._fingerprint()
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True, check=False
        )
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _gpg(self, args: list[str]) -> subprocess.CompletedProcess:
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
        listing = self._gpg(["--list-secret-keys", "--with-colons"]).stdout.decode()
        for line in listing.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise BuildError("no secret key in the repository key store")

    def public_key(self) -> bytes:
        return self._gpg(["--armor", "--export", self.fingerprint]).stdout

    def sign(self, release: Path) -> None:
        user = ["--local-user", self.fingerprint, "--digest-algo", "SHA256"]
        out = release.parent
        self._gpg([*user, "--clearsign", "--output", str(out / "InRelease.tmp"), str(release)])
        self._gpg(
            [
                *user,
                "--armor",
                "--detach-sign",
                "--output",
                str(out / "Release.gpg.tmp"),
                str(release),
            ]
        )
        os.replace(out / "InRelease.tmp", out / "InRelease")
        os.replace(out / "Release.gpg.tmp", out / "Release.gpg")


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def find_kubectl(explicit: str | None) -> Path:
    found = explicit or shutil.which("kubectl")
    if not found:
        raise BuildError("kubectl not found: install it or pass --kubectl PATH")
    path = Path(found).resolve()
    if not path.is_file():
        raise BuildError(f"kubectl binary {path} does not exist")
    return path


def default_key_dir(out: Path) -> Path:
    """Beside the repository, never inside it: whatever is in `out` may be served."""
    return out.parent / f"{out.name}.signing-key"


def build(
    out: Path,
    versions: list[str],
    kubectl: Path,
    key_dir: Path | None = None,
    compression: str = "zstd",
    arch: str | None = None,
    log=print,
) -> dict[str, object]:
    """Build or refresh the repository in `out`; returns a summary."""
    arch = arch or debian_arch()
    out.mkdir(parents=True, exist_ok=True)
    debs: list[Deb] = []
    built: list[str] = []
    for version in versions:
        for deb in (
            kubelet_deb(version, arch),
            kubeadm_deb(version, arch),
            kubectl_deb(version, arch, kubectl),
        ):
            if build_deb(deb, out, compression):
                built.append(deb.filename)
                log(f"built {deb.filename}")
            debs.append(deb)
    wanted = {deb.filename for deb in debs}
    for stale in out.glob("*.deb"):
        if stale.name.split("_")[0] in PACKAGES and stale.name not in wanted:
            stale.unlink()
            (out / STAMP_DIR / f"{stale.name}.sha256").unlink(missing_ok=True)
            log(f"removed {stale.name}")

    index = packages_index(debs, out).encode()
    _write_if_changed(out / "Packages", index)
    _write_if_changed(out / "Packages.gz", gzip.compress(index, mtime=0))

    manifest = PACKAGE_ROOT / "manifests" / "cni.yaml"
    if manifest.exists():
        (out / "manifests").mkdir(exist_ok=True)
        _write_if_changed(out / "manifests" / "cni.yaml", manifest.read_bytes())

    with Signer(key_dir or default_key_dir(out)) as signer:
        key_changed = _write_if_changed(out / "Release.key", signer.public_key())
        body = release_body(out, arch)
        release = out / "Release"
        previous = release.read_text() if release.exists() else ""
        unchanged = "\n".join(
            line for line in previous.splitlines() if not line.startswith("Date:")
        )
        signed = (out / "InRelease").exists() and (out / "Release.gpg").exists()
        if key_changed or not signed or unchanged.strip() != body.strip():
            lines = body.splitlines()
            lines.insert(3, f"Date: {formatdate(usegmt=True)}")
            release.write_text("\n".join(lines) + "\n")
            signer.sign(release)
            log("signed Release")
    return {
        "out": str(out),
        "built": built,
        "debs": sorted(wanted),
        "fingerprint": signer.fingerprint,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m kube_sim.build_repo",
        description="Build the kube-sim STAND-IN package repository (tests and rehearsals only).",
    )
    parser.add_argument("--out", required=True, help="repository directory (created)")
    parser.add_argument(
        "--versions",
        default=",".join(DEFAULT_VERSIONS),
        help="comma-separated Kubernetes versions to package (default: %(default)s)",
    )
    parser.add_argument("--kubectl", help="kubectl binary to package (default: `which kubectl`)")
    parser.add_argument(
        "--key-dir", help="where the signing key is kept (default: OUT.signing-key, beside OUT)"
    )
    parser.add_argument("--compression", choices=("zstd", "xz", "gzip"), default="zstd")
    args = parser.parse_args(argv)
    versions = [v.strip().removeprefix("v") for v in args.versions.split(",") if v.strip()]
    for version in versions:
        parts = version.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            parser.error(f"invalid version {version!r} (expected X.Y.Z)")
    try:
        summary = build(
            Path(args.out).resolve(),
            versions,
            find_kubectl(args.kubectl),
            Path(args.key_dir).resolve() if args.key_dir else None,
            args.compression,
        )
    except (BuildError, OSError) as exc:
        print(f"build_repo: {exc}", file=sys.stderr)
        return 1
    print(
        f"repository ready in {summary['out']} ({len(summary['debs'])} packages, "
        f"key {summary['fingerprint']})"
    )
    print(
        f"  deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] file://{summary['out']} /"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
