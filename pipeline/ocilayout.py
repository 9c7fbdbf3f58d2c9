"""A base image's bytes on disk: deterministic layer tars, the OCI image layout, and archives.

:func:`write_layer` tars a root filesystem into a gzip layer whose digest depends only on its
content and ``SOURCE_DATE_EPOCH``; :func:`write_oci_layout` writes the OCI image layout (blobs,
manifests, an image index for several platforms) from the documents :mod:`pipeline.basespec`
computes; :func:`tar_directory` packs a layout as an OCI archive or, with
:func:`docker_archive_manifest`, as a docker-archive for ``docker load``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.basespec import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME,
    BaseImageSpec,
    LayerBlob,
    Platform,
    canonical_json,
    descriptor,
    image_config,
    platform_descriptor,
)

# Files the bootstrap copies from the host, or that engines mount at run time anyway.
EXCLUDED_FILES = frozenset({"etc/resolv.conf", "etc/hostname", "etc/hosts"})
# Directories kept in the image but emptied (devices, kernel views, scratch space).
EMPTIED_DIRS = frozenset({"dev", "proc", "sys", "tmp", "run", "var/tmp", "var/cache/apt"})


class _Sink(Protocol):
    def write(self, data: Any, /) -> Any: ...


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: _Sink | None) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += len(view)
        if self.sink is not None:
            self.sink.write(view)
        return len(view)


def _walk_sorted(root: Path, rel: str = "") -> Iterator[tuple[str, os.stat_result, Path]]:
    entries = sorted(os.scandir(root / rel) if rel else os.scandir(root), key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        if path in EXCLUDED_FILES:
            continue
        yield path, st, Path(entry.path)
        if stat.S_ISDIR(st.st_mode) and path not in EMPTIED_DIRS:
            yield from _walk_sorted(root, path)


def write_layer(
    rootfs: Path, blob_path: Path, *, source_date_epoch: int | None
) -> tuple[str, str, int]:
    """Tar ``rootfs`` deterministically into a gzip blob; return (digest, diff_id, size).

    Entries are sorted, owners numeric without names, mtimes clamped to ``SOURCE_DATE_EPOCH``,
    device nodes and host files left out, gzip header without name or time.
    """
    with blob_path.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                seen: dict[tuple[int, int], str] = {}
                for name, st, path in _walk_sorted(rootfs):
                    info = tarfile.TarInfo(name)
                    info.mode = stat.S_IMODE(st.st_mode)
                    info.uid, info.gid = st.st_uid, st.st_gid
                    info.uname = info.gname = ""
                    mtime = int(st.st_mtime)
                    if source_date_epoch is not None:
                        mtime = min(mtime, source_date_epoch)
                    info.mtime = mtime
                    if stat.S_ISDIR(st.st_mode):
                        info.type = tarfile.DIRTYPE
                        tar.addfile(info)
                    elif stat.S_ISLNK(st.st_mode):
                        info.type = tarfile.SYMTYPE
                        info.linkname = os.readlink(path)
                        tar.addfile(info)
                    elif stat.S_ISREG(st.st_mode):
                        key = (st.st_dev, st.st_ino)
                        if st.st_nlink > 1 and key in seen:
                            info.type = tarfile.LNKTYPE
                            info.linkname = seen[key]
                            tar.addfile(info)
                            continue
                        seen[key] = name
                        info.size = st.st_size
                        with path.open("rb") as handle:
                            tar.addfile(info, handle)
                    # devices, fifos and sockets are left out: engines provide /dev
    return (
        "sha256:" + compressed.sha.hexdigest(),
        "sha256:" + uncompressed.sha.hexdigest(),
        compressed.size,
    )


def write_oci_layout(
    spec: BaseImageSpec,
    layers: Sequence[tuple[Platform, LayerBlob]],
    layout: Path,
    *,
    created: str,
) -> tuple[str, list[dict[str, Any]]]:
    """An OCI image layout in ``layout``; returns the top digest and per-platform manifests.

    One platform: ``index.json`` points at its manifest. Several: at an image index listing
    one manifest per platform. Either way the top entry carries the tag as ref name.
    """
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> None:
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)

    manifests: list[dict[str, Any]] = []
    for platform, layer in layers:
        target = blobs / layer.digest.split(":", 1)[1]
        if not target.exists():
            shutil.copyfile(layer.path, target)
        config = canonical_json(image_config(spec, platform, layer, created))
        put(config)
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config),
                "layers": [
                    {"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}
                ],
            }
        )
        put(manifest)
        manifests.append(
            {
                **descriptor(OCI_MANIFEST, manifest),
                "platform": platform_descriptor(platform),
                "config_digest": descriptor(OCI_CONFIG, config)["digest"],
                "layer_digest": layer.digest,
            }
        )
    plain = [
        {k: v for k, v in m.items() if k not in ("config_digest", "layer_digest")}
        for m in manifests
    ]
    if len(plain) == 1:
        top = dict(plain[0])
    else:
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": plain})
        put(index)
        top = descriptor(OCI_INDEX, index)
    top["annotations"] = {REF_NAME: "latest"}
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_bytes(
        canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]})
    )
    return top["digest"], manifests


def tar_directory(
    source: Path,
    dest: Path,
    *,
    mtime: int,
    extra: Mapping[str, bytes] = {},
    skip: frozenset[str] = frozenset(),
) -> None:
    """A deterministic tar of ``source`` (plus ``extra`` files, minus ``skip``) at ``dest``,
    all-or-nothing."""
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            files = {
                str(p.relative_to(source)): p for p in sorted(source.rglob("*")) if p.is_file()
            }
            names = sorted({*files, *extra} - skip)
            dirs = sorted({str(parent) for n in names for parent in Path(n).parents} - {"."})
            for name in [*dirs]:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                tar.addfile(info)
            for name in names:
                data = extra.get(name)
                info = tarfile.TarInfo(name)
                info.mode, info.mtime = 0o644, mtime
                if data is not None:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    info.size = files[name].stat().st_size
                    with files[name].open("rb") as handle:
                        tar.addfile(info, handle)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def docker_archive_manifest(tag: str, manifest: Mapping[str, Any]) -> bytes:
    """``manifest.json`` of the docker-archive format, pointing into the OCI blobs."""
    config = "blobs/sha256/" + manifest["config_digest"].split(":", 1)[1]
    layer = "blobs/sha256/" + manifest["layer_digest"].split(":", 1)[1]
    return json.dumps([{"Config": config, "RepoTags": [tag], "Layers": [layer]}]).encode()
