"""The one request type that crosses from the pure core to every executor, and its result.

A :class:`BuildRequest` is a complete, engine-neutral description of a build: where the context
is, which Dockerfile (inside the context) to use, and every option. Backends turn it into argv
(pure functions), the Dagger executor into API calls. Nothing here touches the filesystem except
:meth:`SecretSpec.read`, which the executors call at the last moment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from attrs import field, frozen

from pipeline.errors import ConfigError
from pipeline.options import PROGRESS_MODES as PROGRESS_MODES
from pipeline.paths import optional_path, user_path

#: the secret id the proxy CA bundle (--ca-cert) is mounted under during the build
CA_CERT_SECRET_ID = "ca_cert"

Progress = Literal["auto", "plain", "tty", "quiet"]

_SECRET_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


@frozen
class SecretSpec:
    """A build secret: mounted at ``/run/secrets/<id>`` during ``RUN``, never stored in a layer.

    Exactly one of ``src`` (a file) and ``env`` (an environment variable name) is set.
    """

    id: str
    src: Path | None = None
    env: str | None = None

    def __attrs_post_init__(self) -> None:
        if not _SECRET_ID.match(self.id):
            raise ConfigError(
                f"secret id {self.id!r} may only contain letters, digits, '.', '_' and '-'",
                field="--secret",
            )
        if (self.src is None) == (self.env is None):
            raise ConfigError(
                f"secret {self.id!r} needs exactly one of src=FILE or env=VAR", field="--secret"
            )

    @classmethod
    def parse(cls, spec: str) -> SecretSpec:
        """Parse docker syntax: ``id=X,src=FILE`` or ``id=X,env=VAR``; ``source=``, ``type=`` ok."""
        parts: dict[str, str] = {}
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise ConfigError(
                    f"malformed secret {spec!r}: expected id=NAME,src=FILE or id=NAME,env=VAR",
                    field="--secret",
                )
            parts[key.strip()] = value.strip()
        kind = parts.pop("type", None)
        if kind not in (None, "file", "env"):
            raise ConfigError(
                f"secret {spec!r}: type must be 'file' or 'env', got {kind!r}", field="--secret"
            )
        src = parts.pop("src", None) or parts.pop("source", None)
        env = parts.pop("env", None)
        sid = parts.pop("id", None)
        if parts:
            raise ConfigError(
                f"secret {spec!r}: unknown key(s) {', '.join(sorted(parts))}; "
                "allowed: id, src (or source), env, type",
                field="--secret",
            )
        if sid is None:
            # docker allows `src=` alone, deriving the id from the file name; we follow.
            if src is None and env is None:
                raise ConfigError(f"secret {spec!r} has no id", field="--secret")
            sid = Path(src).name if src else str(env)
        if kind == "env" and src is not None and env is None:
            env, src = src, None
        if src is None and env is None:
            # `id=FOO` alone means "from the environment variable FOO", as in docker.
            env = sid
        return cls(id=sid, src=user_path(src, field="--secret") if src else None, env=env)

    def check(self) -> None:
        """Fail early, with a clear message, when the secret's source is missing."""
        if self.src is not None and not self.src.is_file():
            raise ConfigError(
                f"secret {self.id!r}: file {str(self.src)!r} does not exist", field="--secret"
            )
        if self.env is not None and self.env not in os.environ:
            raise ConfigError(
                f"secret {self.id!r}: environment variable {self.env} is not set",
                field="--secret",
            )

    def read(self) -> bytes:
        """The secret's plaintext. Callers must never log or persist it."""
        self.check()
        if self.src is not None:
            return self.src.read_bytes()
        return os.environ[str(self.env)].encode()

    def describe(self) -> str:
        """A loggable description (never the value)."""
        return f"id={self.id},src={self.src}" if self.src else f"id={self.id},env={self.env}"


def _tuple(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)  # type: ignore[attr-defined]


def _mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


def _pairs(value: object) -> tuple[tuple[str, str | None], ...]:
    """``--opt`` items as ``(key, value|None)`` pairs (a plan's JSON has them as lists)."""
    return tuple((str(k), None if v is None else str(v)) for k, v in value or ())  # type: ignore[attr-defined]


@frozen
class BuildRequest:
    """Everything an executor needs for one build (possibly several platforms).

    ``context`` is a directory that already contains the Dockerfile at ``dockerfile`` (a path
    relative to the context). ``opts`` are backend pass-through options ``(key, value|None)``.
    """

    context: Path
    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = field(default=(), converter=_tuple)
    platforms: tuple[str, ...] = field(default=(), converter=_tuple)
    secrets: tuple[SecretSpec, ...] = field(default=(), converter=tuple)
    build_args: Mapping[str, str] = field(factory=dict, converter=_mapping)
    target: str | None = None
    cache_from: tuple[str, ...] = field(default=(), converter=_tuple)
    cache_to: tuple[str, ...] = field(default=(), converter=_tuple)
    push: bool = False
    load: bool = False
    output: str | None = None
    labels: Mapping[str, str] = field(factory=dict, converter=_mapping)
    no_cache: bool = False
    progress: str = "auto"
    opts: tuple[tuple[str, str | None], ...] = field(default=(), converter=_pairs)
    env: Mapping[str, str] = field(factory=dict, converter=_mapping)
    # BentoML's containerize flags (docker build spellings); each engine declares which it has.
    network: str | None = None  # --network MODE for RUN steps
    pull: bool = False  # --pull: always pull the base image(s)
    ssh: tuple[str, ...] = field(default=(), converter=_tuple)  # --ssh default|id[=socket|key]
    add_hosts: tuple[str, ...] = field(default=(), converter=_tuple)  # --add-host host:ip
    # --iidfile: the user's own file for the image id
    iidfile: Path | None = field(default=None, converter=optional_path)
    # --metadata-file: the user's own build metadata file
    metadata_file: Path | None = field(default=None, converter=optional_path)
    quiet: bool = False  # -q/--quiet: print only the image id
    # BentoML's --run-as-root: run the engine command with sudo (the image's user is unchanged)
    run_as_root: bool = False
    # --check-secrets: the built image is scanned for the secrets' bytes (build-stage envs and
    # --secret values; not the CA bundle, which is public) before it is reported or pushed
    check_secrets: bool = False

    @property
    def dockerfile_path(self) -> Path:
        return self.context / self.dockerfile


@frozen
class BuildResult:
    """What an executor reports back. ``image_id`` for local images, ``digest`` when pushed."""

    backend: str
    tags: tuple[str, ...] = field(default=(), converter=_tuple)
    platforms: tuple[str, ...] = field(default=(), converter=_tuple)
    image_id: str | None = None
    digest: str | None = None
    duration: float = 0.0
    log_tail: tuple[str, ...] = field(default=(), converter=_tuple)
    argv: tuple[str, ...] = field(default=(), converter=_tuple)
    # where the result was read back and found to hold exactly the requested platforms
    # ("registry", "local store"); None when it was not checked
    verified: str | None = None
    # set by the API: the bento built (name:version), the plan's digest, the image's labels
    bento: str | None = None
    plan_digest: str | None = None
    labels: Mapping[str, str] = field(factory=dict, converter=_mapping)
    # each platform's own image digest (manifest list entries, or the one image), when read back
    platform_digests: Mapping[str, str] = field(factory=dict, converter=_mapping)

    def to_json(self) -> dict[str, object]:
        name, _, version = (self.bento or "").partition(":")
        return {
            "backend": self.backend,
            "bento": self.bento,
            "bento_name": name or None,
            "bento_version": version or None,
            "plan_digest": self.plan_digest,
            "tags": list(self.tags),
            "platforms": list(self.platforms),
            "platform_digests": dict(self.platform_digests),
            "image_id": self.image_id,
            "digest": self.digest,
            "labels": dict(self.labels),
            "duration": round(self.duration, 3),
            "verified": self.verified,
        }
