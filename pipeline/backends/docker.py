"""docker: ``docker build`` with BuildKit (``DOCKER_BUILDKIT=1``), or the classic builder.

``DOCKER_BUILDKIT=0`` in the environment selects :data:`CLASSIC`: no secrets, no cache mounts,
no ``--cache-to``/``--output``, one platform; the renderer then avoids BuildKit-only syntax
(``RenderOptions(buildkit=False)``).

The CLI's optional flags are probed (:mod:`pipeline.backends.flags`): Debian 12's docker 20.10
CLI builds with the daemon's BuildKit but has no ``--metadata-file``, ``--push``, ``--load`` or
``--cache-to``. Without ``--push`` the image is pushed by ``docker push`` after the build
(the classic builder always does that); the image stays in the daemon without ``--load``.
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
from pipeline.backends.flags import ALL, BuildFlags, probe_build_flags
from pipeline.backends.process import probe
from pipeline.backends.verify import DockerStore
from pipeline.request import BuildRequest

BINARY = "docker"
ENV = {"DOCKER_BUILDKIT": "1"}
CLASSIC_ENV = {"DOCKER_BUILDKIT": "0"}
START_HINT = (
    "start the daemon: `systemctl start docker` (or `dockerd &`), in this repository "
    "`scripts/testbed up`; or point DOCKER_HOST at a running engine"
)


BUILD_COMMAND = (BINARY, "build")


def construct_build_args(
    request: BuildRequest,
    *,
    iidfile: str | None = None,
    metadata_file: str | None = None,
    flags: BuildFlags = ALL,
) -> list[str]:
    """``docker build`` with BuildKit flags; the context path goes last."""
    return [
        BINARY,
        "build",
        *docker_style_args(
            request,
            load=request.load,
            iidfile=iidfile,
            metadata_file=metadata_file,
            flags=flags,
        ),
        str(request.context),
    ]


def construct_classic_build_args(
    request: BuildRequest, *, iidfile: str | None = None, flags: BuildFlags = ALL
) -> list[str]:
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
            flags=flags,
            ssh=False,
        ),
        # the classic builder keeps a failed step's container unless told otherwise
        "--force-rm",
        str(request.context),
    ]


def push_commands(
    request: BuildRequest, digestfile: str | None = None, *, flags: BuildFlags = ALL
) -> list[list[str]]:
    """``docker push TAG`` per tag when the CLI's ``build`` cannot push (no digest file: the
    executor reads the digest from push's output)."""
    if flags.has("--push"):
        return []
    return [[BINARY, "push", tag] for tag in request.tags]


def classic_push_commands(
    request: BuildRequest, digestfile: str | None = None, *, flags: BuildFlags = ALL
) -> list[list[str]]:
    return [[BINARY, "push", tag] for tag in request.tags]


def image_id_command(tag: str) -> list[str]:
    return [BINARY, "image", "inspect", "--format", "{{.Id}}", tag]


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
    flags = probe_build_flags(BUILD_COMMAND, env=ENV)
    platforms, driver = buildx_platforms()
    if not platforms:
        platforms = local_platforms()
    containerd_store = "containerd" in probe([BINARY, "info", "--format", "{{.Driver}}"]).stdout
    notes = () if flags.has("--push") else (f"{flags.describe()}: pushes with `docker push`",)
    return Capabilities(
        secrets=flags.has("--secret"),
        cache_mounts=flags.has("--secret"),  # same BuildKit frontend feature level
        # the `docker` driver stores one platform per image unless the containerd store is on
        multi_platform=driver not in ("", "docker") or containerd_store,
        push=True,  # `build --push`, or `docker push` afterwards
        platforms=platforms,
        notes=notes,
    )


def classic_capabilities() -> Capabilities:
    return Capabilities(push=True, platforms=local_platforms())


def remove_image(tag: str) -> list[str]:
    return [BINARY, "image", "rm", "--no-prune", tag]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2]) or (0,)


def result_store(request: BuildRequest) -> DockerStore | None:
    """Where the image lands on this machine (read back to verify its platforms)."""
    return None if request.output else DockerStore(BINARY)


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
    push_commands=push_commands,
    remove_image=remove_image,
    build_command=BUILD_COMMAND,
    image_id_command=image_id_command,
    result_store=result_store,
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
    push_commands=classic_push_commands,
    remove_image=remove_image,
    build_command=BUILD_COMMAND,
    image_id_command=image_id_command,
    result_store=result_store,
)
