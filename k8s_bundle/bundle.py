"""Build an offline bundle for one Kubernetes version: packages, images and manifests.

    <out>/repository/   signed flat Debian repository (kubeadm, kubelet, kubectl, kubernetes-cni,
                        cri-tools, containerd, runc)
    <out>/images/       one archive per image, at the path of its name
                        (images/registry.k8s.io/kube-apiserver:v1.37.2.tar), and images.json
    <out>/manifests/    flannel.yaml, the CNI for the bundle's images
    <out>/releases/     containerd and runc laid out as their projects publish their releases
                        (archive or binary, and sha256 files), for container_runtime.source
                        release
    <out>/bin/kubectl   the matching kubectl for the orchestrating machine
    <out>/bundle.json   what is in it, its versions and what building it cost

Every Go build is cached on its own (gobuild), so a bundle is re-assembled in about a minute when
only the suite's recipe changed, and returned at once when nothing did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from k8s_cluster.hosts.lxc_rootfs import ensure_debootstrap
from k8s_cluster.hosts.lxc_util import FileLock, remove_tree, write_file
from k8s_cluster.images import INDEX_FILE, archive_path, tag_of
from k8s_cluster.paths import cache_root
from k8s_cluster.render import render_text

from . import components, debs, gobuild, images, packages
from .images import File, Image, Layer

HERE = Path(__file__).resolve().parent
RECIPE_VERSION = 1
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_DISTRIBUTION = "bookworm"
TESTAPP_IMAGE = f"localhost/k8s-cluster/testapp:{components.TESTAPP_VERSION}"
# What kube-proxy and flanneld run besides themselves: iptables and nft (kube-proxy's and
# flannel's rules), conntrack (kube-proxy clears stale UDP entries), ipset.
NETWORK_IMAGE_PACKAGES = ("iptables", "nftables", "conntrack", "ipset", "kmod")
NETWORK_IMAGE_EXCLUDES = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/log",
    "dev",
    "proc",
    "sys",
)
# Files every single-binary image carries: a root user and a /tmp.
ROOT_FILES = {
    "etc/passwd": File(
        b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/:/sbin/nologin\n"
    ),
    "etc/group": File(b"root:x:0:\nnogroup:x:65534:\n"),
    "etc/nsswitch.conf": File(b"hosts: files dns\n"),
    "tmp/.keep": File(b"", 0o644),
}


@dataclass(frozen=True)
class Built:
    """Folders of the built binaries, by component."""

    kubernetes: Path
    etcd: Path
    coredns: Path
    containerd: Path
    runc: Path
    cni: Path
    flannel_cni: Path
    crictl: Path
    flannel: Path
    testapp: Path
    pause: Path


def default_out(version: str) -> Path:
    return cache_root() / "bundles" / f"v{version}"


def build(
    version: str,
    out: Path | None = None,
    mirror: str = DEFAULT_MIRROR,
    log: Callable[[str], None] = print,
) -> dict:
    """Build the bundle for Kubernetes `version` ("1.37.2") into `out`; returns bundle.json."""
    parsed = components.parse_version(version)
    version = ".".join(map(str, parsed))
    out = (out or default_out(version)).absolute()
    key = _recipe_key(version, mirror)
    with FileLock(out.with_name(f".{out.name}.lock")):
        existing = _read_manifest(out)
        if existing.get("recipe") == key:
            log(f"bundle v{version} is up to date in {out}")
            return existing
        return _build(parsed, out, mirror, key, log)


def _read_manifest(out: Path) -> dict:
    try:
        return json.loads((out / "bundle.json").read_text())
    except (OSError, ValueError):
        return {}


def _recipe_key(version: str, mirror: str) -> str:
    digest = hashlib.sha256(json.dumps([RECIPE_VERSION, version, mirror]).encode())
    for path in sorted(HERE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(HERE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _build(parsed: tuple[int, int, int], out: Path, mirror: str, key: str, log) -> dict:
    started = time.monotonic()
    version = ".".join(map(str, parsed))
    cache = cache_root()
    go_cache = cache / "go-builds"
    pins = components.PINS[f"{parsed[0]}.{parsed[1]}"]
    kubernetes = gobuild.build(components.kubernetes(parsed), go_cache, log)
    asked = kubeadm_images(kubernetes / "kubeadm", f"v{version}")
    wanted = served_images(asked, log)
    etcd_tag = tag_of(wanted["etcd"])
    coredns_tag = tag_of(wanted["coredns"])
    built = Built(
        kubernetes=kubernetes,
        etcd=gobuild.build(components.etcd(etcd_tag.split("-")[0]), go_cache, log),
        coredns=gobuild.build(components.coredns(coredns_tag), go_cache, log),
        containerd=gobuild.build(components.containerd(pins), go_cache, log),
        runc=gobuild.build(components.runc(pins), go_cache, log),
        cni=gobuild.build(components.cni_plugins(pins), go_cache, log),
        flannel_cni=gobuild.build(components.flannel_cni_plugin(), go_cache, log),
        crictl=gobuild.build(components.cri_tools(pins), go_cache, log),
        flannel=gobuild.build(components.flannel(pins), go_cache, log),
        testapp=gobuild.build(components.testapp(), go_cache, log),
        pause=build_pause(cache / "pause", log),
    )
    network_base = ensure_debootstrap(
        cache / "image-base" / f"{IMAGE_DISTRIBUTION}-network",
        IMAGE_DISTRIBUTION,
        mirror,
        NETWORK_IMAGE_PACKAGES,
        _strip_rootfs,
    )
    work = out.with_name(f".{out.name}.building")
    remove_tree(work)
    work.mkdir(parents=True)
    log("packages: kubeadm, kubelet, kubectl, kubernetes-cni, cri-tools, containerd, runc")
    package_list = _debs(version, pins, built)
    fingerprint = debs.write_repository(
        package_list,
        work / "repository",
        cache / "signing-key",
        f"Kubernetes v{version} offline bundle",
    )
    _write_releases(work / "releases", pins, built)
    flannel_image = f"ghcr.io/flannel-io/flannel:v{pins.flannel}"
    image_list = _images(wanted, version, built, network_base, flannel_image)
    log(f"images: {len(image_list)} archives")
    index = _write_images(image_list, work / "images")
    manifest = render_text(
        (HERE / "manifests" / "flannel.yaml.j2").read_text(),
        flannel_version=f"v{pins.flannel}",
        flannel_image=flannel_image,
        pod_network="10.244.0.0/16",
    )
    write_file(work / "manifests" / "flannel.yaml", manifest)
    (work / "bin").mkdir()
    shutil.copy2(kubernetes / "kubectl", work / "bin" / "kubectl")
    summary = {
        "kubernetes_version": f"v{version}",
        "recipe": key,
        "repository_key": fingerprint,
        "packages": {deb.package: deb.full_version for deb in package_list},
        "images": sorted(index),
        "kubeadm_images": sorted(asked.values()),
        "substituted": {asked[k]: wanted[k] for k in asked if asked[k] != wanted[k]},
        "test_image": TESTAPP_IMAGE,
        "cni_manifest": "manifests/flannel.yaml",
        "assembled_in_seconds": round(time.monotonic() - started, 1),
    }
    write_file(work / "bundle.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    remove_tree(out)
    os.replace(work, out)
    log(f"bundle v{version} ready in {out} ({time.monotonic() - started:.0f} s)")
    return summary


def kubeadm_images(kubeadm: Path, tag: str) -> dict[str, str]:
    """kubeadm's own image list for `tag`, by short name (kube-apiserver, etcd, coredns...)."""
    listing = subprocess.run(
        [str(kubeadm), "config", "images", "list", "--kubernetes-version", tag, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = json.loads(listing)["images"]
    return {name.rsplit("/", 1)[-1].split(":", 1)[0]: name for name in names}


SERVED_MODULES = {"etcd": "go.etcd.io/etcd/server/v3", "coredns": "github.com/coredns/coredns"}


def served_images(asked: dict[str, str], log) -> dict[str, str]:
    """kubeadm's images, except an etcd or CoreDNS version the Go module proxy does not serve:
    the nearest later patch it serves, tagged as that (the suite then tells kubeadm so)."""
    wanted = dict(asked)
    for image, module in SERVED_MODULES.items():
        tag = tag_of(asked[image])
        version, _, suffix = tag.partition("-")  # etcd's tags are "3.7.0-0"
        served = gobuild.served_versions(module)
        closest = components.closest_served(f"v{version.removeprefix('v')}", served)
        if closest.removeprefix("v") != version.removeprefix("v"):
            new_tag = (closest if tag.startswith("v") else closest[1:]) + (
                f"-{suffix}" if suffix else ""
            )
            wanted[image] = asked[image].rsplit(":", 1)[0] + ":" + new_tag
            log(f"{asked[image]} is not served by the Go module proxy: {wanted[image]} instead")
    return wanted


def build_pause(cache: Path, log) -> Path:
    """The pause binary, compiled statically from the suite's C source."""
    source = HERE / "c" / "pause.c"
    entry = cache / hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    if not (entry / "pause").exists():
        log("cc pause")
        entry.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["cc", "-Os", "-static", "-Wall", "-Werror", "-o", str(entry / ".pause"), str(source)],
            check=True,
        )
        os.replace(entry / ".pause", entry / "pause")
    return entry


def _strip_rootfs(rootfs: Path) -> None:
    """What an image does not need of a debootstrap: package caches and this machine's names."""
    for relative in ("etc/hostname", "etc/resolv.conf", "etc/machine-id"):
        (rootfs / relative).unlink(missing_ok=True)


def _debs(version: str, pins: components.Pins, built: Built) -> list[debs.Deb]:
    return [
        *packages.kubernetes_debs(version, built.kubernetes, pins.cni_plugins, pins.cri_tools),
        packages.cni_deb(pins.cni_plugins, [built.cni, built.flannel_cni]),
        packages.cri_tools_deb(pins.cri_tools, built.crictl),
        packages.containerd_deb(pins.containerd, built.containerd, pins.runc),
        packages.runc_deb(pins.runc, built.runc),
    ]


def _write_releases(folder: Path, pins: components.Pins, built: Built) -> None:
    """containerd-V-linux-amd64.tar.gz (bin/...) with its .sha256sum, and runc.amd64 with
    runc.sha256sum, at the paths of the projects' release downloads."""
    containerd = folder / "containerd" / f"v{pins.containerd}"
    archive = containerd / f"containerd-{pins.containerd}-linux-amd64.tar.gz"
    files = {
        f"bin/{name}": images.File((built.containerd / name).read_bytes(), 0o755)
        for name in ("containerd", "containerd-shim-runc-v2", "ctr")
    }
    _write_checked(archive, images.tar_gz(files), archive.with_name(archive.name + ".sha256sum"))
    runc = folder / "runc" / f"v{pins.runc}" / "runc.amd64"
    _write_checked(runc, (built.runc / "runc").read_bytes(), runc.with_name("runc.sha256sum"))


def _write_checked(path: Path, data: bytes, sums: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sums.write_text(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")


def _binary_layer(files: dict[str, Path]) -> Layer:
    content = {path: File((source).read_bytes(), 0o755) for path, source in files.items()}
    return images.layer_from_files({**ROOT_FILES, **content})


def _images(
    wanted: dict[str, str], version: str, built: Built, network_base: Path, flannel_image: str
) -> list[Image]:
    k8s = built.kubernetes
    network = images.layer_from_tree(network_base, NETWORK_IMAGE_EXCLUDES)
    control_plane = [
        Image(
            (wanted[name],),
            (_binary_layer({f"usr/local/bin/{name}": k8s / name}),),
        )
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    return [
        *control_plane,
        Image(
            (wanted["kube-proxy"],),
            (network, _binary_layer({"usr/local/bin/kube-proxy": k8s / "kube-proxy"})),
        ),
        Image((wanted["etcd"],), (_binary_layer({"usr/local/bin/etcd": built.etcd / "etcd"}),)),
        Image(
            (wanted["coredns"],),
            (_binary_layer({"coredns": built.coredns / "coredns"}),),
            entrypoint=("/coredns",),
        ),
        Image(
            (wanted["pause"],),
            (_binary_layer({"pause": built.pause / "pause"}),),
            entrypoint=("/pause",),
        ),
        Image(
            (flannel_image,),
            (network, _binary_layer({"opt/bin/flanneld": built.flannel / "flannel"})),
            entrypoint=("/opt/bin/flanneld",),
        ),
        Image(
            (TESTAPP_IMAGE,),
            (_binary_layer({"testapp": built.testapp / "testapp"}),),
            entrypoint=("/testapp",),
            cmd=("serve",),
        ),
    ]


def _write_images(image_list: list[Image], folder: Path) -> dict[str, dict]:
    index = {}
    for image in image_list:
        for name in image.names:
            path = archive_path(folder, name)
            images.write_archive(image, path)
            data = path.read_bytes()
            index[name] = {
                "file": path.relative_to(folder).as_posix(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
    write_file(folder / INDEX_FILE, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index
