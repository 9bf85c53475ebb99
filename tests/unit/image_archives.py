"""Small image archives for the tests, written with the bundle builder's own archive writer."""

from __future__ import annotations

from pathlib import Path

from k8s_bundle.images import File, Image, layer_from_files, write_archive
from k8s_cluster.images import archive_path

KUBEADM_1_37_2 = (
    "registry.k8s.io/kube-apiserver:v1.37.2",
    "registry.k8s.io/kube-controller-manager:v1.37.2",
    "registry.k8s.io/kube-scheduler:v1.37.2",
    "registry.k8s.io/kube-proxy:v1.37.2",
    "registry.k8s.io/etcd:3.7.0-0",
    "registry.k8s.io/coredns/coredns:v1.14.6",
    "registry.k8s.io/pause:3.10.2",
)


def small_image(*names: str) -> Image:
    """An image of one small file, named `names`."""
    layer = layer_from_files({"etc/image-name": File("\n".join(names).encode())})
    return Image(names, (layer,))


def write_image(folder: Path, *names: str) -> Path:
    """The archive of a small image, where a bundle keeps it (its path is its first name)."""
    path = archive_path(folder, names[0])
    write_archive(small_image(*names), path)
    return path


def write_bundle(folder: Path, names: tuple[str, ...] = KUBEADM_1_37_2) -> Path:
    for name in names:
        write_image(folder, name)
    return folder
