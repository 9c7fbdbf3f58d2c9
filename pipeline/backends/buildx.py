"""buildx: ``docker buildx build`` on the current builder instance.

Single-platform builds without ``--push``/``--output`` add ``--load`` so the image lands in the
local image store (with a ``docker-container`` builder it would otherwise stay in the build
cache). Several platforms without ``--push`` or ``--output`` keep nothing: the executor warns.
"""

from __future__ import annotations

from pipeline.backends import docker
from pipeline.backends.base import BackendSpec, Capabilities, Health, docker_style_args, which
from pipeline.backends.process import probe
from pipeline.request import BuildRequest

BINARY = "docker"


def wants_load(request: BuildRequest) -> bool:
    if request.load:
        return True
    return not request.push and not request.output and len(request.platforms) <= 1


def construct_build_args(
    request: BuildRequest, *, iidfile: str | None = None, metadata_file: str | None = None
) -> list[str]:
    return [
        BINARY,
        "buildx",
        "build",
        *docker_style_args(
            request, load=wants_load(request), iidfile=iidfile, metadata_file=metadata_file
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
    if not inspect.ok:
        return Health(
            False,
            f"buildx cannot reach its builder ({inspect.first_error_line}); {docker.START_HINT}",
            version,
        )
    return Health(True, "builder running", version)


def capabilities() -> Capabilities:
    help_text = probe([BINARY, "buildx", "build", "--help"]).stdout
    platforms, driver = docker.buildx_platforms()
    return Capabilities(
        secrets="--secret" in help_text,
        cache_mounts=True,
        multi_platform=driver not in ("", "docker"),
        push="--push" in help_text,
        platforms=platforms,
        notes=(f"builder driver: {driver}",) if driver else (),
    )


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
)
