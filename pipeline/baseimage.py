"""Python base images built from Debian packages, without any container registry.

``python -m pipeline base-image`` bootstraps a minimal Debian root filesystem with mmdebstrap
(python3, python3-venv, pip, ca-certificates), lays it out like the official
``python:X.Y-slim`` images (``python``/``python3``/``pip`` in ``/usr/local/bin``, pip installs
allowed, ``LANG=C.UTF-8``, ``CMD ["python3"]``), and writes the OCI image itself: one
deterministic layer per platform, an image config, a manifest per platform and an image index
when several platforms are given. The result is loaded into a local engine, written as an OCI
archive, or pushed to a registry (a manifest list for several platforms).

The pure part (:func:`resolve_spec`, :func:`mmdebstrap_argv`, :func:`image_config`, ...) only
computes values; :func:`build_base_image` is the effectful shell. See docs/base-image.md.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from attrs import field, frozen

from pipeline.backends.process import probe, run_lines
from pipeline.errors import BackendError, BuildError, ConfigError, allowed, did_you_mean

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
SNAPSHOT_MIRROR = "http://snapshot.debian.org/archive/debian/{timestamp}"
SNAPSHOT_SECURITY_MIRROR = "http://snapshot.debian.org/archive/debian-security/{timestamp}"
PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-venv",
    "python3-pip",
    "ca-certificates",
    "python-is-python3",
)
# What "slim" means in Debian's own container images: no man pages, docs (but keep the
# copyright files), info pages or translations.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
EXTRA_CA_DIR = "usr/local/share/ca-certificates/pipeline-base-image"
# Files the bootstrap copies from the host, or that engines mount at run time anyway.
EXCLUDED_FILES = frozenset({"etc/resolv.conf", "etc/hostname", "etc/hosts"})
# Directories kept in the image but emptied (devices, kernel views, scratch space).
EMPTIED_DIRS = frozenset({"dev", "proc", "sys", "tmp", "run", "var/tmp", "var/cache/apt"})
CACHE_FORMAT = "1"  # bump when the layer recipe changes, so old cache entries are not reused

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

CERT_BEGIN = "-----BEGIN CERTIFICATE-----"
CERT_END = "-----END CERTIFICATE-----"


@frozen
class Suite:
    """A Debian release the command can bootstrap."""

    name: str
    python: str  # major.minor of its python3
    security_suite: str  # name of its security updates suite
    externally_managed: bool  # ships PEP 668 EXTERNALLY-MANAGED (pip refuses system installs)


SUITES: Mapping[str, Suite] = {
    s.name: s
    for s in (
        Suite("bookworm", "3.11", "bookworm-security", True),
        Suite("trixie", "3.13", "trixie-security", True),
        Suite("bullseye", "3.9", "bullseye-security", False),
    )
}
DEFAULT_SUITE = "bookworm"


@frozen
class Platform:
    """An OCI platform and how Debian and binfmt name it."""

    name: str  # linux/amd64
    deb_arch: str  # amd64
    oci_arch: str  # amd64
    variant: str | None  # v8 for arm64
    qemu: str  # binfmt_misc entry that runs it when it is not the host's (qemu-aarch64)
    machine: str  # `uname -m` inside (x86_64)


PLATFORMS: Mapping[str, Platform] = {
    p.name: p
    for p in (
        Platform("linux/amd64", "amd64", "amd64", None, "qemu-x86_64", "x86_64"),
        Platform("linux/arm64", "arm64", "arm64", "v8", "qemu-aarch64", "aarch64"),
    )
}
PLATFORM_ALIASES: Mapping[str, str] = {
    "amd64": "linux/amd64",
    "x86_64": "linux/amd64",
    "linux/x86_64": "linux/amd64",
    "arm64": "linux/arm64",
    "aarch64": "linux/arm64",
    "linux/aarch64": "linux/arm64",
    "linux/arm64/v8": "linux/arm64",
}
OUTPUT_KINDS = ("load", "oci-archive", "push")
ENGINES = ("docker", "podman")


@frozen
class Output:
    """Where the finished image goes: a local engine, an OCI archive file or a registry."""

    kind: str  # one of OUTPUT_KINDS
    target: str  # engine name, archive path or image reference
    tls_verify: bool = True  # for push


@frozen
class BaseImageSpec:
    """Everything a base image build needs, validated. Build it with :func:`resolve_spec`."""

    suite: Suite
    platforms: tuple[Platform, ...]
    tag: str
    outputs: tuple[Output, ...]
    mirror: str = DEFAULT_MIRROR
    security_mirror: str | None = DEFAULT_SECURITY_MIRROR
    snapshot: str | None = None
    ca_certs: tuple[str, ...] = ()  # PEM certificate blocks to add to the image's trust store
    source_date_epoch: int | None = None
    packages: tuple[str, ...] = PACKAGES
    labels: Mapping[str, str] = field(factory=dict)

    def apt_sources(self) -> tuple[str, ...]:
        """One-line apt sources for the bootstrap (and for the image's own apt)."""
        options = "[check-valid-until=no] " if self.snapshot else ""
        suite = self.suite.name
        lines = [f"deb {options}{self.mirror} {suite} main"]
        if not self.snapshot and self.mirror == DEFAULT_MIRROR:
            lines.append(f"deb {self.mirror} {suite}-updates main")
        if self.security_mirror:
            lines.append(f"deb {options}{self.security_mirror} {self.suite.security_suite} main")
        return tuple(lines)


@frozen
class LayerBlob:
    """A gzip layer blob on disk with its digests."""

    path: Path
    digest: str  # sha256:... of the compressed blob
    diff_id: str  # sha256:... of the uncompressed tar
    size: int
    python_version: str  # e.g. 3.11.2, from the rootfs' dpkg status


@frozen
class BaseImageResult:
    tag: str
    platforms: tuple[str, ...]
    digest: str  # of the manifest (one platform) or the image index (several)
    outputs: tuple[Output, ...]
    layout: Path | None = None  # OCI layout directory, when kept


# ---------------------------------------------------------------------------------- pure core


def parse_platforms(text: str) -> tuple[Platform, ...]:
    """``linux/amd64,linux/arm64`` -> platforms, in order, without duplicates."""
    result: list[Platform] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        name = PLATFORM_ALIASES.get(name, name)
        if name not in PLATFORMS:
            raise ConfigError(
                f"unsupported platform {raw.strip()!r}{did_you_mean(name, PLATFORMS)}; "
                f"allowed: {allowed(PLATFORMS)}",
                field="--platform",
            )
        if PLATFORMS[name] not in result:
            result.append(PLATFORMS[name])
    if not result:
        raise ConfigError(f"no platform given; allowed: {allowed(PLATFORMS)}", field="--platform")
    return tuple(result)


def host_platform() -> Platform:
    machine = os.uname().machine
    for platform in PLATFORMS.values():
        if platform.machine == machine:
            return platform
    raise BackendError(f"this machine's architecture {machine!r} is not supported")


def split_pem_certificates(text: str, *, source: str) -> tuple[str, ...]:
    """The PEM certificate blocks in ``text`` (normalised), or a ConfigError naming ``source``."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == CERT_BEGIN:
            current = [stripped]
        elif stripped == CERT_END and current is not None:
            current.append(stripped)
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None and stripped:
            current.append(stripped)
    if not blocks:
        raise ConfigError(
            "no PEM certificate found (expected a '-----BEGIN CERTIFICATE-----' block)",
            file=source,
            field="--ca-cert",
        )
    return tuple(dict.fromkeys(blocks))


def parse_source_date_epoch(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        epoch = int(value)
    except ValueError:
        epoch = -1
    if epoch < 0:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH must be a non-negative integer (seconds since 1970), got {value!r}",
            field="SOURCE_DATE_EPOCH",
        )
    return epoch


def default_tag(suite: Suite) -> str:
    return f"python:{suite.python}-slim"


def resolve_spec(
    *,
    suite: str = DEFAULT_SUITE,
    platforms: str | None = None,
    tag: str | None = None,
    load: str | None = None,
    oci_archive: str | None = None,
    push: str | None = None,
    tls_verify: bool | None = None,
    mirror: str | None = None,
    security_mirror: str | None = None,
    snapshot: str | None = None,
    ca_cert_files: Sequence[str] = (),
    source_date_epoch: str | None = None,
) -> BaseImageSpec:
    """Validate command-line values into a :class:`BaseImageSpec` (reads only the CA files)."""
    key = suite.strip().lower()
    if key not in SUITES:
        raise ConfigError(
            f"unknown suite {suite!r}{did_you_mean(key, SUITES)}; allowed: {allowed(SUITES)}",
            field="--suite",
        )
    the_suite = SUITES[key]
    the_platforms = parse_platforms(platforms) if platforms else (host_platform(),)

    if snapshot is not None:
        snapshot = _validate_snapshot(snapshot)
        if mirror is not None:
            raise ConfigError("give either --mirror or --snapshot, not both", field="--snapshot")
    the_mirror = _validate_url(mirror, "--mirror") if mirror else None
    if snapshot:
        the_mirror = SNAPSHOT_MIRROR.format(timestamp=snapshot)
        the_security: str | None = SNAPSHOT_SECURITY_MIRROR.format(timestamp=snapshot)
    elif security_mirror is not None:
        the_security = (
            None
            if security_mirror in ("", "none")
            else _validate_url(security_mirror, "--security-mirror")
        )
    else:
        # A custom mirror usually has no security archive next to it; only add Debian's own
        # security mirror when the main archive is Debian's own too.
        the_security = DEFAULT_SECURITY_MIRROR if the_mirror is None else None

    outputs: list[Output] = []
    if push:
        _validate_reference(push, "--push")
        verify = tls_verify if tls_verify is not None else not _is_loopback_reference(push)
        outputs.append(Output("push", push, verify))
    if oci_archive:
        outputs.append(Output("oci-archive", oci_archive))
    if load is not None:
        if load not in ENGINES:
            raise ConfigError(
                f"unknown engine {load!r}{did_you_mean(load, ENGINES)}; "
                f"allowed: {allowed(ENGINES)}",
                field="--load",
            )
        outputs.append(Output("load", load))
    if not outputs:
        outputs.append(Output("load", "auto"))
    if any(o.kind == "load" for o in outputs) and len(the_platforms) > 1:
        raise ConfigError(
            "a local engine holds one platform per tag; give one --platform to load, or use "
            "--push REF / --oci-archive FILE for a multi-platform image",
            field="--platform",
        )

    certs: list[str] = []
    for name in ca_cert_files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(
                f"cannot read CA certificate file: {exc.strerror}", file=name, field="--ca-cert"
            ) from None
        certs.extend(split_pem_certificates(text, source=name))

    the_tag = tag or default_tag(the_suite)
    _validate_reference(the_tag, "--tag")
    return BaseImageSpec(
        suite=the_suite,
        platforms=the_platforms,
        tag=the_tag,
        outputs=tuple(outputs),
        mirror=the_mirror or DEFAULT_MIRROR,
        security_mirror=the_security,
        snapshot=snapshot,
        ca_certs=tuple(dict.fromkeys(certs)),
        source_date_epoch=parse_source_date_epoch(source_date_epoch),
    )


def _validate_snapshot(value: str) -> str:
    """Accept ``20250520T000000Z`` or ``20250520``."""
    text = value.strip().upper()
    if len(text) == 8 and text.isdigit():
        text += "T000000Z"
    try:
        datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise ConfigError(
            f"snapshot timestamp {value!r} is not YYYYMMDD or YYYYMMDDTHHMMSSZ "
            "(e.g. 20250520T000000Z)",
            field="--snapshot",
        ) from None
    return text


def _validate_url(value: str, option: str) -> str:
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://", "file:/")):
        raise ConfigError(
            f"mirror {value!r} is not an http://, https:// or file:/ URL", field=option
        )
    return url


def _validate_reference(ref: str, option: str) -> None:
    bad = [c for c in ref if c.isspace() or c in "\"'\\$`;|&<>"]
    last = ref.rsplit("/", 1)[-1]
    if not ref or bad or ref.startswith(("-", "/")) or last.startswith(":") or ref.endswith(":"):
        raise ConfigError(
            f"{ref!r} is not an image reference like 'registry:5000/name:tag' or 'name:tag'",
            field=option,
        )


def _is_loopback_reference(ref: str) -> bool:
    host = ref.split("/", 1)[0] if "/" in ref else ""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return hostname in ("localhost", "127.0.0.1", "[::1]") or hostname.startswith("127.")


def mmdebstrap_argv(spec: BaseImageSpec, platform: Platform, dest: Path) -> list[str]:
    """The mmdebstrap command that bootstraps ``platform``'s rootfs into the directory ``dest``."""
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--format=directory",
        "--variant=minbase",
        f"--arch={platform.deb_arch}",
        f"--include={','.join(spec.packages)}",
        "--aptopt=Acquire::Retries 3",
    ]
    if spec.snapshot:
        argv.append("--aptopt=Acquire::Check-Valid-Until false")
    argv += [f"--dpkgopt={opt}" for opt in DPKG_OPTIONS]
    argv += [spec.suite.name, str(dest), *spec.apt_sources()]
    return argv


def release_urls(spec: BaseImageSpec) -> list[tuple[str, str]]:
    """(option, URL) of the files that prove the mirrors serve the suite, checked first."""
    urls = [("--mirror", f"{spec.mirror}/dists/{spec.suite.name}/InRelease")]
    if spec.security_mirror:
        urls.append(
            (
                "--security-mirror",
                f"{spec.security_mirror}/dists/{spec.suite.security_suite}/InRelease",
            )
        )
    return urls


def image_env(spec: BaseImageSpec, python_version: str) -> list[str]:
    env = [f"PATH={IMAGE_PATH}", "LANG=C.UTF-8", f"PYTHON_VERSION={python_version}"]
    if spec.ca_certs:
        # Debian's pip already uses the system store; these make pip in a venv (certifi),
        # requests and uv trust it too, so the extra CA works for every installer.
        env += [
            f"PIP_CERT={SYSTEM_CA_BUNDLE}",
            f"REQUESTS_CA_BUNDLE={SYSTEM_CA_BUNDLE}",
            f"SSL_CERT_FILE={SYSTEM_CA_BUNDLE}",
            "UV_NATIVE_TLS=1",
        ]
    return env


def created_timestamp(epoch: int | None, now: float | None = None) -> str:
    moment = epoch if epoch is not None else int(now if now is not None else _now())
    return datetime.datetime.fromtimestamp(moment, tz=datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _now() -> float:
    return time.time()


def image_config(
    spec: BaseImageSpec, platform: Platform, layer: LayerBlob, created: str
) -> dict[str, Any]:
    """The OCI image config for one platform."""
    labels = {
        "org.opencontainers.image.title": f"python {spec.suite.python} ({spec.suite.name})",
        "org.opencontainers.image.description": (
            f"Python {layer.python_version} from Debian {spec.suite.name} packages, "
            "built by bento-pipeline base-image"
        ),
        "org.opencontainers.image.created": created,
        "io.bento-pipeline.base-image.suite": spec.suite.name,
        "io.bento-pipeline.base-image.mirror": spec.mirror,
        **spec.labels,
    }
    config: dict[str, Any] = {
        "created": created,
        "architecture": platform.oci_arch,
        "os": "linux",
        "config": {
            "Env": image_env(spec, layer.python_version),
            "Cmd": ["python3"],
            "Labels": dict(sorted(labels.items())),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [
            {
                "created": created,
                "created_by": (
                    f"bento-pipeline base-image: mmdebstrap {spec.suite.name} "
                    f"{platform.deb_arch} + {' '.join(spec.packages)}"
                ),
            }
        ],
    }
    if platform.variant:
        config["variant"] = platform.variant
    return config


def platform_descriptor(platform: Platform) -> dict[str, str]:
    result = {"architecture": platform.oci_arch, "os": "linux"}
    if platform.variant:
        result["variant"] = platform.variant
    return result


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def cache_key(spec: BaseImageSpec, platform: Platform) -> str:
    """What determines a platform's layer: the bootstrap command, the CA certs, the epoch."""
    material = {
        "format": CACHE_FORMAT,
        "argv": mmdebstrap_argv(spec, platform, Path("/rootfs")),
        "ca": list(spec.ca_certs),
        "epoch": spec.source_date_epoch,
    }
    return hashlib.sha256(canonical_json(material)).hexdigest()[:32]


# --------------------------------------------------------------------------- effectful shell

Progress = Callable[[str], None]


def _stderr_progress(message: str) -> None:
    print(f"base-image: {message}", file=sys.stderr, flush=True)


def check_prerequisites(spec: BaseImageSpec, *, timeout: float = 15.0) -> None:
    """Everything that can fail before any work starts: tools, root, binfmt, engine, mirror."""
    if os.geteuid() != 0:
        hint = (
            "run it as root (e.g. with sudo); it bootstraps with mmdebstrap --mode=root and chroot"
        )
        if shutil.which("mmdebstrap") is None:
            hint = "install it as root: apt-get install mmdebstrap; then " + hint
        raise BackendError("base-image must run as root", hint=hint)
    if shutil.which("mmdebstrap") is None:
        raise BackendError(
            "mmdebstrap is not installed (needed to bootstrap the Debian root filesystem)",
            hint="apt-get install mmdebstrap (and qemu-user-static binfmt-support for arm64)",
        )
    host = host_platform()
    foreign = [p for p in spec.platforms if p != host]
    if foreign and shutil.which("arch-test") is None:
        raise BackendError(
            f"arch-test is not installed (mmdebstrap needs it for {foreign[0].name})",
            hint="apt-get install arch-test qemu-user-static binfmt-support",
        )
    for platform in foreign:
        if not _binfmt_enabled(platform.qemu):
            raise BackendError(
                f"cannot run {platform.name} binaries here: binfmt_misc entry "
                f"{platform.qemu!r} is missing or disabled",
                hint=(
                    "apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc "
                    f"binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable {platform.qemu}"
                ),
            )
    for output in spec.outputs:
        if output.kind == "push" and shutil.which("skopeo") is None:
            raise BackendError(
                "--push needs skopeo to upload the image", hint="apt-get install skopeo"
            )
        if output.kind == "load" and output.target != "auto":
            _check_engine(output.target)
    for option, url in release_urls(spec):
        _check_mirror(url, option=option, timeout=timeout)


def _binfmt_enabled(name: str) -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc") / name
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def _check_engine(engine: str) -> None:
    if shutil.which(engine) is None:
        raise BackendError(f"--load {engine}: {engine} is not installed")
    proc = probe([engine, "info", "--format", "{{json .}}"], timeout=None)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise BackendError(f"--load {engine}: the engine does not answer: {tail[0]}")


def pick_engine() -> str:
    """The local engine for ``--load auto``: a docker daemon that answers, else podman."""
    for engine in ENGINES:
        if shutil.which(engine) is None:
            continue
        if probe([engine, "info"], timeout=None).ok:
            return engine
    raise BackendError(
        "no local engine to load the image into (docker daemon not answering, podman absent)",
        hint="give --oci-archive FILE or --push REF instead, or start docker",
    )


def _check_mirror(url: str, *, option: str, timeout: float) -> None:
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(url[len("file:") :]))
        if not path.exists() and not path.with_name("Release").exists():
            raise ConfigError(f"mirror has no {path}", field=option)
        return
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise ConfigError(
        f"mirror unreachable: {url}: {problem}",
        field=option,
        hint="check the URL and the network; the machine's own mirror is in "
        "/etc/apt/sources.list.d/",
    )


def _run_streaming(
    argv: Sequence[str],
    *,
    step: str,
    verbose: bool,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    prefix: str = "",
) -> None:
    """Run ``argv``, its output echoed to stderr when ``verbose``; a failure is a BuildError
    with the last lines (``env``, ``inherit_env``: as :func:`run_lines` takes them)."""

    def echo(line: str) -> None:
        print(f"{prefix}{line}", file=sys.stderr, flush=True)

    outcome = run_lines(
        argv, env=env, inherit_env=inherit_env, on_line=echo if verbose else None, tail_lines=25
    )
    if outcome.returncode != 0:
        raise BuildError(
            f"{argv[0]} exited with {outcome.returncode}",
            backend="base-image",
            step=step,
            output_tail=[line.rstrip() for line in outcome.tail],
        )


def bootstrap_rootfs(
    spec: BaseImageSpec, platform: Platform, dest: Path, *, verbose: bool = False
) -> None:
    """mmdebstrap the rootfs, then make it look like python:X.Y-slim and add the CA certs."""
    env: dict[str, str] = {}
    if spec.source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(spec.source_date_epoch)
    _run_streaming(
        mmdebstrap_argv(spec, platform, dest),
        step=f"mmdebstrap {spec.suite.name} {platform.deb_arch}",
        verbose=verbose,
        env=env,
        prefix=f"[{platform.deb_arch}] ",
    )
    python = spec.suite.python
    local_bin = dest / "usr/local/bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    links = {
        "python": "/usr/bin/python3",
        "python3": "/usr/bin/python3",
        f"python{python}": f"/usr/bin/python{python}",
        "pip": "/usr/bin/pip3",
        "pip3": "/usr/bin/pip3",
    }
    for name, target in links.items():
        link = local_bin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    # pip installs into the system interpreter are the point of a python base image.
    (dest / f"usr/lib/python{python}/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    if spec.ca_certs:
        _add_ca_certs(spec, dest, verbose=verbose)


def _add_ca_certs(spec: BaseImageSpec, rootfs: Path, *, verbose: bool) -> None:
    bundle = rootfs / SYSTEM_CA_BUNDLE.lstrip("/")
    try:
        present = set(split_pem_certificates(bundle.read_text(), source=str(bundle)))
    except (OSError, ConfigError):
        present = set()
    extra = [cert for cert in spec.ca_certs if cert not in present]
    if not extra:
        return
    target = rootfs / EXTRA_CA_DIR
    target.mkdir(parents=True, exist_ok=True)
    for number, cert in enumerate(extra):
        (target / f"extra-{number:03d}.crt").write_text(cert)
    _run_streaming(
        ["chroot", str(rootfs), "/usr/sbin/update-ca-certificates"],
        step="update-ca-certificates",
        verbose=verbose,
        env={"PATH": IMAGE_PATH, "LANG": "C.UTF-8"},
        inherit_env=False,
    )


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


def _python_version(rootfs: Path, minor: str) -> str:
    """The upstream version of the rootfs' python3.X package (3.11.2 of 3.11.2-6+deb12u6)."""
    status = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    for block in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == f"python{minor}" and "Version" in fields:
            return fields["Version"].split("-", 1)[0].split("+", 1)[0]
    return minor


def build_layer(
    spec: BaseImageSpec,
    platform: Platform,
    workdir: Path,
    *,
    cache_dir: Path | None,
    progress: Progress,
    verbose: bool,
) -> LayerBlob:
    """The platform's layer: from ``cache_dir`` when present, else bootstrapped now."""
    key = cache_key(spec, platform)
    if cache_dir is not None:
        meta_path = cache_dir / f"{key}.json"
        blob = cache_dir / f"{key}.tar.gz"
        if meta_path.exists() and blob.exists():
            meta = json.loads(meta_path.read_text())
            progress(f"{platform.name}: layer from cache {blob}")
            return LayerBlob(blob, meta["digest"], meta["diff_id"], meta["size"], meta["python"])
    rootfs = workdir / f"rootfs-{platform.deb_arch}"
    progress(f"{platform.name}: bootstrapping Debian {spec.suite.name} from {spec.mirror}")
    try:
        bootstrap_rootfs(spec, platform, rootfs, verbose=verbose)
        python_version = _python_version(rootfs, spec.suite.python)
        progress(f"{platform.name}: writing the layer (python {python_version})")
        blob = workdir / f"layer-{platform.deb_arch}.tar.gz"
        digest, diff_id, size = write_layer(rootfs, blob, source_date_epoch=spec.source_date_epoch)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    layer = LayerBlob(blob, digest, diff_id, size, python_version)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Blob first, then its metadata, each renamed into place: a reader sees a complete
        # entry or none, also with several builds filling the cache at once.
        meta = {"digest": digest, "diff_id": diff_id, "size": size, "python": python_version}
        for name, write in (
            (f"{key}.tar.gz", lambda path: shutil.copyfile(blob, path)),
            (f"{key}.json", lambda path: path.write_text(json.dumps(meta))),
        ):
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.")
            os.close(fd)
            try:
                write(Path(tmp))
                Path(tmp).replace(cache_dir / name)
            finally:
                Path(tmp).unlink(missing_ok=True)
    return layer


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


def _tar_directory(
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


def _docker_archive_manifest(tag: str, manifest: Mapping[str, Any]) -> bytes:
    """``manifest.json`` of the docker-archive format, pointing into the OCI blobs."""
    config = "blobs/sha256/" + manifest["config_digest"].split(":", 1)[1]
    layer = "blobs/sha256/" + manifest["layer_digest"].split(":", 1)[1]
    return json.dumps([{"Config": config, "RepoTags": [tag], "Layers": [layer]}]).encode()


def load_into_engine(engine: str, archive: Path, *, verbose: bool) -> None:
    with archive.open("rb") as handle:
        proc = probe([engine, "load"], stdin_file=handle, timeout=None)
    if verbose and proc.stdout:
        print(proc.stdout, end="", file=sys.stderr)
    if proc.returncode != 0:
        raise BuildError(
            f"{engine} load failed",
            backend="base-image",
            step=f"{engine} load",
            output_tail=(proc.stdout + proc.stderr).strip().splitlines()[-15:],
        )


def push_layout(layout: Path, ref: str, *, tls_verify: bool, verbose: bool) -> None:
    argv = [
        "skopeo",
        "copy",
        "--all",
        "--quiet",
        f"--dest-tls-verify={'true' if tls_verify else 'false'}",
        f"oci:{layout}:latest",
        f"docker://{ref}",
    ]
    _run_streaming(argv, step=f"push {ref}", verbose=verbose)


def build_base_image(
    spec: BaseImageSpec,
    *,
    cache_dir: Path | None = None,
    progress: Progress = _stderr_progress,
    verbose: bool = False,
    check: bool = True,
) -> BaseImageResult:
    """Bootstrap, assemble and deliver the image. Nothing is tagged or pushed unless all of
    the image was built; an OCI archive appears whole or not at all."""
    if check:
        check_prerequisites(spec)
    outputs = tuple(
        Output("load", pick_engine()) if o.kind == "load" and o.target == "auto" else o
        for o in spec.outputs
    )
    created = created_timestamp(spec.source_date_epoch)
    with tempfile.TemporaryDirectory(prefix="pipeline-base-image-") as tmp:
        workdir = Path(tmp)
        # Platforms bootstrap concurrently: the foreign one is CPU-bound under qemu, the
        # native one mostly waits on downloads.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(spec.platforms)) as pool:
            futures = [
                pool.submit(
                    build_layer,
                    spec,
                    platform,
                    workdir,
                    cache_dir=cache_dir,
                    progress=progress,
                    verbose=verbose,
                )
                for platform in spec.platforms
            ]
            concurrent.futures.wait(futures)
        layers = [(p, f.result()) for p, f in zip(spec.platforms, futures, strict=True)]
        layout = workdir / "oci"
        digest, manifests = write_oci_layout(spec, layers, layout, created=created)
        mtime = spec.source_date_epoch if spec.source_date_epoch is not None else 0
        for output in outputs:
            if output.kind == "oci-archive":
                progress(f"writing OCI archive {output.target}")
                dest = Path(output.target)
                index = json.loads((layout / "index.json").read_text())
                index["manifests"][0]["annotations"][REF_NAME] = spec.tag
                _tar_directory(
                    layout, dest, mtime=mtime, extra={"index.json": canonical_json(index)}
                )
            elif output.kind == "load":
                progress(f"loading {spec.tag} into {output.target}")
                archive = workdir / "docker-archive.tar"
                _tar_directory(
                    layout,
                    archive,
                    mtime=mtime,
                    extra={"manifest.json": _docker_archive_manifest(spec.tag, manifests[0])},
                    # a plain docker-archive: with index.json podman would read it as OCI
                    skip=frozenset({"index.json", "oci-layout"}),
                )
                load_into_engine(output.target, archive, verbose=verbose)
            else:
                progress(f"pushing {output.target} ({', '.join(p.name for p in spec.platforms)})")
                push_layout(layout, output.target, tls_verify=output.tls_verify, verbose=verbose)
    return BaseImageResult(
        tag=spec.tag,
        platforms=tuple(p.name for p in spec.platforms),
        digest=digest,
        outputs=outputs,
    )
