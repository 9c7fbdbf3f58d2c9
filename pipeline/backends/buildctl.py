"""buildctl: BuildKit's own client, talking to a ``buildkitd`` (``--addr`` / ``BUILDKIT_HOST``).

Flags follow the BuildKit README: ``buildctl build --frontend dockerfile.v0 --local
context=DIR --local dockerfile=DIR --opt filename=F --opt platform=a,b --opt target=T
--opt build-arg:K=V --opt label:K=V --secret id=X,src=FILE --ssh default --import-cache/
--export-cache --output type=image,name=REF[,push=true]``; BentoML's ``--network``,
``--add-host`` and ``--pull`` are the dockerfile frontend's ``--opt force-network-mode=MODE``,
``--opt add-hosts=HOST=IP,...`` and ``--opt image-resolve-mode=pull``. Plain cache
references (``user/app:cache``) become ``type=registry,ref=...``. Images stay in buildkitd
unless pushed or exported with --output.
"""

from __future__ import annotations

import os

from pipeline.backends.base import (
    BackendSpec,
    Capabilities,
    Health,
    engine_progress,
    local_platforms,
    opt_flags,
    secret_flag,
    which,
)
from pipeline.backends.flags import ALL, BuildFlags
from pipeline.backends.process import probe
from pipeline.request import BuildRequest

BINARY = "buildctl"
DEFAULT_HOST_HINT = "docker-container://buildkitd"


def _cache_ref(value: str, key: str) -> str:
    return value if "=" in value else f"type=registry,{key}={value}"


def _output(request: BuildRequest) -> list[str]:
    if request.output:
        return ["--output", request.output]
    if not request.tags:
        return []
    names = ",".join(request.tags)
    # CSV: a value containing commas is quoted
    name = f'"name={names}"' if len(request.tags) > 1 else f"name={names}"
    spec = f"type=image,{name}"
    if request.push:
        spec += ",push=true"
    return ["--output", spec]


def construct_build_args(
    request: BuildRequest, *, metadata_file: str | None = None, flags: BuildFlags = ALL
) -> list[str]:
    context = str(request.context)
    dockerfile_dir = str(request.dockerfile_path.parent)
    argv = [
        BINARY,
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        f"context={context}",
        "--local",
        f"dockerfile={dockerfile_dir}",
        "--opt",
        f"filename={request.dockerfile_path.name}",
    ]
    if request.platforms:
        argv += ["--opt", f"platform={','.join(request.platforms)}"]
    if request.target:
        argv += ["--opt", f"target={request.target}"]
    for key, value in request.build_args.items():
        argv += ["--opt", f"build-arg:{key}={value}"]
    for key, value in request.labels.items():
        argv += ["--opt", f"label:{key}={value}"]
    if request.network is not None and request.network != "default":
        argv += ["--opt", f"force-network-mode={request.network}"]
    if request.add_hosts:
        hosts = ",".join("=".join(host.split(":", 1)) for host in request.add_hosts)
        argv += ["--opt", f"add-hosts={hosts}"]
    if request.pull:
        argv += ["--opt", "image-resolve-mode=pull"]
    for secret in request.secrets:
        argv += ["--secret", secret_flag(secret)]
    for spec in request.ssh:
        argv += ["--ssh", spec]
    for source in request.cache_from:
        argv += ["--import-cache", _cache_ref(source, "ref")]
    for dest in request.cache_to:
        argv += ["--export-cache", _cache_ref(dest, "ref")]
    if request.no_cache:
        argv.append("--no-cache")
    argv.append(f"--progress={engine_progress(request.progress)}")
    argv += _output(request)
    if metadata_file and flags.has("--metadata-file"):
        argv += ["--metadata-file", metadata_file]
    argv += opt_flags(request.opts)
    return argv


def health() -> Health:
    if which(BINARY) is None:
        return Health(
            False,
            "buildctl is not installed (it ships with BuildKit: "
            "https://github.com/moby/buildkit/releases)",
        )
    host = os.environ.get("BUILDKIT_HOST")
    if which("buildkitd") is None and not host:
        return Health(
            False,
            "buildctl needs a buildkitd: put `buildkitd` on PATH and start it, or set "
            f"BUILDKIT_HOST (e.g. BUILDKIT_HOST={DEFAULT_HOST_HINT})",
        )
    result = probe([BINARY, "debug", "workers"])
    if not result.ok:
        return Health(
            False,
            f"cannot reach buildkitd ({result.first_error_line}); start `buildkitd` or set "
            f"BUILDKIT_HOST (e.g. {DEFAULT_HOST_HINT})",
        )
    version = probe([BINARY, "--version"]).stdout.strip().split(" ")[-1] or None
    return Health(True, "buildkitd reachable", version)


def worker_platforms(verbose_output: str) -> tuple[str, ...]:
    """Platforms from ``buildctl debug workers --verbose`` (``Platforms: a,b`` lines)."""
    found: list[str] = []
    for line in verbose_output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Platforms":
            for item in value.split(","):
                plat = item.strip()
                if plat and plat not in found:
                    found.append(plat)
    return tuple(found)


def capabilities() -> Capabilities:
    help_text = probe([BINARY, "build", "--help"]).stdout
    platforms = worker_platforms(probe([BINARY, "debug", "workers", "--verbose"]).stdout)
    return Capabilities(
        secrets="--secret" in help_text,
        cache_mounts=True,  # the dockerfile frontend always has RUN --mount
        multi_platform=len(platforms) > 1,
        push="--output" in help_text,
        platforms=platforms or local_platforms(),
    )


SPEC = BackendSpec(
    name="buildctl",
    binary=BINARY,
    buildkit_support=True,
    construct_build_args=construct_build_args,
    health=health,
    capabilities=capabilities,
    description="BuildKit's buildctl against a buildkitd",
    iidfile=False,
    metadata_file=True,
    run_command=None,  # the image stays in buildkitd (or the registry with --push)
    build_command=(BINARY, "build"),
)
