"""Container image archives, written without a container engine.

An archive is an OCI image layout in one tar (oci-layout, index.json, blobs/sha256/...) that also
carries Docker's manifest.json, so that `ctr images import`, `docker load` and `skopeo` all read
it. Layers are gzip-compressed tars made reproducibly: sorted entries, owner root, time 0, so the
same content gives the same digests, and a layer shared by several images (a base filesystem) is
stored once by containerd.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from k8s_cluster.images import IMAGE_NAME, tag_of

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class File:
    """A file of a layer: content, or a symlink target; directories are implied by paths."""

    data: bytes = b""
    mode: int = 0o644
    link: str = ""


@dataclass(frozen=True)
class Layer:
    blob: bytes  # gzip-compressed tar
    diff_id: str  # sha256 of the uncompressed tar

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.blob).hexdigest()

    @classmethod
    def from_tar(cls, tar: bytes) -> Layer:
        return cls(gzip.compress(tar, compresslevel=6, mtime=0), "sha256:" + _sha256(tar))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def layer_from_files(files: Mapping[str, File]) -> Layer:
    """A layer of the given files (paths relative to /), with every parent folder."""
    return Layer.from_tar(tar_of(files))


def tar_gz(files: Mapping[str, File]) -> bytes:
    """The files as a reproducible .tar.gz (a release archive)."""
    return gzip.compress(tar_of(files), compresslevel=6, mtime=0)


def tar_of(files: Mapping[str, File]) -> bytes:
    """A reproducible tar of the files, with every parent folder."""
    folders = sorted({str(Path(p).parents[i]) for p in files for i in range(len(Path(p).parents))})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in folders:
            if folder != ".":
                tar.addfile(_info(folder + "/", tarfile.DIRTYPE, 0o755))
        for path in sorted(files):
            item = files[path]
            if item.link:
                info = _info(path, tarfile.SYMTYPE, 0o777)
                info.linkname = item.link
                tar.addfile(info)
            else:
                info = _info(path, tarfile.REGTYPE, item.mode)
                info.size = len(item.data)
                tar.addfile(info, io.BytesIO(item.data))
    return buffer.getvalue()


def layer_from_tree(root: Path, exclude: Iterable[str] = ()) -> Layer:
    """A layer of a whole folder (a root filesystem), skipping `exclude` (relative paths, whose
    folders are kept empty). Owners and modes are kept; times are set to 0."""
    skipped = {root / relative for relative in exclude}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(root, skipped):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.mtime = 0
            info.uname = info.gname = ""
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return Layer.from_tar(buffer.getvalue())


def _walk(root: Path, skipped: set[Path]) -> Iterable[Path]:
    for entry in sorted(root.iterdir()):
        mode = entry.lstat().st_mode
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            continue
        yield entry
        if stat.S_ISDIR(mode) and entry not in skipped:
            yield from _walk(entry, skipped)


@dataclass(frozen=True)
class Image:
    names: tuple[str, ...]  # full references, e.g. "registry.k8s.io/pause:3.10.2"
    layers: tuple[Layer, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    architecture: str = "amd64"

    def config(self) -> bytes:
        settings: dict[str, object] = {"Env": list(self.env), "WorkingDir": "/"}
        if self.entrypoint:
            settings["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            settings["Cmd"] = list(self.cmd)
        return _json(
            {
                "architecture": self.architecture,
                "os": "linux",
                "created": "1970-01-01T00:00:00Z",
                "config": settings,
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            }
        )


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + _sha256(data),
        "size": len(data),
        **extra,
    }


def write_archive(image: Image, path: Path) -> str:
    """Write the image's archive to `path` (atomically); returns the manifest digest."""
    config = image.config()
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": _descriptor(CONFIG_TYPE, config),
            "layers": [
                {"mediaType": LAYER_TYPE, "digest": layer.digest, "size": len(layer.blob)}
                for layer in image.layers
            ],
        }
    )
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [
                _descriptor(
                    MANIFEST_TYPE,
                    manifest,
                    annotations={IMAGE_NAME: name, REF_NAME: tag_of(name)},
                )
                for name in image.names
            ],
        }
    )
    blobs = {
        _sha256(data): data for data in (config, manifest, *(layer.blob for layer in image.layers))
    }
    docker = _json(
        [
            {
                "Config": f"blobs/sha256/{_sha256(config)}",
                "RepoTags": list(image.names),
                "Layers": [f"blobs/sha256/{layer.digest[7:]}" for layer in image.layers],
            }
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        members = {
            "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
            "index.json": index,
            "manifest.json": docker,
            **{f"blobs/sha256/{digest}": data for digest, data in sorted(blobs.items())},
        }
        for folder in ("blobs/", "blobs/sha256/"):
            tar.addfile(_info(folder, tarfile.DIRTYPE, 0o755))
        for name, data in members.items():
            info = _info(name, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(partial, path)
    return "sha256:" + _sha256(manifest)
