"""What every external engine declares, and the pieces of argv they share.

A :class:`BackendSpec` is data plus three functions: ``construct_build_args`` (pure: a
:class:`~pipeline.request.BuildRequest` in, an argv list out, never a shell string), ``health``
(is the engine usable *now*, and if not, how to make it so) and ``capabilities`` (what it can
do, probed from the installed engine rather than assumed). :class:`pipeline.backends.executor.
ExternalExecutor` turns a spec into an :class:`~pipeline.executor.Executor`.
"""

from __future__ import annotations

import os
import platform as _platform
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from attrs import field, frozen

from pipeline.backends.credentials import DOCKER
from pipeline.backends.flags import ALL, BuildFlags
from pipeline.backends.verify import Store
from pipeline.backends.workingcontainers import WorkingContainers
from pipeline.errors import BackendError, ConfigError, allowed
from pipeline.request import BuildRequest, SecretSpec


@frozen
class Health:
    """Whether an engine is usable; ``reason`` says why not and how to fix it.

    Truthy exactly when ``ok``, so ``if get_backend("podman").health():`` reads as BentoML's
    ``health()`` (a bool) does.
    """

    ok: bool
    reason: str = ""
    version: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@frozen
class Capabilities:
    """What an installed engine can do (probed). ``platforms``: what it can build for."""

    secrets: bool = False
    cache_mounts: bool = False
    multi_platform: bool = False
    push: bool = False
    platforms: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "secrets": self.secrets,
            "cache_mounts": self.cache_mounts,
            "multi_platform": self.multi_platform,
            "push": self.push,
            "platforms": list(self.platforms),
        }


ArgvBuilder = Callable[..., list[str]]
PushCommands = Callable[..., list[list[str]]]  # (request, digestfile[, *, flags])


def _env_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


def _no_capabilities() -> Capabilities:
    return Capabilities()


@frozen
class BackendSpec:
    """One external engine.

    ``construct_build_args(request, *, iidfile=None) -> argv`` builds the complete command
    (binary first). ``secret_env``: the engine accepts ``--secret id=X,env=VAR`` (otherwise env
    secrets are written to a private temp file for the build). ``push_commands(request,
    digestfile)``: the engine cannot push from ``build``; these commands push afterwards (the
    first writes the pushed digest to ``digestfile`` where the engine can).

    ``build_command`` (built-in engines): the build command whose ``--help`` is probed for
    optional flags (:mod:`pipeline.backends.flags`); ``construct_build_args`` and
    ``push_commands`` then also receive ``flags=BuildFlags``. ``image_id_command(tag)``: asks
    the engine for a built image's id when its build has no ``--iidfile``.

    ``result_store(request)``: where the built image lands on this machine (a
    :class:`~pipeline.backends.verify.Store` that reads it back), or None when the request
    leaves nothing local (an export, a buildx build kept in its cache). The executor reads an
    explicit-platform result back from there, or from the registry it was pushed to.
    """

    name: str
    binary: str
    buildkit_support: bool
    construct_build_args: ArgvBuilder
    health: Callable[[], Health]
    capabilities: Callable[[], Capabilities] = _no_capabilities
    env: Mapping[str, str] = field(factory=dict, converter=_env_map)
    description: str = ""
    dockerfile_mounts: bool = True  # understands RUN --mount (secrets, caches)
    # at most this many `sharing=locked` cache mounts in one RUN (None: any number). buildah
    # 1.28 (podman 4.3) deadlocks on a RUN with two locked mounts once an earlier stage's RUN
    # held the same two: the build hangs forever
    max_locked_cache_mounts: int | None = None
    # keeps RUN --mount=type=cache directories under $TMPDIR (buildah): see
    # executor._keep_buildah_caches
    caches_in_tmpdir: bool = False
    secret_env: bool = True
    iidfile: bool = True
    metadata_file: bool = False  # construct_build_args(..., metadata_file=) gives the digest
    push_commands: PushCommands | None = None
    run_command: str | None = "docker"  # what users run the image with (None: no local image)
    # whose login files the engine reads credentials from when it pushes: "docker"
    # ($DOCKER_CONFIG/config.json) or "containers" ($REGISTRY_AUTH_FILE, containers-auth.json,
    # then docker's); see pipeline/backends/credentials.py
    auth_family: str = DOCKER
    remove_image: Callable[[str], list[str]] | None = None
    plugin: bool = False
    build_command: tuple[str, ...] | None = None
    image_id_command: Callable[[str], list[str]] | None = None
    result_store: Callable[[BuildRequest], Store | None] | None = None
    # commands run before the build whose failure is expected and ignored (podman/buildah: drop
    # an earlier manifest list of the same name, which `--manifest` would add to)
    prepare_commands: Callable[[BuildRequest], list[list[str]]] | None = None
    # builds that run at once must not pull the same base image at once (containers-storage:
    # two platforms of one name race to "image not known"): each build holds a lock file from
    # its start until its output shows a step after the last FROM (basepulls.py), across
    # processes and among a matrix's cells
    serial_base_pulls: bool = False
    # a build that is interrupted or killed leaves working containers in the engine's store:
    # how to find this build's and remove them (workingcontainers.py)
    working_containers: WorkingContainers | None = None


# ---------------------------------------------------------------------------------------------
# Pure helpers shared by the docker-compatible engines


def secret_flag(secret: SecretSpec, *, env_ok: bool = True) -> str:
    """``id=X,src=FILE`` or ``id=X,env=VAR`` (the value itself never appears in argv)."""
    if secret.src is not None:
        return f"id={secret.id},src={secret.src}"
    if not env_ok:
        raise BackendError(
            f"secret {secret.id!r} comes from an environment variable, which this engine only "
            "takes as a file; the executor writes it to a private temp file first"
        )
    return f"id={secret.id},env={secret.env}"


def opt_flags(opts: Sequence[tuple[str, str | None]]) -> list[str]:
    """Pass-through ``--opt key=value`` -> ``--key=value``; ``--opt key`` -> ``--key``.

    One argv item per option: ``--pull never`` as two items is ``--pull`` (a bool-ish flag
    with an optional value, as in podman) followed by a stray argument ``never``.
    """
    argv: list[str] = []
    for key, value in opts:
        flag = "--" + key.lstrip("-").replace("_", "-")
        argv.append(flag if value is None else f"{flag}={value}")
    return argv


def build_input_flags(request: BuildRequest, *, secret_env: bool = True) -> list[str]:
    """``--secret``, ``--build-arg``, ``--target``, ``--cache-from``, ``--cache-to``,
    ``--label`` and ``--no-cache``: spelled alike by docker, buildx, nerdctl, podman and buildah.
    """
    argv: list[str] = []
    for secret in request.secrets:
        argv += ["--secret", secret_flag(secret, env_ok=secret_env)]
    for key, value in request.build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if request.target:
        argv += ["--target", request.target]
    for source in request.cache_from:
        argv += ["--cache-from", source]
    for dest in request.cache_to:
        argv += ["--cache-to", dest]
    for key, value in request.labels.items():
        argv += ["--label", f"{key}={value}"]
    if request.no_cache:
        argv.append("--no-cache")
    return argv


def request_option_flags(
    request: BuildRequest,
    *,
    pull: str = "--pull",
    ssh: bool = True,
    add_host: bool = True,
    flags: BuildFlags = ALL,
) -> list[str]:
    """BentoML's ``--network``, ``--add-host``, ``--ssh`` and ``--pull`` as docker spells them.

    ``pull``: the engine's spelling of "always pull" (podman/buildah ``--pull=always``, nerdctl
    ``--pull=true``). ``ssh``/``add_host``: whether the engine has them at all.
    """
    argv: list[str] = []
    if request.network is not None and request.network != "default":
        _require_flag(flags, "--network")
        argv.append(f"--network={request.network}")
    if request.add_hosts:
        _require(add_host, "--add-host")
        _require_flag(flags, "--add-host")
        for host in request.add_hosts:
            argv += ["--add-host", host]
    if request.ssh:
        if not ssh:
            raise BackendError(
                "--ssh needs BuildKit; the classic builder cannot forward an SSH agent",
                field="--ssh",
                hint="unset DOCKER_BUILDKIT=0, or use the buildx, podman or buildah backend",
            )
        _require_flag(flags, "--ssh")
        for spec in request.ssh:
            argv += ["--ssh", spec]
    if request.pull:
        _require_flag(flags, pull.split("=")[0])
        argv.append(pull)
    return argv


def docker_style_args(
    request: BuildRequest,
    *,
    secrets: bool = True,
    secret_env: bool = True,
    cache_to: bool = True,
    progress: bool = True,
    push: bool = True,
    output: bool = True,
    load: bool = False,
    multi_platform: bool = True,
    iidfile: str | None = None,
    metadata_file: str | None = None,
    flags: BuildFlags = ALL,
    pull: str = "--pull",
    ssh: bool = True,
    add_host: bool = True,
) -> list[str]:
    """The flags docker, buildx, podman, buildah and nerdctl share (context path not included).

    A flag the engine lacks raises :class:`BackendError` instead of being silently dropped.
    ``flags`` (probed from the installed binary) leaves out what has a fallback: ``--load``
    (a CLI without it stores the image in the daemon anyway), ``--push`` (the executor pushes
    afterwards), ``--iidfile``/``--metadata-file`` (the executor asks the engine instead) and
    ``--progress``; ``--cache-to`` and ``--output`` have none and are refused.
    """
    argv = ["--file", str(request.dockerfile_path)]
    for tag in request.tags:
        argv += ["--tag", tag]
    if request.platforms:
        if len(request.platforms) > 1 and not multi_platform:
            raise BackendError(
                f"this engine builds one platform per build; got {', '.join(request.platforms)}",
                field="--platform",
            )
        argv += ["--platform", ",".join(request.platforms)]
    if request.secrets and not secrets:
        raise BackendError(
            "build secrets need BuildKit; this engine/builder cannot mount them",
            field="--secret",
            hint="use the buildx, podman or buildah backend, or unset DOCKER_BUILDKIT=0",
        )
    if request.cache_to:
        _require(cache_to, "--cache-to")
        _require_flag(flags, "--cache-to")
    argv += build_input_flags(request, secret_env=secret_env)
    argv += request_option_flags(request, pull=pull, ssh=ssh, add_host=add_host, flags=flags)
    if progress and flags.has("--progress"):
        argv.append(f"--progress={engine_progress(request.progress)}")
    if request.output:
        _require(output, "--output")
        _require_flag(flags, "--output")
        argv += ["--output", request.output]
    if request.push and push and flags.has("--push"):
        argv.append("--push")
    if load and flags.has("--load"):
        argv.append("--load")
    if iidfile and flags.has("--iidfile"):
        argv += ["--iidfile", iidfile]
    if metadata_file and flags.has("--metadata-file"):
        argv += ["--metadata-file", metadata_file]
    argv += opt_flags(request.opts)
    return argv


def engine_progress(progress: str) -> str:
    """We always read the engine's output through a pipe, so only tty mode asks for tty."""
    return "tty" if progress == "tty" else "plain"


def _require(supported: bool, flag: str) -> None:
    if not supported:
        raise BackendError(f"this engine has no {flag}", field=flag)


def _require_flag(flags: BuildFlags, flag: str) -> None:
    if not flags.has(flag):
        raise BackendError(
            f"{flags.describe()} has no build {flag} (an older CLI)",
            field=flag,
            hint="use --backend buildx, or put a current docker CLI first on PATH",
        )


# ---------------------------------------------------------------------------------------------
# Platforms

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm/v7",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "i386": "386",
    "i686": "386",
}
# binfmt_misc entry name (qemu-user-static / tonistiigi/binfmt) -> platform it enables
_BINFMT = {
    "qemu-aarch64": "linux/arm64",
    "qemu-arm": "linux/arm/v7",
    "qemu-ppc64le": "linux/ppc64le",
    "qemu-s390x": "linux/s390x",
    "qemu-riscv64": "linux/riscv64",
    "qemu-x86_64": "linux/amd64",
    "qemu-i386": "linux/386",
}
_OSES = ("linux", "windows", "darwin", "freebsd")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


def native_platform() -> str:
    machine = _platform.machine().lower()
    return f"linux/{_ARCH_ALIASES.get(machine, machine)}"


def emulated_platforms(binfmt_dir: Path = Path("/proc/sys/fs/binfmt_misc")) -> tuple[str, ...]:
    """Platforms runnable through registered qemu binfmt handlers."""
    found = []
    for entry, plat in _BINFMT.items():
        path = binfmt_dir / entry
        try:
            if path.is_file() and path.read_text().startswith("enabled"):
                found.append(plat)
        except OSError:
            continue
    return tuple(found)


def local_platforms() -> tuple[str, ...]:
    """Native platform first, then emulated ones (what daemonless engines can build)."""
    native = native_platform()
    return (native, *[p for p in emulated_platforms() if p != native])


def normalize_platform(value: str) -> str:
    """``arm64`` -> ``linux/arm64``; ``linux/arm64/v8`` -> ``linux/arm64``; validated."""
    text = value.strip().lower()
    if "/" not in text:
        if text not in _ARCH_ALIASES:
            raise ConfigError(
                f"malformed platform {value!r}: expected os/arch[/variant] (e.g. linux/amd64) "
                f"or an architecture ({allowed(sorted(set(_ARCH_ALIASES.values())))})",
                field="--platform",
            )
        text = f"linux/{_ARCH_ALIASES[text]}"
    if text == "linux/arm64/v8":
        text = "linux/arm64"
    if text == "linux/arm":
        text = "linux/arm/v7"
    if not _PLATFORM.match(text) or text.split("/")[0] not in _OSES:
        raise ConfigError(
            f"malformed platform {value!r}: expected os/arch[/variant], e.g. linux/amd64",
            field="--platform",
        )
    return text


def check_platforms(backend: str, requested: Sequence[str], buildable: Sequence[str]) -> None:
    """Refuse, before building, a platform the engine cannot build (exit 2, not a build log)."""
    if not buildable:
        return  # unknown: let the engine decide
    missing = [p for p in requested if p not in buildable]
    if missing:
        raise BackendError(
            f"{backend} cannot build for {', '.join(missing)} on this machine; "
            f"it can build {allowed(buildable)}",
            field="--platform",
            hint="register qemu emulation (e.g. `apt-get install qemu-user-static` or "
            "`docker run --privileged --rm tonistiigi/binfmt --install all`) to build "
            "foreign platforms",
        )


def which(binary: str) -> str | None:
    from shutil import which as _which

    return _which(binary, path=os.environ.get("PATH"))
