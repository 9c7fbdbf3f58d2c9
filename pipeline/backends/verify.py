"""Is the image what was asked for? Read a build's result back and check its platforms.

A build that exits 0 can still ship the wrong thing: a daemonless engine that finds another
architecture's base image in its store uses it, and a manifest list then has one entry, labelled
arm64, whose binaries are x86_64. So a result built for explicit platforms is read back from
where it landed (the registry it was pushed to, or the engine's local store) and checked: one
entry per requested platform, each entry's config architecture and the ELF machine of a binary
inside it matching that platform.

The checks (:func:`problems`, :func:`elf_arch`, :func:`first_elf`) are pure; the readers
(:class:`Registry`, :class:`DockerStore`, :class:`ContainersStore`) do I/O and return
:class:`PlatformEntry` values. A registry that wants credentials gets the ones the user's
``docker login`` / ``podman login`` left (:mod:`pipeline.backends.credentials`); where a result
cannot be read back (credentials we do not have) the build is reported with a warning, never as
verified.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing, suppress
from pathlib import Path
from typing import IO, Protocol

from attrs import frozen

from pipeline.backends import credentials
from pipeline.backends.process import probe, stream_stdout
from pipeline.errors import BuildError, PipelineWarning

# ssl, tarfile, gzip and urllib are imported where they are used: a plain build, which never
# reads a result back, does not pay for them

# e_machine -> GOARCH (the architecture names image configs use)
_ELF_MACHINES = {
    0x03: "386",
    0x08: "mips64",
    0x14: "ppc",
    0x15: "ppc64le",
    0x16: "s390x",
    0x28: "arm",
    0x3E: "amd64",
    0xB7: "arm64",
    0xF3: "riscv64",
}
_BIN_DIRS = ("usr/bin/", "bin/", "usr/local/bin/", "usr/sbin/", "sbin/")
_MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = _MANIFEST_TYPES[:2]
_TIMEOUT = 60


class Unreadable(Exception):
    """The result could not be read back (not: it is wrong)."""


@frozen
class PlatformEntry:
    """One image of a result as found: what its config says and what its binaries are."""

    platform: str  # as labelled (the manifest list entry, else the config): os/arch
    config: str  # os/arch from the image config
    elf: str | None  # os/arch of the first ELF binary found; None when none was found
    digest: str | None = None  # this platform's manifest digest (registry, manifest list)


def platform_digests(entries: Sequence[PlatformEntry]) -> dict[str, str]:
    """``{platform: digest}`` of the entries that have one."""
    return {e.platform: e.digest for e in entries if e.digest}


# -- pure checks -----------------------------------------------------------------------------------


def arch_of(platform: str) -> str:
    """``linux/arm64/v8`` -> ``linux/arm64`` (variants are not compared)."""
    parts = platform.split("/")
    return "/".join(parts[:2])


def elf_arch(head: bytes) -> str | None:
    """The GOARCH of an ELF file from its first 20 bytes, or None when it is not ELF."""
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    if machine == 0x08 and head[4] == 1:
        return "mips"
    return _ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")


def problems(requested: Sequence[str], entries: Sequence[PlatformEntry]) -> list[str]:
    """Everything wrong with ``entries`` for ``requested`` platforms (empty: all good)."""
    found: list[str] = []
    want = [arch_of(p) for p in requested]
    labelled = [arch_of(e.platform) for e in entries]
    missing = [p for p in want if p not in labelled]
    extra = [p for p in labelled if p not in want]
    if missing:
        found.append(f"no entry for {', '.join(missing)}")
    if extra:
        found.append(f"unrequested entries {', '.join(extra)}")
    for platform in sorted({p for p in labelled if labelled.count(p) > 1}):
        found.append(f"{labelled.count(platform)} entries for {platform}")
    for entry, label in zip(entries, labelled, strict=True):
        if arch_of(entry.config) != label:
            found.append(f"the {label} entry's config says {arch_of(entry.config)}")
        if entry.elf is not None and arch_of(entry.elf) != label:
            found.append(f"the {label} entry's binaries are {entry.elf}")
    return found


def first_elf(stream: IO[bytes]) -> str | None:
    """The architecture (os/arch) of the first executable in a tar stream (a layer, an
    export), or None. Reads sequentially and stops at the first hit."""
    import gzip
    import tarfile

    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if member.isreg() and name.startswith(_BIN_DIRS) and member.size >= 20:
                    handle = tar.extractfile(member)
                    if handle is not None and (arch := elf_arch(handle.read(20))):
                        return f"linux/{arch}"
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile):
        return None
    return None


def first_elf_in(root: Path) -> str | None:
    """The architecture of the first executable in a mounted image tree (symlinks are not
    followed: they point into the image, not into this machine)."""
    for directory in _BIN_DIRS:
        with suppress(OSError), os.scandir(root / directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if not entry.is_file(follow_symlinks=False):
                    continue
                with suppress(OSError), open(entry.path, "rb") as handle:
                    if arch := elf_arch(handle.read(20)):
                        return f"linux/{arch}"
    return None


def _config_platform(config: dict[str, object]) -> str:
    return f"{config.get('os') or config.get('Os') or '?'}/" + str(
        config.get("architecture") or config.get("Architecture") or "?"
    )


# -- registries ------------------------------------------------------------------------------------


@frozen
class Reference:
    registry: str
    repository: str
    reference: str  # tag or digest


def parse_reference(name: str) -> Reference:
    """``host[:port]/repo[:tag|@digest]`` (docker.io names get their implicit parts)."""
    rest, _, digest = name.partition("@")
    head, _, tail = rest.partition("/")
    if tail and ("." in head or ":" in head or head == "localhost"):
        registry, path = head, tail
    else:
        registry, path = "registry-1.docker.io", rest
        if "/" not in path:
            path = f"library/{path}"
    tag = "latest"
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    return Reference(registry, path, digest or tag)


def _loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry
    return host in {"localhost", "127.0.0.1", "[::1]"} or host.startswith("127.")


class Registry:
    """A read-only registry v2 client: anonymous, basic or bearer-token auth.

    Credentials are looked up on the first 401, in the files the engine ``family`` reads
    (then the other family's: :func:`credentials.read_back_files`); ``repository`` picks a
    namespace-scoped entry of a containers auth file.
    """

    def __init__(
        self,
        registry: str,
        repository: str = "",
        *,
        family: str = credentials.DOCKER,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.repository = repository
        self.family = family
        self.environ = environ
        import ssl

        self.scheme = "http" if _loopback(registry) else "https"
        self.context = ssl.create_default_context()
        self._auth: str | None = None
        self._lookup: credentials.Lookup | None = None

    def _credentials(self) -> credentials.Lookup:
        if self._lookup is None:
            files = credentials.read_back_files(self.family, self.environ)
            self._lookup = credentials.lookup(self.registry, self.repository, files=files)
        return self._lookup

    def _open(self, path: str, accept: Iterable[str] = ()) -> IO[bytes]:
        import urllib.error
        import urllib.request

        url = f"{self.scheme}://{self.registry}/v2/{path}"
        headers = {"Accept": ", ".join(accept)} if accept else {}
        for attempt in range(2):
            if self._auth:
                headers["Authorization"] = self._auth
            request = urllib.request.Request(url, headers=headers)
            try:
                return urllib.request.urlopen(request, timeout=_TIMEOUT, context=self.context)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0 and self._login(exc.headers):
                    continue
                if exc.code == 401:
                    found = self._credentials()
                    used = found.describe(self.registry)
                    sent = self._auth is not None and found.credential is not None
                    why = f"{used} were refused" if sent else f"it wants credentials; {used}"
                    raise Unreadable(f"{url}: HTTP 401: {why}") from None
                raise Unreadable(f"{url}: HTTP {exc.code}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise Unreadable(f"{url}: {exc}") from None
        raise Unreadable(f"{url}: not authorized")

    def _login(self, headers: object) -> bool:
        import urllib.error
        import urllib.parse
        import urllib.request

        challenge = str(getattr(headers, "get", lambda *_: "")("WWW-Authenticate") or "")
        credential = self._credentials().credential
        if challenge.lower().startswith("basic"):
            if credential is None:
                return False
            self._auth = credential.authorization
            return True
        if not challenge.lower().startswith("bearer"):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm.startswith("https://") and not (
            realm.startswith("http://") and _loopback(realm.split("/")[2])
        ):
            return False
        query = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in params.items())
        request = urllib.request.Request(f"{realm}?{query}")
        if credential is not None:
            request.add_header("Authorization", credential.authorization)
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT, context=self.context) as r:
                body = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        token = body.get("token") or body.get("access_token")
        if not token:
            return False
        self._auth = f"Bearer {token}"
        return True

    def manifest(self, repository: str, reference: str) -> tuple[dict[str, object], str]:
        """The manifest (or index) and the digest of its bytes."""
        with closing(self._open(f"{repository}/manifests/{reference}", _MANIFEST_TYPES)) as r:
            raw = r.read()
        try:
            return json.loads(raw), "sha256:" + hashlib.sha256(raw).hexdigest()
        except ValueError:
            raise Unreadable(f"{repository}:{reference}: the manifest is not JSON") from None

    def blob(self, repository: str, digest: str) -> IO[bytes]:
        return self._open(f"{repository}/blobs/{digest}")


def registry_entries(
    name: str, *, family: str = credentials.DOCKER, environ: Mapping[str, str] | None = None
) -> tuple[list[PlatformEntry], str]:
    """Each image behind ``name`` in its registry, and the top manifest's digest (credentials:
    those an engine of ``family`` would use in ``environ``, see :class:`Registry`)."""
    ref = parse_reference(name)
    registry = Registry(ref.registry, ref.repository, family=family, environ=environ)
    top, digest = registry.manifest(ref.repository, ref.reference)
    if top.get("mediaType") in _INDEX_TYPES or "manifests" in top:
        children = [
            (m, str(m["digest"]))
            for m in top.get("manifests", [])  # type: ignore[attr-defined]
            if isinstance(m, dict)
            # attestation manifests (buildx provenance) are not platforms
            and (m.get("annotations") or {}).get("vnd.docker.reference.type")
            != "attestation-manifest"
        ]
    else:
        children = [({}, digest)]
    entries = []
    for descriptor, child in children:
        manifest = top if child == digest else registry.manifest(ref.repository, child)[0]
        config_ref = manifest.get("config")
        if not isinstance(config_ref, dict):
            raise Unreadable(f"{name}@{child}: no config in the manifest")
        with closing(registry.blob(ref.repository, str(config_ref["digest"]))) as r:
            config = json.loads(r.read())
        label = descriptor.get("platform") or {}
        platform = (
            f"{label.get('os', '?')}/{label.get('architecture', '?')}"
            if label
            else _config_platform(config)
        )
        elf = None
        for layer in manifest.get("layers", []):  # type: ignore[attr-defined]
            if "zstd" in str(layer.get("mediaType", "")):
                continue
            with closing(registry.blob(ref.repository, str(layer["digest"]))) as r:
                elf = first_elf(r)
            if elf:
                break
        entries.append(PlatformEntry(platform, _config_platform(config), elf, child))
    return entries, digest


# -- local stores ----------------------------------------------------------------------------------


class Store(Protocol):
    """An engine's local image store: where a build's image lands on this machine."""

    binary: str

    def entries(self, tag: str, platforms: Sequence[str]) -> list[PlatformEntry]: ...

    def archive_command(self, tag: str, dest: Path) -> list[str] | None:
        """The command that writes ``tag`` as a docker-archive to ``dest``; None when
        ``BINARY save TAG`` streams it to stdout instead."""
        ...


def _run(argv: Sequence[str]) -> str:
    """``argv``'s stdout; :class:`Unreadable` (the command and its last error line) if it
    cannot start, times out or fails."""
    done = probe(argv, timeout=_TIMEOUT)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
        raise Unreadable(f"`{' '.join(argv)}`: {lines[-1]}")
    return done.stdout


class DockerStore:
    """The docker daemon's images (single-platform results: ``docker build``, buildx --load)."""

    def __init__(self, binary: str = "docker") -> None:
        self.binary = binary

    def entries(self, tag: str, platforms: Sequence[str]) -> list[PlatformEntry]:
        config = json.loads(_run([self.binary, "image", "inspect", tag]))[0]
        return [PlatformEntry(_config_platform(config), _config_platform(config), self._elf(tag))]

    def archive_command(self, tag: str, dest: Path) -> list[str] | None:
        return None  # `docker save TAG` streams the archive

    def _elf(self, tag: str) -> str | None:
        """``docker save`` streamed: the first layer's first executable (stops reading early)."""
        with stream_stdout([self.binary, "save", tag], read_to_end=False) as saved:
            return _elf_in_saved(saved)


def _elf_in_saved(stream: IO[bytes]) -> str | None:
    """A ``docker save`` / OCI archive: tar of layer tars (and JSON files, skipped)."""
    import tarfile

    try:
        with tarfile.open(fileobj=stream, mode="r|") as outer:
            for member in outer:
                if not member.isreg() or member.size < 1024 or member.name.endswith(".json"):
                    continue
                handle = outer.extractfile(member)
                if handle is not None and (elf := first_elf(handle)):
                    return elf
    except (tarfile.TarError, OSError):
        return None
    return None


class ContainersStore:
    """containers-storage through podman: manifest lists and their images."""

    def __init__(self, binary: str = "podman") -> None:
        self.binary = binary

    def archive_command(self, tag: str, dest: Path) -> list[str] | None:
        return [self.binary, "save", "--quiet", "--format", "docker-archive", "-o", str(dest), tag]

    def entries(self, tag: str, platforms: Sequence[str]) -> list[PlatformEntry]:
        if len(platforms) > 1:
            listing = json.loads(_run([self.binary, "manifest", "inspect", tag]))
            name = tag.split("@")[0]
            if ":" in name.rsplit("/", 1)[-1]:
                name = name.rsplit(":", 1)[0]
            found = []
            for m in listing.get("manifests", []):
                label = m.get("platform") or {}
                image = f"{name}@{m['digest']}"
                config, elf = self._image(image)
                found.append(PlatformEntry(
                    f"{label.get('os', '?')}/{label.get('architecture', '?')}", config, elf,
                    str(m["digest"]),
                ))  # fmt: skip
            return found
        config, elf = self._image(tag)
        return [PlatformEntry(config, config, elf)]

    def _image(self, image: str) -> tuple[str, str | None]:
        data = json.loads(_run([self.binary, "image", "inspect", image]))[0]
        config = _config_platform(data)
        root = _run([self.binary, "image", "mount", image]).strip()
        try:
            return config, first_elf_in(Path(root))
        finally:
            with suppress(Unreadable):
                _run([self.binary, "image", "unmount", image])


class BuildahStore(ContainersStore):
    """containers-storage through buildah: it has no ``image mount`` (a working container is
    mounted and removed) and writes archives with ``push``."""

    def __init__(self, binary: str = "buildah") -> None:
        super().__init__(binary)

    def archive_command(self, tag: str, dest: Path) -> list[str] | None:
        return [self.binary, "push", "--quiet", tag, f"docker-archive:{dest}:{tag}"]

    def _image(self, image: str) -> tuple[str, str | None]:
        data = json.loads(_run([self.binary, "inspect", "--type", "image", image]))
        config = _config_platform(data.get("OCIv1") or {})
        container = _run([self.binary, "from", "--pull=never", "--quiet", image]).strip()
        try:
            root = _run([self.binary, "mount", container]).strip()
            return config, first_elf_in(Path(root))
        finally:
            with suppress(Unreadable):
                _run([self.binary, "rm", container])


def describe(entries: Sequence[PlatformEntry]) -> str:
    return "; ".join(
        f"{e.platform} (config {e.config}, binaries {e.elf or 'not found'})" for e in entries
    )


def check_pushed(
    name: str,
    requested: Sequence[str],
    digest: str | None,
    *,
    family: str = credentials.DOCKER,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], list[PlatformEntry], str]:
    """What is wrong with ``name`` in its registry, what it holds, and its digest there
    (``digest``: what the engine reported; it must be the registry's)."""
    entries, actual = registry_entries(name, family=family, environ=environ)
    found = problems(requested, entries)
    if digest is not None and digest != actual:
        found.append(f"the registry has {actual} under {name}, the engine reported {digest}")
    return found, entries, actual


def warn_unverified(tag: str, reason: str) -> None:
    warnings.warn(
        f"could not read {tag} back to check its platforms ({reason}); it is not verified",
        PipelineWarning,
        stacklevel=3,
    )


def wrong_result(
    backend: str,
    tag: str,
    requested: Sequence[str],
    found: Sequence[str],
    entries: Sequence[PlatformEntry],
    *,
    pushed: bool,
) -> BuildError:
    where = "the registry holds it" if pushed else "its local tags were removed"
    return BuildError(
        f"the image {tag} is not what was asked for ({', '.join(requested)}): "
        f"{'; '.join(found)}; {where}",
        backend=backend,
        output_tail=[f"found: {describe(entries) or 'no images'}"],
        hint="an engine that finds a base image of another architecture in its local store "
        "may use it for every platform: remove that base image (or build with --pull) and "
        "build again",
    )
