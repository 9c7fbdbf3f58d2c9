"""A read-only OCI registry on 127.0.0.1 serving hand-made images, for the verification tests.

Each image is a real OCI manifest with a real config blob and one gzip layer holding
``usr/bin/python3`` whose ELF header names a machine, so a result can be made wrong in each way
an engine gets it wrong: an entry labelled arm64 whose config or binaries are amd64, a missing
or duplicated platform. Blob and manifest digests are the sha256 of the served bytes, as a
registry's are, so the bytes are deterministic (gzip mtime 0) and so are the digests.

``REGISTRY`` is one server for the whole test session, started on import; any repository and tag
not added explicitly answers with :data:`STANDARD`, a correct linux/amd64 + linux/arm64 index.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MACHINES = {"amd64": 0x3E, "arm64": 0xB7, "s390x": 0x16}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def elf_header(arch: str) -> bytes:
    """The first 64 bytes of a little-endian ELF64 executable for ``arch``."""
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4], head[5], head[6] = 2, 1, 1  # 64-bit, little endian, version 1
    head[16:18] = (2).to_bytes(2, "little")  # ET_EXEC
    head[18:20] = _MACHINES[arch].to_bytes(2, "little")
    return bytes(head)


def layer(binary_arch: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/os-release", b"ID=debian\n"), ("usr/bin/python3", b"")):
            body = data or elf_header(binary_arch) + b"\0" * 64
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), 0o755, 0
            tar.addfile(info, io.BytesIO(body))
    return gzip.compress(raw.getvalue(), mtime=0)


class Store:
    """Blobs and manifests by digest, tags by (repository, tag)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # digest -> (media type, bytes)
        self.tags: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()

    def _blob(self, data: bytes) -> str:
        digest = _digest(data)
        self.blobs[digest] = data
        return digest

    def _manifest(self, media_type: str, document: Mapping[str, object]) -> tuple[str, int]:
        data = json.dumps(document, sort_keys=True).encode()
        digest = _digest(data)
        self.manifests[digest] = (media_type, data)
        return digest, len(data)

    def image(self, config_arch: str, binary_arch: str) -> tuple[str, int]:
        """One platform's manifest: config says ``config_arch``, binaries are ``binary_arch``."""
        config = json.dumps({"architecture": config_arch, "os": "linux", "rootfs": {}}).encode()
        blob = layer(binary_arch)
        return self._manifest(
            MANIFEST,
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": self._blob(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": self._blob(blob),
                        "size": len(blob),
                    }
                ],
            },
        )

    def index(self, entries: list[tuple[str, str, str]]) -> str:
        """An index of (label arch, config arch, binary arch) entries; its digest."""
        manifests = []
        for label, config_arch, binary_arch in entries:
            digest, size = self.image(config_arch, binary_arch)
            manifests.append(
                {
                    "mediaType": MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "linux", "architecture": label},
                }
            )
        digest, _ = self._manifest(
            INDEX, {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}
        )
        return digest

    def tag(self, repository: str, tag: str, digest: str) -> None:
        with self.lock:
            self.tags[(repository, tag)] = digest


STORE = Store()
STANDARD = STORE.index([("amd64", "amd64", "amd64"), ("arm64", "arm64", "arm64")])


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/v2/":
            return self._send(200, "application/json", b"{}")
        repository, kind, reference = _split(path)
        if kind == "blobs" and reference in STORE.blobs:
            return self._send(200, "application/octet-stream", STORE.blobs[reference])
        if kind == "manifests":
            digest = reference if reference.startswith("sha256:") else None
            if digest is None:
                with STORE.lock:
                    digest = STORE.tags.get((repository, reference), STANDARD)
            if digest in STORE.manifests:
                media_type, data = STORE.manifests[digest]
                return self._send(200, media_type, data)
        return self._send(404, "application/json", b'{"errors":[{"code":"NOT_FOUND"}]}')

    def _send(self, code: int, media_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _split(path: str) -> tuple[str, str, str]:
    """``/v2/a/b/manifests/ref`` -> ("a/b", "manifests", "ref")."""
    parts = path.removeprefix("/v2/").split("/")
    if len(parts) < 3:
        return "", "", ""
    return "/".join(parts[:-2]), parts[-2], parts[-1]


_SERVER = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
threading.Thread(target=_SERVER.serve_forever, daemon=True).start()
REGISTRY = f"127.0.0.1:{_SERVER.server_address[1]}"
