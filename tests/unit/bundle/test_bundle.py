"""Unit tests of k8s_bundle.bundle's small parts: kubeadm's image list and the recipe key."""

from __future__ import annotations

import json
from pathlib import Path

from k8s_bundle import bundle
from tests.unit.image_archives import KUBEADM_1_37_2


def test_kubeadm_images_by_short_name(tmp_path: Path) -> None:
    """A stand-in kubeadm that answers `config images list` as kubeadm does (-o json)."""
    kubeadm = tmp_path / "kubeadm"
    listing = json.dumps({"kind": "Images", "images": list(KUBEADM_1_37_2)})
    kubeadm.write_text(
        f"#!/bin/sh\necho \"$*\" > {tmp_path / 'argv'}\ncat <<'EOF'\n{listing}\nEOF\n"
    )
    kubeadm.chmod(0o755)
    assert bundle.kubeadm_images(kubeadm, "v1.37.2") == {
        "kube-apiserver": "registry.k8s.io/kube-apiserver:v1.37.2",
        "kube-controller-manager": "registry.k8s.io/kube-controller-manager:v1.37.2",
        "kube-scheduler": "registry.k8s.io/kube-scheduler:v1.37.2",
        "kube-proxy": "registry.k8s.io/kube-proxy:v1.37.2",
        "etcd": "registry.k8s.io/etcd:3.7.0-0",
        "coredns": "registry.k8s.io/coredns/coredns:v1.14.6",
        "pause": "registry.k8s.io/pause:3.10.2",
    }
    assert (tmp_path / "argv").read_text() == (
        "config images list --kubernetes-version v1.37.2 -o json\n"
    )


def test_recipe_key_depends_on_the_version_and_the_mirror() -> None:
    key = bundle._recipe_key("1.37.2", bundle.DEFAULT_MIRROR)
    assert key == bundle._recipe_key("1.37.2", bundle.DEFAULT_MIRROR)
    assert len(key) == 64
    assert bundle._recipe_key("1.37.3", bundle.DEFAULT_MIRROR) != key
    assert bundle._recipe_key("1.37.2", "http://mirror.local/debian") != key
