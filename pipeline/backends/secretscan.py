"""``--check-secrets``: scan a built image for the bytes of the build's secrets.

The image is read as its engine exports it (``docker save``; podman/buildah write a
docker-archive to a private file): every layer, every file in each layer (also files a later
layer deletes, which the final filesystem no longer shows), the image config (env, labels,
history) and the manifests. A secret is looked for in every form that output redaction masks
(:func:`pipeline.redaction.secret_forms`: as given, stripped, each line of a multi-line value;
forms under :data:`~pipeline.redaction.MIN_LENGTH` bytes would match by chance and are not
looked for). Where one is found is reported by secret id, layer and path, never by value.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from pipeline.backends.process import probe, stream_stdout
from pipeline.backends.verify import Store
from pipeline.redaction import secret_forms

_CHUNK = 1 << 20


def needles(secrets: Mapping[str, bytes]) -> dict[str, tuple[bytes, ...]]:
    """Secret id -> the byte strings to look for: its whole-value forms
    (:func:`pipeline.redaction.secret_forms` without single lines). A secret without one is
    not looked for."""
    return {sid: forms for sid, raw in secrets.items() if (forms := secret_forms(raw, lines=False))}


def _search(stream: IO[bytes], wanted: Mapping[str, tuple[bytes, ...]]) -> set[str]:
    """Ids of the secrets whose bytes occur in ``stream`` (read in chunks, with overlap)."""
    longest = max((len(f) for forms in wanted.values() for f in forms), default=0)
    hits: set[str] = set()
    tail = b""
    while chunk := stream.read(_CHUNK):
        window = tail + chunk
        for sid, forms in wanted.items():
            if sid not in hits and any(form in window for form in forms):
                hits.add(sid)
        tail = window[-(longest - 1) :] if longest > 1 else b""
    return hits


class _Prefixed(io.RawIOBase):
    """``prefix`` (already read) followed by the rest of ``rest``: a stream read only once."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# gzip, bzip2, xz; a plain tar has "ustar" at offset 257
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


def _is_tar(head: bytes) -> bool:
    return head.startswith(_COMPRESSED) or head[257:262] == b"ustar"


def scan_archive(stream: IO[bytes], wanted: Mapping[str, tuple[bytes, ...]]) -> list[str]:
    """Where secrets occur in a docker-archive or OCI archive: ``"'ID' in LAYER: PATH"`` or
    ``"'ID' in FILE"`` (config, manifest), in archive order."""
    findings: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            if not member.isreg():
                continue
            handle = outer.extractfile(member)
            if handle is None:
                continue
            head = handle.read(_CHUNK)
            whole = io.BufferedReader(_Prefixed(head, handle), _CHUNK)
            if _is_tar(head):
                findings += _layer_findings(whole, member.name, wanted)
            else:  # the config (env, labels, history), a manifest, an index
                findings += [f"{sid!r} in {member.name}" for sid in _search(whole, wanted)]
    return findings


def _layer_findings(
    handle: IO[bytes], name: str, wanted: Mapping[str, tuple[bytes, ...]]
) -> list[str]:
    """Findings in one layer tar (plain or compressed): file contents, names, link targets."""
    found: list[str] = []
    try:
        with tarfile.open(fileobj=handle, mode="r|*") as layer:
            for member in layer:
                text = f"{member.name}\0{member.linkname}".encode("utf-8", "replace")
                for sid, forms in wanted.items():
                    if any(form in text for form in forms):
                        found.append(f"{sid!r} in {name}: the name of {member.name}")
                if member.isreg():
                    content = layer.extractfile(member)
                    if content is not None:
                        hits = _search(content, wanted)
                        found += [f"{sid!r} in {name}: {member.name}" for sid in sorted(hits)]
    except (tarfile.TarError, OSError, EOFError) as exc:
        found.append(f"(layer {name} could not be read to the end: {exc})")
    return found


_EXPORT_TIMEOUT = 600


def scan_image(store: Store, tag: str, secrets: Mapping[str, bytes]) -> list[str]:
    """Findings for ``tag`` in an engine's local ``store`` (docker, podman, buildah).

    Raises OSError, or subprocess.CalledProcessError or TimeoutExpired, when the image cannot
    be exported."""
    wanted = needles(secrets)
    if not wanted:
        return []
    with tempfile.TemporaryDirectory(prefix="pipeline-scan-") as private:
        dest = Path(private) / "image.tar"
        argv = store.archive_command(tag, dest)
        if argv is None:
            with stream_stdout([store.binary, "save", tag]) as saved:  # read to the end, or raises
                return scan_archive(saved, wanted)
        done = probe(argv, timeout=_EXPORT_TIMEOUT)
        if done.timed_out:
            raise subprocess.TimeoutExpired(argv, _EXPORT_TIMEOUT, done.stdout, done.stderr)
        if done.returncode is None:
            raise OSError(done.stderr)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
        with dest.open("rb") as handle:
            return scan_archive(handle, wanted)


def describe(findings: Iterable[str]) -> str:
    shown = list(findings)
    more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
    return "; ".join(shown[:5]) + more
