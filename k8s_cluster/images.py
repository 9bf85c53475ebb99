"""Image bundles for air-gapped sites: a folder, or a URL, of container image archives.

The suite imports them into containerd on every host before kubeadm runs (a worker gets all but
the control plane's own), and kubeadm is told never to pull, as k0s does with its airgap
bundles. An archive is an OCI image layout or a `docker save` tarball; its image names come from
inside it. A URL bundle lists its archives in `images.json` (name -> file, sha256, size), which
the offline bundle builder writes; a folder is read archive by archive.
"""

from __future__ import annotations

import json
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

INDEX_FILE = "images.json"
IMAGE_NAME = "io.containerd.image.name"
KUBEADM_IMAGES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "etcd",
    "coredns",
    "pause",
)
VERSIONED_WITH_KUBERNETES = KUBEADM_IMAGES[:4]
CONTROL_PLANE_ONLY = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
INDEX_TIMEOUT = 15


class BundleError(ValueError):
    """An image bundle that cannot be used; the message says why, naming the file."""


@dataclass(frozen=True)
class Archive:
    name: str  # image reference, e.g. "registry.k8s.io/pause:3.10.2"
    location: str  # path of the archive inside the bundle
    sha256: str = ""  # known when the bundle has an index

    @property
    def short_name(self) -> str:
        return short_name(self.name)


@dataclass(frozen=True)
class ImageBundle:
    source: str  # absolute folder, or URL ending in "/"
    is_local: bool
    archives: tuple[Archive, ...]

    def names(self) -> list[str]:
        return sorted(archive.name for archive in self.archives)

    def tag(self, image: str) -> str | None:
        """The tag of the bundle's `image` (short name), if it has exactly one."""
        tags = {tag_of(a.name) for a in self.archives if a.short_name == image}
        return tags.pop() if len(tags) == 1 else None

    def for_role(self, role: str) -> list[Archive]:
        """The archives a host of `role` imports: a worker does not run the control plane."""
        if role == "control-plane":
            return list(self.archives)
        return [a for a in self.archives if a.short_name not in CONTROL_PLANE_ONLY]


def short_name(reference: str) -> str:
    """'kube-apiserver' of 'registry.k8s.io/kube-apiserver:v1.37.2'."""
    return reference.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def tag_of(reference: str) -> str:
    """'v1.37.2' of 'registry.k8s.io/kube-apiserver:v1.37.2'; '' for a reference pinned by
    digest alone; 'latest' for one with neither."""
    last = reference.rsplit("/", 1)[-1]
    named, _, digest = last.partition("@")
    if ":" in named:
        return named.split(":", 1)[1]
    return "" if digest else "latest"


def archive_path(folder: Path, name: str) -> Path:
    """Where a bundle keeps the archive of image `name`: its name is its path."""
    return folder / f"{name}.tar"


def read_names(path: Path) -> list[str]:
    """The image references an archive carries; BundleError when it is not an image archive."""
    try:
        with tarfile.open(path) as tar:
            members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
            if "index.json" in members and "oci-layout" in members:
                index = json.load(tar.extractfile(members["index.json"]))
                names = [m.get("annotations", {}).get(IMAGE_NAME, "") for m in index["manifests"]]
            elif "manifest.json" in members:
                manifests = json.load(tar.extractfile(members["manifest.json"]))
                names = [tag for m in manifests for tag in m.get("RepoTags") or []]
            else:
                raise BundleError(
                    f"{path} is not an image archive (no index.json, no manifest.json)"
                )
    except (tarfile.TarError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if isinstance(err, BundleError):
            raise
        raise BundleError(f"{path} is not an image archive ({err})") from None
    named = [name for name in names if name]
    if not named:
        raise BundleError(f"{path} is an image archive without an image name")
    return named


def scan_folder(folder: Path) -> ImageBundle:
    """Every archive (*.tar, at any depth) of a folder, by the names inside it."""
    if not folder.is_dir():
        raise BundleError(f"{folder} is not a folder")
    archives = []
    for path in sorted(folder.rglob("*.tar")):
        location = path.relative_to(folder).as_posix()
        archives += [Archive(name, location) for name in read_names(path)]
    if not archives:
        raise BundleError(f"{folder} holds no image archive (*.tar)")
    return ImageBundle(str(folder), True, tuple(archives))


def parse_index(text: str, where: str) -> tuple[Archive, ...]:
    try:
        entries = json.loads(text)
        return tuple(
            Archive(name, entry["file"], entry["sha256"]) for name, entry in sorted(entries.items())
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise BundleError(f"{where} is not an image index ({err})") from None


def fetch_index(url: str) -> ImageBundle:
    """A URL bundle, from its images.json."""
    base = url.rstrip("/") + "/"
    where = base + INDEX_FILE
    try:
        with urllib.request.urlopen(where, timeout=INDEX_TIMEOUT) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise BundleError(f"{where} could not be read ({err})") from None
    return ImageBundle(base, False, parse_index(text, where))


def missing_for_kubeadm(names: Iterable[str], kubernetes_version: str) -> list[str]:
    """Images kubeadm runs that a bundle lacks. Without kubeadm at hand (before any host
    exists), the check is by image: kube-* at the asked version (any patch of an X.Y), and some
    etcd, CoreDNS and pause. The exact tags are checked against kubeadm on the host."""
    present = list(names)
    missing = []
    for image in KUBEADM_IMAGES:
        tags = [tag_of(n) for n in present if short_name(n) == image]
        if image in VERSIONED_WITH_KUBERNETES:
            wanted = f"v{kubernetes_version}"
            exact = wanted.count(".") == 2
            tags = [t for t in tags if t == wanted or (not exact and t.startswith(wanted + "."))]
        if not tags:
            missing.append(image)
    return missing


def absent(required: Iterable[str], names: Iterable[str]) -> list[str]:
    """The required image references that are not among `names` (exact match)."""
    have = set(names)
    return sorted(name for name in required if name not in have)
