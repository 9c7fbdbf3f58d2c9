"""podman: ``podman build`` (its own builder, buildah inside; no daemon).

No BuildKit, but ``RUN --mount=type=secret`` and cache mounts work, so the Dockerfile is
rendered with mounts. ``--push`` is a separate ``podman push`` after the build; several
platforms go into a manifest list named after the first tag.
"""

from __future__ import annotations

import re
import sys

from pipeline.backends.base import (
    BackendSpec,
    Capabilities,
    Health,
    build_input_flags,
    local_platforms,
    native_platform,
    opt_flags,
    request_option_flags,
    which,
)
from pipeline.backends.credentials import CONTAINERS
from pipeline.backends.flags import ALL, BuildFlags
from pipeline.backends.process import probe
from pipeline.backends.verify import ContainersStore
from pipeline.backends.workingcontainers import WorkingContainers
from pipeline.errors import BackendError
from pipeline.request import BuildRequest

BINARY = "podman"


def containers_style_args(
    request: BuildRequest, *, iidfile: str | None = None, flags: BuildFlags = ALL
) -> list[str]:
    """Flags podman and buildah share (containers/buildah's ``build`` command)."""
    argv = ["--file", str(request.dockerfile_path)]
    if len(request.platforms) > 1:
        if not request.tags:
            raise BackendError(
                "a multi-platform build needs a --tag to name its manifest list", field="--tag"
            )
        argv += ["--manifest", request.tags[0]]
        for tag in request.tags[1:]:
            argv += ["--tag", tag]
    else:
        for tag in request.tags:
            argv += ["--tag", tag]
    if request.platforms:
        argv += ["--platform", ",".join(request.platforms)]
    elif not any(key.lstrip("-") in ("platform", "arch", "os") for key, _ in request.opts):
        # This machine's platform, said explicitly: containers-storage keeps one image per name,
        # so after a `--platform linux/arm64` build `FROM python:3.11-slim` would silently mean
        # the arm64 image (built under emulation, shipped to the wrong machines); with
        # --platform podman/buildah pick, or pull, the image of the right architecture.
        argv += ["--platform", native_platform()]
    # podman/buildah take one repository each (--cache-from/--cache-to are not repeatable)
    if len(request.cache_from) > 1 or len(request.cache_to) > 1:
        raise BackendError(
            "podman/buildah take a single --cache-from and a single --cache-to repository",
            field="--cache-from",
        )
    # env secrets reach podman/buildah as files: the executor writes them out first
    argv += build_input_flags(request, secret_env=False)
    # `--pull` alone is podman's default ("missing"); BentoML's --pull means always pull
    argv += request_option_flags(request, pull="--pull=always", flags=flags)
    if request.progress == "quiet":
        argv.append("--quiet")
    if request.output:
        argv += ["--output", request.output]
    # buildah keeps a failed step's working container unless --force-rm (podman removes it)
    argv += ["--layers", "--force-rm"]
    # buildah refuses --iidfile when a build makes several images (one per platform)
    if iidfile and len(request.platforms) <= 1 and flags.has("--iidfile"):
        argv += ["--iidfile", iidfile]
    argv += opt_flags(request.opts)
    return argv


def construct_build_args(
    request: BuildRequest, *, iidfile: str | None = None, flags: BuildFlags = ALL
) -> list[str]:
    return [
        BINARY,
        "build",
        *containers_style_args(request, iidfile=iidfile, flags=flags),
        str(request.context),
    ]


def manifest_reset(binary: str, request: BuildRequest) -> list[list[str]]:
    """A multi-platform build adds its images to the manifest list named by the first tag; an
    older list of that name would keep its entries (a second build: four entries for two
    platforms), so it is removed first (absent: the command fails, and that is fine)."""
    if len(request.platforms) <= 1 or not request.tags:
        return []
    return [[binary, "manifest", "rm", request.tags[0]]]


def prepare_commands(request: BuildRequest) -> list[list[str]]:
    return manifest_reset(BINARY, request)


def push_args(
    binary: str, request: BuildRequest, *, digestfile: str | None = None
) -> list[list[str]]:
    """The podman/buildah push commands run after a successful build with ``--push``.

    ``digestfile``: where the first push writes the pushed manifest's digest.
    """
    digest = ["--digestfile", digestfile] if digestfile else []
    if len(request.platforms) > 1:
        first, *rest = request.tags
        return [
            [binary, "manifest", "push", "--all", *digest, first, f"docker://{first}"],
            *([binary, "push", tag] for tag in rest),
        ]
    return [
        [binary, "push", *(digest if i == 0 else []), tag] for i, tag in enumerate(request.tags)
    ]


def push_commands(
    request: BuildRequest, digestfile: str | None = None, *, flags: BuildFlags = ALL
) -> list[list[str]]:
    return push_args(BINARY, request, digestfile=digestfile)


def health() -> Health:
    if which(BINARY) is None:
        return Health(False, "podman is not installed (Debian: `apt-get install podman`)")
    result = probe([BINARY, "version", "--format", "{{.Client.Version}}"])
    if not result.ok:
        hint = (
            "start the podman machine: `podman machine start`"
            if sys.platform == "darwin"
            else "check `podman info`"
        )
        return Health(False, f"podman does not work ({result.first_error_line}); {hint}")
    info = probe([BINARY, "info", "--format", "{{.Host.OCIRuntime.Name}}"])
    if not info.ok:
        return Health(False, f"`podman info` fails: {info.first_error_line}", result.stdout.strip())
    return Health(True, "ok", result.stdout.strip())


def capabilities() -> Capabilities:
    help_text = probe([BINARY, "build", "--help"]).stdout
    return buildah_family_capabilities(help_text)


def buildah_family_capabilities(help_text: str) -> Capabilities:
    platforms = local_platforms()
    return Capabilities(
        secrets="--secret" in help_text,
        cache_mounts=bool(re.search(r"--layers", help_text)),
        multi_platform="--manifest" in help_text and len(platforms) > 1,
        push=True,  # separate `push` command
        platforms=platforms,
    )


def remove_image(tag: str) -> list[str]:
    return [BINARY, "image", "rm", tag]


def result_store(request: BuildRequest) -> ContainersStore | None:
    """Where the image lands on this machine (read back to verify its platforms)."""
    return None if request.output else ContainersStore(BINARY)


# the store its working containers are in, and how they are removed (podman: --force removes
# buildah's containers, which plain `podman rm` does not know)
WORKING_CONTAINERS = WorkingContainers(
    store_command=(BINARY, "info", "--format", "{{.Store.GraphDriverName}}\n{{.Store.GraphRoot}}"),
    remove_command=(BINARY, "rm", "--force"),
)

SPEC = BackendSpec(
    name="podman",
    binary=BINARY,
    buildkit_support=False,
    construct_build_args=construct_build_args,
    health=health,
    capabilities=capabilities,
    description="podman build (daemonless, buildah inside)",
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
