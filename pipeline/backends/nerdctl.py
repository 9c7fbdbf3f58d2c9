"""nerdctl: containerd's docker-compatible CLI; ``nerdctl build`` drives a buildkitd.

Flags follow nerdctl's command reference (``nerdctl build``: ``-t``, ``-f``, ``--target``,
``--build-arg``, ``--no-cache``, ``--output``, ``--progress``, ``--secret``, ``--cache-from``,
``--cache-to``, ``--platform``, ``--iidfile``, ``--label``). There is no ``--push``/``--load``:
images land in containerd and pushing is ``nerdctl push``. ``DOCKER_BUILDKIT`` has no effect.
"""

from __future__ import annotations

import os

from pipeline.backends.base import (
    BackendSpec,
    Capabilities,
    Health,
    docker_style_args,
    local_platforms,
    which,
)
from pipeline.backends.flags import ALL, BuildFlags
from pipeline.backends.process import probe
from pipeline.request import BuildRequest

BINARY = "nerdctl"


def construct_build_args(
    request: BuildRequest, *, iidfile: str | None = None, flags: BuildFlags = ALL
) -> list[str]:
    return [
        BINARY,
        "build",
        *docker_style_args(
            request, push=False, iidfile=iidfile, flags=flags, pull="--pull=true", add_host=False
        ),
        str(request.context),
    ]


def push_commands(
    request: BuildRequest, digestfile: str | None = None, *, flags: BuildFlags = ALL
) -> list[list[str]]:
    """``nerdctl push [--all-platforms] TAG`` per tag (no digest file: nerdctl has none)."""
    every = ["--all-platforms"] if len(request.platforms) > 1 else []
    return [[BINARY, "push", *every, tag] for tag in request.tags]


def health() -> Health:
    if which(BINARY) is None:
        return Health(
            False,
            "nerdctl is not installed (get it from https://github.com/containerd/nerdctl/"
            "releases; it needs containerd and, for builds, buildkitd)",
        )
    result = probe([BINARY, "version", "--format", "{{.Client.Version}}"])
    if not result.ok:
        return Health(False, f"nerdctl cannot reach containerd: {result.first_error_line}")
    if which("buildkitd") is None and not os.environ.get("BUILDKIT_HOST"):
        return Health(
            False,
            "nerdctl build needs buildkitd: install it (with buildctl) or set BUILDKIT_HOST",
            result.stdout.strip(),
        )
    return Health(True, "ok", result.stdout.strip())


def capabilities() -> Capabilities:
    help_text = probe([BINARY, "build", "--help"]).stdout
    return Capabilities(
        secrets="--secret" in help_text,
        cache_mounts=True,
        multi_platform="--platform" in help_text,
        push=True,
        platforms=local_platforms(),
    )


def remove_image(tag: str) -> list[str]:
    return [BINARY, "image", "rm", tag]


SPEC = BackendSpec(
    name="nerdctl",
    binary=BINARY,
    buildkit_support=True,
    construct_build_args=construct_build_args,
    health=health,
    capabilities=capabilities,
    description="nerdctl build (containerd + buildkitd)",
    push_commands=push_commands,
    run_command="nerdctl",
    remove_image=remove_image,
    build_command=(BINARY, "build"),
)
