"""buildah: ``buildah build`` (daemonless; OCI images via ``BUILDAH_FORMAT=oci``).

Images land in the containers/storage store that podman reads too, so ``podman run`` starts
them. Pushing is a separate ``buildah push``.
"""

from __future__ import annotations

from pipeline.backends.base import BackendSpec, Capabilities, Health, which
from pipeline.backends.credentials import CONTAINERS
from pipeline.backends.flags import ALL, BuildFlags
from pipeline.backends.podman import (
    buildah_family_capabilities,
    containers_style_args,
    manifest_reset,
    push_args,
)
from pipeline.backends.process import probe
from pipeline.backends.verify import BuildahStore
from pipeline.backends.workingcontainers import WorkingContainers
from pipeline.request import BuildRequest

BINARY = "buildah"
ENV = {"BUILDAH_FORMAT": "oci", "DOCKER_BUILDKIT": "0"}


def construct_build_args(
    request: BuildRequest, *, iidfile: str | None = None, flags: BuildFlags = ALL
) -> list[str]:
    return [
        BINARY,
        "build",
        *containers_style_args(request, iidfile=iidfile, flags=flags),
        str(request.context),
    ]


def push_commands(
    request: BuildRequest, digestfile: str | None = None, *, flags: BuildFlags = ALL
) -> list[list[str]]:
    return push_args(BINARY, request, digestfile=digestfile)


def prepare_commands(request: BuildRequest) -> list[list[str]]:
    return manifest_reset(BINARY, request)


def health() -> Health:
    if which(BINARY) is None:
        return Health(False, "buildah is not installed (Debian: `apt-get install buildah`)")
    result = probe([BINARY, "version", "--json"])
    if not result.ok:
        return Health(False, f"buildah does not work: {result.first_error_line}")
    version = None
    for line in result.stdout.splitlines():
        if '"version"' in line:
            version = line.split(":", 1)[1].strip().strip('",')
            break
    return Health(True, "ok", version)


def capabilities() -> Capabilities:
    return buildah_family_capabilities(probe([BINARY, "build", "--help"]).stdout)


def remove_image(tag: str) -> list[str]:
    return [BINARY, "rmi", tag]


def result_store(request: BuildRequest) -> BuildahStore | None:
    """Where the image lands on this machine (read back to verify its platforms)."""
    return None if request.output else BuildahStore(BINARY)


# the store its working containers are in, and how they are removed
WORKING_CONTAINERS = WorkingContainers(
    store_command=(BINARY, "info", "--format", "{{.store.GraphDriverName}}\n{{.store.GraphRoot}}"),
    remove_command=(BINARY, "rm"),
)

SPEC = BackendSpec(
    name="buildah",
    binary=BINARY,
    buildkit_support=False,
    construct_build_args=construct_build_args,
    health=health,
    capabilities=capabilities,
    env=ENV,
    description="buildah build (daemonless, OCI format)",
    secret_env=False,
    push_commands=push_commands,
    run_command="podman",
    auth_family=CONTAINERS,
    remove_image=remove_image,
    build_command=(BINARY, "build"),
    result_store=result_store,
    prepare_commands=prepare_commands,
    max_locked_cache_mounts=1,
    caches_in_tmpdir=True,
    serial_base_pulls=True,
    working_containers=WORKING_CONTAINERS,
)
