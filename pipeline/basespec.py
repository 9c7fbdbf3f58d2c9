"""What a Python base image is: its validated spec and its OCI documents (pure).

:func:`resolve_spec` turns the ``base-image`` command's values into a :class:`BaseImageSpec`
(the suite, platforms, outputs, mirrors, CA certificates); from a spec come the mmdebstrap
command (:func:`mmdebstrap_argv`), the image config (:func:`image_config`), the OCI
descriptors and the layer cache key (:func:`cache_key`). Nothing here writes or runs anything;
:mod:`pipeline.baseimage` builds the image and :mod:`pipeline.ocilayout` writes its bytes. See
docs/base-image.md.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen

from pipeline.errors import BackendError, ConfigError, allowed, did_you_mean

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
