"""Unit tests of k8s_cluster.images: image bundles (a folder or a URL) and what kubeadm needs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_bundle.images import write_archive
from k8s_cluster.images import (
    INDEX_FILE,
    Archive,
    BundleError,
    ImageBundle,
    archive_path,
    fetch_index,
    missing_for_kubeadm,
    parse_index,
    read_names,
    scan_folder,
    short_name,
    tag_of,
)
from tests.unit.image_archives import KUBEADM_1_37_2, small_image, write_bundle, write_image

# --- Names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "short", "tag"),
    [
        ("registry.k8s.io/kube-apiserver:v1.37.2", "kube-apiserver", "v1.37.2"),
        ("registry.k8s.io/coredns/coredns:v1.14.6", "coredns", "v1.14.6"),
        ("registry.k8s.io/etcd:3.7.0-0", "etcd", "3.7.0-0"),
        ("localhost:5000/pause", "pause", "latest"),
        ("localhost:5000/pause:3.10.2", "pause", "3.10.2"),
        ("pause", "pause", "latest"),
        ("registry.k8s.io/pause:3.10.2@sha256:abc", "pause", "3.10.2"),
        ("registry.k8s.io/pause@sha256:abc", "pause", ""),
    ],
)
def test_short_name_and_tag(reference: str, short: str, tag: str) -> None:
    assert short_name(reference) == short
    assert tag_of(reference) == tag


def test_archive_path_is_the_image_name(tmp_path: Path) -> None:
    assert archive_path(tmp_path, "registry.k8s.io/pause:3.10.2") == (
        tmp_path / "registry.k8s.io" / "pause:3.10.2.tar"
    )


# --- read_names --------------------------------------------------------------------------------


def test_read_names_of_an_oci_archive(tmp_path: Path) -> None:
    path = write_image(tmp_path, "registry.k8s.io/pause:3.10.2", "localhost/pause:3.10.2")
    assert read_names(path) == ["registry.k8s.io/pause:3.10.2", "localhost/pause:3.10.2"]


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_read_names_of_a_docker_save_archive(tmp_path: Path) -> None:
    manifest = [{"Config": "c.json", "RepoTags": ["docker.io/library/busybox:1.37"], "Layers": []}]
    path = tar_of(tmp_path / "busybox.tar", {"manifest.json": json.dumps(manifest).encode()})
    assert read_names(path) == ["docker.io/library/busybox:1.37"]


def test_read_names_of_a_file_that_is_no_tar(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_text("not a tar at all\n" * 100)
    with pytest.raises(BundleError, match="is not an image archive") as caught:
        read_names(path)
    assert str(path) in str(caught.value)


def test_read_names_of_a_tar_without_index_or_manifest(tmp_path: Path) -> None:
    path = tar_of(tmp_path / "files.tar", {"etc/hostname": b"h\n"})
    with pytest.raises(BundleError) as caught:
        read_names(path)
    assert str(caught.value) == f"{path} is not an image archive (no index.json, no manifest.json)"


def test_read_names_of_an_oci_archive_without_names(tmp_path: Path) -> None:
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:00", "size": 1}]}
    path = tar_of(
        tmp_path / "anon.tar",
        {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()},
    )
    with pytest.raises(BundleError) as caught:
        read_names(path)
    assert str(caught.value) == f"{path} is an image archive without an image name"


def test_read_names_of_a_broken_index(tmp_path: Path) -> None:
    path = tar_of(tmp_path / "broken.tar", {"oci-layout": b"{}", "index.json": b"{not json"})
    with pytest.raises(BundleError, match="is not an image archive") as caught:
        read_names(path)
    assert str(path) in str(caught.value)


def test_read_names_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as caught:
        read_names(tmp_path / "gone.tar")
    assert str(tmp_path / "gone.tar") in str(caught.value)


# --- scan_folder -------------------------------------------------------------------------------


def test_scan_folder_finds_archives_at_any_depth(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    (tmp_path / "README").write_text("not an archive, not a .tar\n")
    bundle = scan_folder(tmp_path)
    assert bundle.source == str(tmp_path)
    assert bundle.is_local is True
    assert bundle.names() == sorted(KUBEADM_1_37_2)
    locations = {archive.name: archive.location for archive in bundle.archives}
    assert locations["registry.k8s.io/coredns/coredns:v1.14.6"] == (
        "registry.k8s.io/coredns/coredns:v1.14.6.tar"
    )
    assert all(archive.sha256 == "" for archive in bundle.archives)
    for archive in bundle.archives:
        assert (tmp_path / archive.location).is_file()


def test_scan_folder_refuses_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    with pytest.raises(BundleError) as caught:
        scan_folder(tmp_path)
    assert str(caught.value) == f"{tmp_path} holds no image archive (*.tar)"


def test_scan_folder_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as caught:
        scan_folder(tmp_path / "nowhere")
    assert str(caught.value) == f"{tmp_path / 'nowhere'} is not a folder"


def test_scan_folder_refuses_a_folder_with_a_bad_archive(tmp_path: Path) -> None:
    write_image(tmp_path, "registry.k8s.io/pause:3.10.2")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.tar").write_bytes(b"\0" * 10)
    with pytest.raises(BundleError) as caught:
        scan_folder(tmp_path)
    assert str(tmp_path / "sub" / "x.tar") in str(caught.value)


# --- parse_index -------------------------------------------------------------------------------

INDEX = {
    "registry.k8s.io/pause:3.10.2": {
        "file": "registry.k8s.io/pause:3.10.2.tar",
        "sha256": "a" * 64,
        "size": 10,
    },
    "registry.k8s.io/etcd:3.7.0-0": {
        "file": "registry.k8s.io/etcd:3.7.0-0.tar",
        "sha256": "b" * 64,
        "size": 20,
    },
}


def test_parse_index_sorts_by_name() -> None:
    assert parse_index(json.dumps(INDEX), "http://x/images.json") == (
        Archive("registry.k8s.io/etcd:3.7.0-0", "registry.k8s.io/etcd:3.7.0-0.tar", "b" * 64),
        Archive("registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10.2.tar", "a" * 64),
    )


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '"images"',
        json.dumps({"registry.k8s.io/pause:3.10.2": {"file": "p.tar"}}),
        json.dumps({"registry.k8s.io/pause:3.10.2": "p.tar"}),
    ],
)
def test_parse_index_refuses_what_is_no_index(text: str) -> None:
    with pytest.raises(BundleError) as caught:
        parse_index(text, "http://mirror/images/images.json")
    assert str(caught.value).startswith("http://mirror/images/images.json is not an image index (")


# --- missing_for_kubeadm -----------------------------------------------------------------------


def test_nothing_missing_for_the_exact_version() -> None:
    assert missing_for_kubeadm(KUBEADM_1_37_2, "1.37.2") == []


def test_any_patch_of_a_minor_will_do() -> None:
    assert missing_for_kubeadm(KUBEADM_1_37_2, "1.37") == []


def test_a_minor_is_not_a_prefix_of_another() -> None:
    names = [n.replace("v1.37.2", "v1.370.1") for n in KUBEADM_1_37_2]
    assert missing_for_kubeadm(names, "1.37") == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]


def test_another_patch_is_missing_when_a_patch_is_asked_for() -> None:
    assert missing_for_kubeadm(KUBEADM_1_37_2, "1.37.3") == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]
    assert missing_for_kubeadm(KUBEADM_1_37_2, "1.36") == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]


def test_an_exact_version_is_not_a_prefix() -> None:
    names = [n.replace("v1.37.2", "v1.37.2.1") for n in KUBEADM_1_37_2]
    assert missing_for_kubeadm(names, "1.37.2") == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ]


def test_one_kube_image_at_a_wrong_version_is_missing() -> None:
    names = [
        n.replace("v1.37.2", "v1.37.1") if "kube-scheduler" in n else n for n in KUBEADM_1_37_2
    ]
    assert missing_for_kubeadm(names, "1.37.2") == ["kube-scheduler"]


def test_etcd_coredns_and_pause_at_any_tag() -> None:
    names = [
        *(n for n in KUBEADM_1_37_2 if short_name(n).startswith("kube-")),
        "mirror.local/etcd:3.5.21-0",
        "mirror.local/coredns:1.11.1",
        "mirror.local/pause:3.9",
    ]
    assert missing_for_kubeadm(names, "1.37.2") == []


@pytest.mark.parametrize("image", ["etcd", "coredns", "pause", "kube-proxy"])
def test_a_missing_image_is_named(image: str) -> None:
    names = [n for n in KUBEADM_1_37_2 if short_name(n) != image]
    assert missing_for_kubeadm(names, "1.37.2") == [image]


def test_everything_is_missing_from_an_empty_bundle() -> None:
    assert missing_for_kubeadm([], "1.37") == [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "etcd",
        "coredns",
        "pause",
    ]


# --- ImageBundle -------------------------------------------------------------------------------


def test_a_worker_imports_no_control_plane_image() -> None:
    names = (*KUBEADM_1_37_2, "ghcr.io/flannel-io/flannel:v0.28.10")
    bundle = ImageBundle("/b", True, tuple(Archive(name, f"{name}.tar") for name in names))
    assert [a.name for a in bundle.for_role("control-plane")] == list(names)
    assert [a.name for a in bundle.for_role("worker")] == [
        "registry.k8s.io/kube-proxy:v1.37.2",
        "registry.k8s.io/coredns/coredns:v1.14.6",
        "registry.k8s.io/pause:3.10.2",
        "ghcr.io/flannel-io/flannel:v0.28.10",
    ]


# --- fetch_index -------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A folder served over HTTP on 127.0.0.1: (base URL, folder)."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fetch_index_of_a_served_bundle(served: tuple[str, Path]) -> None:
    url, folder = served
    images = folder / "bundle" / "images"
    write_bundle(images, KUBEADM_1_37_2[-2:])
    index = {}
    for name in KUBEADM_1_37_2[-2:]:
        data = archive_path(images, name).read_bytes()
        index[name] = {
            "file": archive_path(images, name).relative_to(images).as_posix(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
    (images / INDEX_FILE).write_text(json.dumps(index))
    for given in (f"{url}/bundle/images", f"{url}/bundle/images/"):
        bundle = fetch_index(given)
        assert bundle.source == f"{url}/bundle/images/"
        assert bundle.is_local is False
        assert bundle.names() == sorted(KUBEADM_1_37_2[-2:])
        for archive in bundle.archives:
            assert archive.sha256 == index[archive.name]["sha256"]
            assert archive.location == index[archive.name]["file"]


def test_fetch_index_of_a_folder_without_an_index(served: tuple[str, Path]) -> None:
    url, folder = served
    write_image(folder, "registry.k8s.io/pause:3.10.2")
    with pytest.raises(BundleError) as caught:
        fetch_index(url)
    assert str(caught.value).startswith(f"{url}/images.json could not be read (")
    assert "404" in str(caught.value)


def test_fetch_index_that_is_no_index(served: tuple[str, Path]) -> None:
    url, folder = served
    (folder / INDEX_FILE).write_text("<html>a login page</html>")
    with pytest.raises(BundleError) as caught:
        fetch_index(url + "/")
    assert str(caught.value).startswith(f"{url}/images.json is not an image index (")


def test_fetch_index_of_an_unreachable_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as probe:  # a port that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BundleError) as caught:
        fetch_index(f"http://127.0.0.1:{port}/images")
    assert str(caught.value).startswith(
        f"http://127.0.0.1:{port}/images/images.json could not be read ("
    )


def test_small_image_helper_writes_what_read_names_reads(tmp_path: Path) -> None:
    # The helper the other tests rely on is itself checked once.
    write_archive(small_image("a.example/x:1"), tmp_path / "x.tar")
    assert read_names(tmp_path / "x.tar") == ["a.example/x:1"]
