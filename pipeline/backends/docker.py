"""docker: ``docker build`` with BuildKit (``DOCKER_BUILDKIT=1``), or the classic builder.

``DOCKER_BUILDKIT=0`` in the environment selects :data:`CLASSIC`: no secrets, no cache mounts,
no ``--cache-to``/``--output``/``--push``, one platform; the renderer then avoids BuildKit-only
syntax (``RenderOptions(buildkit=False)``).
"""

from __future__ import annotations

import json
import re

from pipeline.backends.base import (
    BackendSpec,
    Capabilities,
    Health,
    docker_style_args,
    local_platforms,
    which,
)
from pipeline.backends.process import probe
from pipeline.request import BuildRequest

BINARY = "docker"
ENV = {"DOCKER_BUILDKIT": "1"}
CLASSIC_ENV = {"DOCKER_BUILDKIT": "0"}
START_HINT = (
    "start the daemon: `systemctl start docker` (or `dockerd &`), in this repository "
    "`scripts/testbed up`; or point DOCKER_HOST at a running engine"
)


def construct_build_args(
    request: BuildRequest, *, iidfile: str | None = None, metadata_file: str | None = None
) -> list[str]:
    """``docker build`` with BuildKit flags; the context path goes last."""
    return [
        BINARY,
        "build",
        *docker_style_args(
            request, load=request.load, iidfile=iidfile, metadata_file=metadata_file
        ),
        str(request.context),
    ]


def construct_classic_build_args(request: BuildRequest, *, iidfile: str | None = None) -> list[str]:
    """``docker build`` on the classic builder: only what it understands, refusing the rest."""
    return [
        BINARY,
        "build",
        *docker_style_args(
            request,
            secrets=False,
            cache_to=False,
            progress=False,
            push=False,
            output=False,
            multi_platform=False,
            iidfile=iidfile,
        ),
        # the classic builder keeps a failed step's container unless told otherwise
        "--force-rm",
        str(request.context),
    ]


def server_version() -> tuple[str | None, str]:
    """(server version, error line) from ``docker version``."""
    result = probe([BINARY, "version", "--format", "{{json .}}"])
    version = None
    try:
        data = json.loads(result.stdout or "{}")
        version = (data.get("Server") or {}).get("Version")
    except json.JSONDecodeError:
        pass
    return version, result.first_error_line


def health() -> Health:
    if which(BINARY) is None:
        return Health(False, "docker is not installed (no `docker` on PATH)")
    version, error = server_version()
    if version is None:
        return Health(False, f"cannot reach the docker daemon ({error}); {START_HINT}")
    if _version_tuple(version) < (18, 9):
        return Health(False, f"docker {version} is too old for BuildKit (needs 18.09+)", version)
    return Health(True, "daemon running", version)


def classic_health() -> Health:
    if which(BINARY) is None:
        return Health(False, "docker is not installed (no `docker` on PATH)")
    version, error = server_version()
    if version is None:
        return Health(False, f"cannot reach the docker daemon ({error}); {START_HINT}")
    return Health(True, "daemon running (classic builder)", version)


def buildx_platforms() -> tuple[tuple[str, ...], str]:
    """(platforms, driver) of the current buildx builder; empty when buildx is absent."""
    result = probe([BINARY, "buildx", "inspect"])
    if not result.ok:
        return (), ""
    platforms: list[str] = []
    driver = ""
    for line in result.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Platforms":
            for item in value.split(","):
                plat = item.strip().rstrip("*")
                if plat and plat not in platforms:
                    platforms.append(plat)
        elif key.strip() == "Driver" and not driver:
            driver = value.strip()
    return tuple(platforms), driver


def capabilities() -> Capabilities:
    help_text = probe([BINARY, "build", "--help"], env=ENV).stdout
    platforms, driver = buildx_platforms()
    if not platforms:
        platforms = local_platforms()
    containerd_store = "containerd" in probe([BINARY, "info", "--format", "{{.Driver}}"]).stdout
    return Capabilities(
        secrets="--secret" in help_text,
        cache_mounts="--secret" in help_text,  # same BuildKit frontend feature level
        # the `docker` driver stores one platform per image unless the containerd store is on
        multi_platform=driver not in ("", "docker") or containerd_store,
        push="--push" in help_text,
        platforms=platforms,
    )


def classic_capabilities() -> Capabilities:
    return Capabilities(platforms=local_platforms())


def remove_image(tag: str) -> list[str]:
    return [BINARY, "image", "rm", "--no-prune", tag]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2]) or (0,)


SPEC = BackendSpec(
    name="docker",
    binary=BINARY,
    buildkit_support=True,
    construct_build_args=construct_build_args,
    health=health,
    capabilities=capabilities,
    env=ENV,
    description="docker build with BuildKit",
    metadata_file=True,
    remove_image=remove_image,
)

CLASSIC = BackendSpec(
    name="docker",
    binary=BINARY,
    buildkit_support=False,
    construct_build_args=construct_classic_build_args,
    health=classic_health,
    capabilities=classic_capabilities,
    env=CLASSIC_ENV,
    description="docker build on the classic builder (DOCKER_BUILDKIT=0)",
    dockerfile_mounts=False,
    secret_env=False,
    remove_image=remove_image,
)
