"""Unit tests of k8s_bundle.images: image archives checked with the standard library only."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from k8s_bundle.images import (
    CONFIG_TYPE,
    LAYER_TYPE,
    MANIFEST_TYPE,
    File,
    Image,
    layer_from_files,
    layer_from_tree,
    write_archive,
)
from k8s_cluster.images import read_names


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def members_of(path: Path) -> dict[str, bytes]:
    """Regular files of a tar by name."""
    with tarfile.open(path) as tar:
        return {
            member.name: tar.extractfile(member).read()
            for member in tar.getmembers()
            if member.isfile()
        }


def layer_entries(blob: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {member.name: member for member in tar.getmembers()}


def tool_image() -> Image:
    base = layer_from_files(
        {"etc/passwd": File(b"root:x:0:0:root:/root:/sbin/nologin\n"), "tmp/.keep": File()}
    )
    tool = layer_from_files(
        {
            "usr/local/bin/tool": File(b"#!/bin/sh\necho tool\n", 0o755),
            "usr/bin/tool": File(link="../local/bin/tool"),
        }
    )
    return Image(
        ("registry.example.com/team/tool:v1.2.3", "localhost/tool:latest"),
        (base, tool),
        entrypoint=("/usr/local/bin/tool",),
        cmd=("serve",),
    )


def test_archive_is_a_valid_oci_layout_and_docker_archive(tmp_path: Path) -> None:
    image = tool_image()
    path = tmp_path / "out" / "tool.tar"
    digest = write_archive(image, path)
    files = members_of(path)

    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    blobs = {name: data for name, data in files.items() if name.startswith("blobs/sha256/")}
    for name, data in blobs.items():
        assert name == f"blobs/sha256/{sha256(data)}"
    assert set(files) == {"oci-layout", "index.json", "manifest.json", *blobs}

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == list(
        image.names
    )
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "v1.2.3",
        "latest",
    ]
    for descriptor in index["manifests"]:
        assert descriptor["mediaType"] == MANIFEST_TYPE
        assert descriptor["digest"] == digest
    manifest_data = blobs[f"blobs/sha256/{digest.removeprefix('sha256:')}"]
    assert index["manifests"][0]["size"] == len(manifest_data)
    manifest = json.loads(manifest_data)
    assert manifest["schemaVersion"] == 2
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    config_data = blobs[f"blobs/sha256/{manifest['config']['digest'].removeprefix('sha256:')}"]
    assert manifest["config"]["size"] == len(config_data)
    config = json.loads(config_data)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/tool"]
    assert config["config"]["Cmd"] == ["serve"]

    layers = []
    for descriptor in manifest["layers"]:
        assert descriptor["mediaType"] == LAYER_TYPE
        blob = blobs[f"blobs/sha256/{descriptor['digest'].removeprefix('sha256:')}"]
        assert descriptor["size"] == len(blob)
        layers.append(blob)
    assert len(layers) == 2
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": ["sha256:" + sha256(gzip.decompress(blob)) for blob in layers],
    }

    docker = json.loads(files["manifest.json"])
    assert len(docker) == 1
    assert docker[0]["RepoTags"] == list(image.names)
    assert docker[0]["Config"] == f"blobs/sha256/{sha256(config_data)}"
    assert docker[0]["Layers"] == [f"blobs/sha256/{sha256(blob)}" for blob in layers]
    assert read_names(path) == list(image.names)
    assert not list(path.parent.glob(".*partial"))


def test_the_same_image_gives_the_same_archive(tmp_path: Path) -> None:
    first = write_archive(tool_image(), tmp_path / "a.tar")
    second = write_archive(tool_image(), tmp_path / "b.tar")
    assert first == second
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_layers_do_not_depend_on_the_order_files_are_given() -> None:
    files = {"b/2": File(b"2"), "a/1": File(b"1"), "c": File(link="a/1")}
    reordered = dict(reversed(list(files.items())))
    assert layer_from_files(files) == layer_from_files(reordered)
    assert layer_from_files(files) != layer_from_files({**files, "b/2": File(b"two")})


def test_layer_from_files_has_parent_folders_and_symlinks() -> None:
    layer = layer_from_files(
        {
            "usr/local/bin/tool": File(b"#!/bin/sh\n", 0o755),
            "usr/bin/tool": File(link="../local/bin/tool"),
            "etc/passwd": File(b"root:x:0:0::/:/bin/sh\n"),
        }
    )
    assert layer.diff_id == "sha256:" + sha256(gzip.decompress(layer.blob))
    assert layer.digest == "sha256:" + sha256(layer.blob)
    # Reproducible: the gzip header carries no time (MTIME, bytes 4 to 7, is 0).
    assert layer.blob[:2] == b"\x1f\x8b"
    assert layer.blob[4:8] == b"\0\0\0\0"
    entries = layer_entries(layer.blob)
    assert set(entries) == {
        "etc",
        "etc/passwd",
        "usr",
        "usr/bin",
        "usr/bin/tool",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/tool",
    }
    for folder in ("etc", "usr", "usr/bin", "usr/local", "usr/local/bin"):
        assert entries[folder].isdir()
        assert entries[folder].mode == 0o755
    assert entries["usr/bin/tool"].issym()
    assert entries["usr/bin/tool"].linkname == "../local/bin/tool"
    assert entries["usr/local/bin/tool"].isreg()
    assert entries["usr/local/bin/tool"].mode == 0o755
    assert entries["etc/passwd"].mode == 0o644
    for entry in entries.values():
        assert (entry.mtime, entry.uid, entry.gid, entry.uname) == (0, 0, 0, "root")
    # Folders come before what they hold.
    names = list(entries)
    for name in names:
        if "/" in name:
            assert names.index(name.rsplit("/", 1)[0]) < names.index(name)


def test_layer_from_tree_keeps_excluded_folders_empty(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "usr" / "share" / "doc" / "pkg").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "pkg" / "copyright").write_text("c\n")
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "sbin" / "iptables").write_bytes(b"\x7fELF")
    os.chmod(root / "usr" / "sbin" / "iptables", 0o755)
    (root / "sbin").symlink_to("usr/sbin")
    os.mkfifo(root / "fifo")
    layer = layer_from_tree(root, exclude=["usr/share/doc"])
    entries = layer_entries(layer.blob)
    assert set(entries) == {
        "sbin",
        "usr",
        "usr/sbin",
        "usr/sbin/iptables",
        "usr/share",
        "usr/share/doc",
    }
    assert entries["sbin"].issym() and entries["sbin"].linkname == "usr/sbin"
    assert entries["usr/sbin/iptables"].mode == 0o755
    assert all(entry.mtime == 0 for entry in entries.values())
    os.utime(root / "usr" / "sbin" / "iptables", (1, 1))
    assert layer_from_tree(root, exclude=["usr/share/doc"]) == layer
