"""What a Dagger build will do, computed from a :class:`~pipeline.request.BuildRequest`.

Pure values and functions (plus :func:`read_dockerignore`, the one file read): the executor
turns a :class:`DaggerBuildSpec` into API calls, :func:`describe` turns it into the text
``--dry-run`` prints. Keeping the plan separate from the calls is what lets the contract tests
and the dry run agree with what really runs.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from attrs import field, frozen

from pipeline.dockerfile import parse_dockerfile
from pipeline.errors import ConfigError, PipelineWarning, allowed
from pipeline.request import BuildRequest

OutputKind = Literal["none", "oci", "docker", "load", "push"]

#: ``type=`` values ``--output`` accepts with the Dagger executor.
OUTPUT_TYPES: tuple[str, ...] = ("oci", "docker")

#: Name in the uploaded context for a Dockerfile that lives outside the context.
OUTSIDE_DOCKERFILE = "Dockerfile.pipeline"

#: The Dagger engine limits ``setSecret`` plaintext to this many bytes.
MAX_SECRET_BYTES = 128_000

# Dagger 0.21 converts Dockerfiles in-process and rejects any `# syntax=` frontend except these
# (reference: dagger-sdk.md section 2, "hard-cutover path").
_KNOWN_FRONTEND = re.compile(
    r"^(?:(?:docker\.io|index\.docker\.io)/)?(?:docker|moby)/dockerfile(?:-upstream)?"
    r"(?::[\w.-]+)?(?:@sha256:[0-9a-f]{64})?$"
)
_SYNTAX_LINE = re.compile(r"^#\s*syntax\s*=\s*(\S+)\s*$", re.IGNORECASE)


@frozen
class OutputSpec:
    """Where the image goes: nowhere (build only), a tarball, the docker engine, registries."""

    kind: OutputKind = "none"
    dest: Path | None = None  # tarball path for "oci"/"docker"
    refs: tuple[str, ...] = ()  # tags to load as or publish to

    @property
    def media_types(self) -> str:
        """The ``ImageMediaTypes`` value this output needs."""
        return "DockerMediaTypes" if self.kind in ("docker", "load") else "OCIMediaTypes"


@frozen
class DaggerBuildSpec:
    """One Dagger build: upload ``context`` minus ``excludes``, one ``dockerBuild`` per platform."""

    context: Path
    dockerfile: str
    platforms: tuple[str, ...] = ()  # empty: the engine's default platform
    build_args: Mapping[str, str] = field(factory=dict)
    target: str = ""
    secret_ids: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(factory=dict)
    excludes: tuple[str, ...] = ()
    output: OutputSpec = OutputSpec()


def parse_output(value: str) -> OutputSpec:
    """Parse ``--output``: ``type=oci,dest=FILE`` or ``type=docker,dest=FILE`` (default oci)."""
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if not sep or not val.strip():
            raise ConfigError(
                f"malformed output {value!r}: expected type=oci,dest=FILE or type=docker,dest=FILE",
                field="--output",
            )
        parts[key.strip()] = val.strip()
    kind = parts.pop("type", "oci")
    dest = parts.pop("dest", None)
    if kind not in OUTPUT_TYPES:
        raise ConfigError(
            f"output type {kind!r} is not supported by the dagger backend; "
            f"allowed: {allowed(OUTPUT_TYPES)}",
            field="--output",
        )
    if parts:
        raise ConfigError(
            f"output {value!r}: unknown key(s) {', '.join(sorted(parts))}; allowed: type, dest",
            field="--output",
        )
    if dest is None:
        raise ConfigError(f"output {value!r} needs dest=FILE", field="--output")
    return OutputSpec(kind="oci" if kind == "oci" else "docker", dest=Path(dest).expanduser())


def output_for(request: BuildRequest) -> OutputSpec:
    """The one output mode of a request; combining push, load and a tarball is an error."""
    chosen = [
        name
        for name, on in (
            ("--push", request.push),
            ("--load", request.load),
            ("--output", request.output),
        )
        if on
    ]
    if len(chosen) > 1:
        raise ConfigError(
            f"the dagger backend does one of --push, --load or --output per build, "
            f"got {' and '.join(chosen)}",
            field=chosen[1],
        )
    if request.push:
        if not request.tags:
            raise ConfigError("--push needs at least one --tag to publish to", field="--push")
        return OutputSpec(kind="push", refs=request.tags)
    if request.load:
        return OutputSpec(kind="load", refs=request.tags)
    if request.output:
        return parse_output(request.output)
    return OutputSpec(refs=request.tags)


def parse_dockerignore(text: str) -> tuple[str, ...]:
    """``.dockerignore`` lines as Dagger ``exclude`` patterns (comments and blanks dropped)."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        body = line[1:].strip() if negate else line
        body = body.lstrip("/")
        if body:
            patterns.append(f"!{body}" if negate else body)
    return tuple(patterns)


def read_dockerignore(context: Path, dockerfile: str) -> tuple[str, ...]:
    """Exclude patterns for the upload: ``<dockerfile>.dockerignore`` first, then ``.dockerignore``.

    The engine would apply them too, but only after uploading everything; applying them on the
    client keeps large ignored files (``.git``, virtualenvs, datasets) off the wire.
    """
    for candidate in (context / f"{dockerfile}.dockerignore", context / ".dockerignore"):
        if candidate.is_file():
            return parse_dockerignore(candidate.read_text(encoding="utf-8", errors="replace"))
    return ()


def check_syntax_directive(dockerfile_text: str, *, file: str = "Dockerfile") -> str:
    """Drop a ``# syntax=`` line naming a frontend Dagger 0.21 cannot run (with a warning).

    Dagger 0.21 builds with its built-in Dockerfile frontend: known ``docker/dockerfile`` refs
    are accepted (and their pinned version ignored), any other frontend fails the whole build.
    """
    lines = dockerfile_text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("#"):
            break  # parser directives only appear before the first instruction or comment
        match = _SYNTAX_LINE.match(stripped)
        if match is None:
            continue
        if _KNOWN_FRONTEND.match(match.group(1)):
            return dockerfile_text
        warnings.warn(
            f"{file}:{index + 1}: dropped '# syntax={match.group(1)}': Dagger 0.21 only runs its "
            "built-in Dockerfile frontend (docker/dockerfile)",
            PipelineWarning,
            stacklevel=2,
        )
        return "".join(lines[:index] + lines[index + 1 :])
    return dockerfile_text


@frozen
class SecretMount:
    """A ``RUN --mount=type=secret`` in a Dockerfile."""

    id: str
    line: int
    required: bool


def secret_mounts(dockerfile_text: str) -> tuple[SecretMount, ...]:
    """Every secret mount in the Dockerfile (id defaults to the target's base name)."""
    mounts = []
    for instruction in parse_dockerfile(dockerfile_text):
        text = instruction.logical
        if not re.match(r"(?i)^RUN\s", text):
            continue
        for spec in re.findall(r"--mount=(\S+)", text):
            options = dict(item.partition("=")[::2] for item in spec.split(",") if item.strip())
            if options.get("type") != "secret":
                continue
            sid = options.get("id") or Path(options.get("target") or options.get("dst") or "").name
            # a bare `required` means true, as in BuildKit
            required = options.get("required", "false").lower() in ("", "true", "1")
            if sid:
                mounts.append(SecretMount(id=sid, line=instruction.line, required=required))
    return tuple(mounts)


def check_secret_mounts(
    dockerfile_text: str, secret_ids: Sequence[str], *, file: str = "Dockerfile"
) -> None:
    """Fail for a required secret nobody passes; warn for an optional one (Dagger skips it)."""
    given = set(secret_ids)
    for mount in secret_mounts(dockerfile_text):
        if mount.id in given:
            continue
        what = f"{file}:{mount.line} mounts secret {mount.id!r}"
        how = f"pass it with --secret id={mount.id},src=FILE or id={mount.id},env=VAR"
        if mount.required:
            raise ConfigError(
                f"{what} (required=true) but it was not given; {how}", field="--secret"
            )
        warnings.warn(
            f"{what} but it was not given, so the step runs without it; {how}",
            PipelineWarning,
            stacklevel=2,
        )


def _warn_ignored(request: BuildRequest) -> None:
    ignored = []
    if request.cache_from or request.cache_to:
        ignored.append("--cache-from/--cache-to (Dagger caches in its engine)")
    if request.no_cache:
        ignored.append("--no-cache")
    if request.opts:
        ignored.append(
            "backend options " + ", ".join(k if v is None else f"{k}={v}" for k, v in request.opts)
        )
    for item in ignored:
        warnings.warn(f"the dagger backend ignores {item}", PipelineWarning, stacklevel=3)


def spec_from_request(
    request: BuildRequest, excludes: Sequence[str] | None = None
) -> DaggerBuildSpec:
    """The Dagger build for ``request``; ``excludes`` default to the context's ``.dockerignore``."""
    output = output_for(request)
    duplicates = sorted({p for p in request.platforms if request.platforms.count(p) > 1})
    if duplicates:
        raise ConfigError(
            f"platform {duplicates[0]!r} is given twice; each platform is built once",
            field="--platform",
        )
    ids = [s.id for s in request.secrets]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"secret id {repeated[0]!r} is given twice", field="--secret")
    _warn_ignored(request)
    if excludes is None:
        excludes = read_dockerignore(request.context, request.dockerfile)
    dockerfile = request.dockerfile
    if Path(dockerfile).is_absolute() or ".." in Path(dockerfile).parts:
        # a Dockerfile outside the context: its text is written into the upload under this name
        dockerfile = OUTSIDE_DOCKERFILE
    return DaggerBuildSpec(
        context=request.context.absolute(),
        dockerfile=dockerfile,
        platforms=tuple(request.platforms),
        build_args=dict(request.build_args),
        target=request.target or "",
        secret_ids=tuple(ids),
        labels=dict(request.labels),
        excludes=tuple(excludes),
        output=output,
    )


def describe(spec: DaggerBuildSpec, secret_sources: Mapping[str, str] | None = None) -> str:
    """The Dagger API operations :func:`pipeline.dagger.graph.build_variants` and the executor
    run for ``spec``, as readable text. Secrets appear by id (and source), never by value."""
    sources = secret_sources or {}
    lines = ["dagger session: attach to DAGGER_SESSION_PORT or start `dagger session`"]
    exclude = f", exclude={list(spec.excludes)}" if spec.excludes else ""
    lines.append(f"context = host.directory({str(spec.context)!r}{exclude})")
    lines.append(f"context = context.withNewFile({spec.dockerfile!r}, <rendered Dockerfile>)")
    for sid in spec.secret_ids:
        source = f"  # from {sources[sid]}" if sid in sources else ""
        lines.append(f"secret {sid} = setSecret(name={sid!r}, plaintext=<hidden>){source}")
    platforms: Sequence[str | None] = spec.platforms or (None,)
    for platform in platforms:
        args = [f"dockerfile={spec.dockerfile!r}"]
        if platform:
            args.append(f"platform={platform!r}")
        if spec.build_args:
            args.append(
                "buildArgs=[" + ", ".join(f"{k}={v}" for k, v in spec.build_args.items()) + "]"
            )
        if spec.target:
            args.append(f"target={spec.target!r}")
        if spec.secret_ids:
            args.append("secrets=[" + ", ".join(spec.secret_ids) + "]")
        name = platform or "default platform"
        lines.append(f"variant[{name}] = context.dockerBuild({', '.join(args)})")
        for key, value in spec.labels.items():
            lines.append(f"variant[{name}] = variant.withLabel({key!r}, {value!r})")
    variants = len(platforms)
    rest = f", platformVariants=<{variants - 1} more>" if variants > 1 else ""
    out = spec.output
    if out.kind == "push":
        for ref in out.refs:
            lines.append(f"publish(address={ref!r}{rest}, mediaTypes=OCIMediaTypes) -> ref@digest")
    elif out.kind in ("oci", "docker"):
        lines.append(f"export(path={str(out.dest)!r}{rest}, mediaTypes={out.media_types})")
    elif out.kind == "load":
        lines.append(f"export(path=<temp tar>{rest}, mediaTypes=DockerMediaTypes)")
        tags = " ".join(out.refs) or "(no tags)"
        lines.append(f"docker load -i <temp tar>; docker tag <image id> {tags}")
    else:
        lines.append("sync() each variant (build only: add --push, --load or --output to keep it)")
    return "\n".join(lines)
