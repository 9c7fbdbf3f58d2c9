"""buildx: ``docker buildx build`` on the current builder instance.

Single-platform builds without ``--push``/``--output`` add ``--load`` so the image lands in the
local image store (with a ``docker-container`` builder it would otherwise stay in the build
cache). Several platforms without ``--push`` or ``--output`` keep nothing: the executor warns.
"""

from __future__ import annotations

from pipeline.backends import docker
from pipeline.backends.base import BackendSpec, Capabilities, Health, docker_style_args, which
from pipeline.backends.flags import ALL, BuildFlags, probe_build_flags
from pipeline.backends.process import probe
from pipeline.backends.verify import DockerStore
from pipeline.request import BuildRequest

BINARY = "docker"
BUILD_COMMAND = (BINARY, "buildx", "build")


def wants_load(request: BuildRequest) -> bool:
    if request.load:
        return True
    return not request.push and not request.output and len(request.platforms) <= 1


def construct_build_args(
    request: BuildRequest,
    *,
    iidfile: str | None = None,
    metadata_file: str | None = None,
    flags: BuildFlags = ALL,
) -> list[str]:
    return [
        *BUILD_COMMAND,
        *docker_style_args(
            request,
            load=wants_load(request),
            iidfile=iidfile,
            metadata_file=metadata_file,
            flags=flags,
        ),
        str(request.context),
    ]


def health() -> Health:
    if which(BINARY) is None:
        return Health(False, "docker is not installed (no `docker` on PATH)")
    result = probe([BINARY, "buildx", "version"])
    if not result.ok:
        return Health(
            False,
            f"the docker buildx plugin is missing ({result.first_error_line}); install "
            "docker-buildx (Debian: `apt-get install docker-buildx`)",
        )
    version = result.stdout.split()[1] if len(result.stdout.split()) > 1 else None
    inspect = probe([BINARY, "buildx", "inspect"])
    # a builder whose daemon is down still inspects, exit 0, with an "Error:" line
    error = inspect_error(inspect.stdout) if inspect.ok else inspect.first_error_line
    if error is not None:
        return Health(
            False, f"buildx cannot reach its builder ({error}); {docker.START_HINT}", version
        )
    return Health(True, "builder running", version)


def inspect_error(text: str) -> str | None:
    """The ``Error:`` line of ``docker buildx inspect`` output, if it has one (pure)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Error" and value.strip():
            return value.strip()
    return None


def capabilities() -> Capabilities:
    flags = probe_build_flags(BUILD_COMMAND)
    platforms, driver = docker.buildx_platforms()
    return Capabilities(
        secrets=flags.has("--secret"),
        cache_mounts=True,
        multi_platform=driver not in ("", "docker"),
        push=flags.has("--push"),
        platforms=platforms,
        notes=(f"builder driver: {driver}",) if driver else (),
    )


def result_store(request: BuildRequest) -> DockerStore | None:
    """Where the image lands on this machine (read back to verify its platforms)."""
    return DockerStore(BINARY) if wants_load(request) else None


SPEC = BackendSpec(
    name="buildx",
    binary=BINARY,
    buildkit_support=True,
    construct_build_args=construct_build_args,
    health=health,
    capabilities=capabilities,
    description="docker buildx build on the current builder",
    metadata_file=True,
    remove_image=docker.remove_image,
    build_command=BUILD_COMMAND,
    result_store=result_store,
)
