"""An :class:`~pipeline.executor.Executor` for any :class:`BackendSpec`: checks, runs, reports.

Before the engine starts: its health (with the fix when it is not usable), the probed
capabilities against what the request asks (secrets, push, platforms). While it runs: output
streamed line by line with every secret value redacted, the last lines kept. After: the image
id, extra push commands, and on any failure no tag left behind.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from attrs import evolve

from pipeline.backends.base import BackendSpec, Capabilities, Health, check_platforms
from pipeline.backends.process import Redactor, RunOutcome, run_streaming
from pipeline.errors import BackendError, BuildError, PipelineWarning
from pipeline.executor import OutputSink
from pipeline.request import BuildRequest, BuildResult, SecretSpec

_BUILDKIT_HEADER = re.compile(r"^#(\d+) (\[[^\]]*\] .*)$")
_BUILDKIT_ERROR = re.compile(r"^#(\d+) ERROR")
_BUILDKIT_FAILED = re.compile(r"^ > (\[[^\]]*\] .*):$")
_BUILDAH_STEP = re.compile(r"^(?:STEP|Step) (\d+/\d+) ?: (.*)$")
_BUILDAH_ERROR = re.compile(r'building at STEP "(.*)"')


class StepTracker:
    """Follows step headers in engine output to name the step that failed."""

    def __init__(self) -> None:
        self._headers: dict[str, str] = {}
        self.current: str | None = None
        self.failed: str | None = None

    def __call__(self, line: str) -> None:
        text = line.strip()
        if match := _BUILDKIT_HEADER.match(text):
            self._headers[match.group(1)] = match.group(2)
            self.current = match.group(2)
        elif match := _BUILDKIT_ERROR.match(text):
            self.failed = self._headers.get(match.group(1), self.failed)
        elif match := _BUILDKIT_FAILED.match(text):
            self.failed = self.failed or match.group(1)
        elif match := _BUILDAH_STEP.match(text):
            self.current = f"STEP {match.group(1)}: {match.group(2)}"
        elif match := _BUILDAH_ERROR.search(text):
            self.failed = self.failed or match.group(1)

    @property
    def step(self) -> str | None:
        return self.failed or self.current


class ExternalExecutor:
    """Runs one external engine described by a :class:`BackendSpec`."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.name = spec.name

    # -- pure -------------------------------------------------------------------------------
    def argv(
        self,
        request: BuildRequest,
        *,
        iidfile: str | None = None,
        metadata_file: str | None = None,
    ) -> list[str]:
        files: dict[str, str] = {}
        if self.spec.iidfile and iidfile is not None:
            files["iidfile"] = iidfile
        if self.spec.metadata_file and metadata_file is not None:
            files["metadata_file"] = metadata_file
        return list(self.spec.construct_build_args(request, **files))

    def dry_run(self, request: BuildRequest) -> str:
        # env secrets on file-only engines: the private file the build would write them to
        request = self._env_secrets_as_files(request, Path(tempfile.gettempdir(), _PRIVATE_DRY))
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.spec.env.items()))
        command = shlex.join(self.argv(request))
        lines = [f"{env} {command}" if env else command]
        if request.push:
            lines += [shlex.join(argv) for argv in self.push_commands(request)]
        return "\n".join(lines)

    def push_commands(
        self, request: BuildRequest, *, digestfile: str | None = None
    ) -> list[list[str]]:
        """What runs after the build to push (nothing when the build itself pushes)."""
        if self.spec.push_commands is None:
            return []
        return self.spec.push_commands(request, digestfile)

    def run_hint(self, tag: str) -> str | None:
        """The command that runs the built image, when it lands in a local image store."""
        if self.spec.run_command is None:
            return None
        return f"{self.spec.run_command} run --rm -p 127.0.0.1:3000:3000 {tag}"

    # -- effectful --------------------------------------------------------------------------
    def health(self) -> Health:
        return self.spec.health()

    def capabilities(self) -> Capabilities:
        return self.spec.capabilities()

    def check(self, request: BuildRequest) -> Capabilities:
        """Refuse what the engine cannot do before starting it (BackendError, exit 2)."""
        health = self.spec.health()
        if not health.ok:
            raise BackendError(f"backend {self.name!r} is not usable: {health.reason}")
        caps = self.spec.capabilities()
        if self.spec.plugin:
            return caps
        if request.secrets and not caps.secrets:
            raise BackendError(
                f"{self.name} cannot pass build secrets here",
                field="--secret",
                hint="use a BuildKit engine (docker, buildx) or podman/buildah",
            )
        if request.push and not caps.push:
            raise BackendError(f"{self.name} cannot push from a build here", field="--push")
        check_platforms(self.name, request.platforms, caps.platforms)
        if len(request.platforms) > 1 and not caps.multi_platform:
            raise BackendError(
                f"{self.name} cannot build several platforms into one image here "
                f"(asked for {', '.join(request.platforms)})",
                field="--platform",
                hint="build one --platform at a time, or use buildx with a "
                "docker-container builder (`docker buildx create --use`)",
            )
        if (
            self.name == "buildx"
            and len(request.platforms) > 1
            and not (request.push or request.output)
        ):
            warnings.warn(
                "several --platform values without --push or --output: buildx keeps the "
                "result only in its build cache",
                PipelineWarning,
                stacklevel=2,
            )
        return caps

    async def build(
        self, request: BuildRequest, *, on_output: OutputSink | None = None
    ) -> BuildResult:
        started = time.monotonic()
        caps = await anyio.to_thread.run_sync(self.check, request)
        redact = Redactor(secret.read() for secret in request.secrets)
        tracker = StepTracker()

        def sink(line: str) -> None:
            tracker(line)
            if on_output is not None:
                on_output(line)

        inherit = request.progress == "tty" and sys.stderr.isatty()
        if request.progress == "tty" and not inherit:
            # not a terminal: an engine asked for its tty display fails ("not a console")
            request = evolve(request, progress="plain")
        with _private_dir() as private:
            request = self._materialize_env_secrets(request, private)
            iidfile, metadata, digestfile = private / "iid", private / "meta.json", private / "dig"
            argv = self.argv(request, iidfile=str(iidfile), metadata_file=str(metadata))
            # The engine's own temp files go to our private dir too, so they are removed even
            # when the engine is stopped mid-build (podman leaves buildah* dirs on Ctrl-C).
            engine_tmp = private / "tmp"
            engine_tmp.mkdir()
            outcome = await run_streaming(
                argv,
                env={**self.spec.env, "TMPDIR": str(engine_tmp), **request.env},
                on_line=sink,
                redact=redact,
                inherit_output=inherit,
                # podman/buildah mount an empty secret when their environment has a variable
                # named like its id (`--secret id=TOKEN,src=FILE` with TOKEN set); they get
                # env secrets as files, so they need none of those variables
                unset=() if self.spec.secret_env else tuple(s.id for s in request.secrets),
            )
            if outcome.returncode != 0:
                raise _build_error(self.name, outcome, tracker)
            image_id = _read_image_id(iidfile) if self.spec.iidfile else None
            digest = None
            if request.push and self.spec.push_commands is not None:
                await self._push(request, sink, redact, digestfile)
                digest = _read_digest(digestfile)
            elif request.push and self.spec.metadata_file:
                digest = _metadata_digest(metadata)
        platforms = request.platforms or caps.platforms[:1]
        return BuildResult(
            backend=self.name,
            tags=request.tags,
            platforms=platforms,
            image_id=image_id,
            digest=digest,
            duration=time.monotonic() - started,
            log_tail=outcome.tail,
            argv=argv,
        )

    async def _push(
        self,
        request: BuildRequest,
        sink: Callable[[str], None],
        redact: Redactor,
        digestfile: Path,
    ) -> None:
        for argv in self.push_commands(request, digestfile=str(digestfile)):
            outcome = await run_streaming(
                argv, env=dict(self.spec.env), on_line=sink, redact=redact
            )
            if outcome.returncode != 0:
                await self.remove_tags(request.tags)
                raise BuildError(
                    f"push failed (exit {outcome.returncode}); the built tags were removed",
                    backend=self.name,
                    step=shlex.join(argv),
                    output_tail=outcome.tail[-12:],
                )

    async def remove_tags(self, tags: Sequence[str]) -> None:
        if self.spec.remove_image is None:
            return
        for tag in tags:
            await run_streaming(self.spec.remove_image(tag), env=dict(self.spec.env))

    def _env_secrets_as_files(self, request: BuildRequest, private: Path) -> BuildRequest:
        """For engines without ``env=`` secrets: each one as ``private/secret-<id>`` (pure)."""
        if self.spec.secret_env or not any(s.env for s in request.secrets):
            return request
        secrets: Any = tuple(  # attrs' tuple converter confuses mypy
            SecretSpec(id=s.id, src=private / f"secret-{s.id}") if s.env is not None else s
            for s in request.secrets
        )
        return evolve(request, secrets=secrets)

    def _materialize_env_secrets(self, request: BuildRequest, private: Path) -> BuildRequest:
        """Engines without ``env=`` secrets get a 0600 file in a private temp dir instead."""
        as_files = self._env_secrets_as_files(request, private)
        for secret, original in zip(as_files.secrets, request.secrets, strict=True):
            if original.env is not None and secret.src is not None:
                fd = os.open(secret.src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(original.read())
        return as_files


_PRIVATE_PREFIX = "pipeline-build-"
_PRIVATE_DRY = f"{_PRIVATE_PREFIX}XXXXXXXX"  # the dry run's stand-in for the mkdtemp name


@contextmanager
def _private_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read_image_id(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text:
        return None
    return text if ":" in text else f"sha256:{text}"


def _read_digest(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text if text.startswith("sha256:") else None


def _metadata_digest(path: Path) -> str | None:
    """``containerimage.digest`` from a BuildKit ``--metadata-file``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    digest = data.get("containerimage.digest") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def _build_error(backend: str, outcome: RunOutcome, tracker: StepTracker) -> BuildError:
    if outcome.returncode < 0 or outcome.returncode in (130, 143):
        message = f"the engine was stopped (exit {outcome.returncode})"
    else:
        message = f"build failed (exit {outcome.returncode})"
    tail = [line for line in outcome.tail if line.strip()][-15:]
    return BuildError(message, backend=backend, step=tracker.step, output_tail=tail)
