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
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from attrs import evolve

from pipeline.backends import basepulls, credentials, secretscan, verify, workingcontainers
from pipeline.backends.base import (
    BackendSpec,
    Capabilities,
    Health,
    check_platforms,
    native_platform,
)
from pipeline.backends.buildfailures import StepTracker, build_error
from pipeline.backends.flags import ALL, BuildFlags, probe_build_flags
from pipeline.backends.process import Redactor, run_streaming
from pipeline.backends.pushfailures import (
    AuthRefusal,
    PushFailure,
    auth_refusal,
    build_push_failure,
    describe_push_failure,
)
from pipeline.backends.support import check_request
from pipeline.backends.userfiles import absorb_file_opts, check_user_files, write_user_files
from pipeline.backends.verify import Store
from pipeline.buildplan import BuildInputs, BuildPlan
from pipeline.errors import BackendError, BuildError, PipelineWarning, RegistryAuthError
from pipeline.executor import OutputSink, accept_plan
from pipeline.request import CA_CERT_SECRET_ID, BuildRequest, BuildResult, SecretSpec

_PUSHED_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")


class ExternalExecutor:
    """Runs one external engine described by a :class:`BackendSpec`."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.renders_mounts = bool(spec.dockerfile_mounts)
        self.max_locked_cache_mounts = spec.max_locked_cache_mounts

    # -- pure -------------------------------------------------------------------------------
    def argv(
        self,
        request: BuildRequest,
        *,
        iidfile: str | None = None,
        metadata_file: str | None = None,
        flags: BuildFlags = ALL,
    ) -> list[str]:
        """The build command; ``flags``: what the installed binary takes (default: all)."""
        options: dict[str, Any] = {}
        if self.spec.iidfile and iidfile is not None:
            options["iidfile"] = iidfile
        if self.spec.metadata_file and metadata_file is not None:
            options["metadata_file"] = metadata_file
        if self.spec.build_command is not None:
            options["flags"] = flags
        return [*self.root_prefix(request), *self.spec.construct_build_args(request, **options)]

    def root_prefix(self, request: BuildRequest, *, euid: int | None = None) -> list[str]:
        """``sudo -E`` for BentoML's ``--run-as-root`` (nothing when we are root already)."""
        if not request.run_as_root:
            return []
        if (os.geteuid() if euid is None else euid) == 0:
            return []
        return ["sudo", "-E"]

    def check_options(self, request: BuildRequest) -> None:
        """BentoML's containerize options this engine lacks: ConfigError before anything runs."""
        check_request(request, None if self.spec.plugin else self.name)
        if request.check_secrets:
            self._scanner(request)  # refuses up front what cannot be scanned
        if self.root_prefix(request) and shutil.which("sudo") is None:
            raise BackendError(
                "--run-as-root runs the engine with sudo, and sudo is not installed",
                field="--run-as-root",
                hint="run the build as root, or install sudo",
            )

    def dry_run(self, request: BuildRequest) -> str:
        request = absorb_file_opts(request)
        self.check_options(request)
        # env secrets on file-only engines: the private file the build would write them to
        request = self._env_secrets_as_files(request, Path(tempfile.gettempdir(), _PRIVATE_DRY))
        flags = self.flags()
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.spec.env.items()))
        command = shlex.join(self.argv(request, flags=flags))
        lines = [f"{shlex.join(argv)} || true" for argv in self.prepare_commands(request)]
        lines.append(f"{env} {command}" if env else command)
        if request.push:
            lines += [shlex.join(argv) for argv in self.push_commands(request, flags=flags)]
        return "\n".join(lines)

    def prepare_commands(self, request: BuildRequest) -> list[list[str]]:
        """What runs before the build, its failure ignored (e.g. dropping an old manifest list)."""
        if self.spec.prepare_commands is None:
            return []
        return [[*self.root_prefix(request), *argv] for argv in self.spec.prepare_commands(request)]

    def push_commands(
        self, request: BuildRequest, *, digestfile: str | None = None, flags: BuildFlags = ALL
    ) -> list[list[str]]:
        """What runs after the build to push (nothing when the build itself pushes)."""
        if self.spec.push_commands is None:
            return []
        if self.spec.build_command is not None:
            commands = self.spec.push_commands(request, digestfile, flags=flags)
        else:
            commands = self.spec.push_commands(request, digestfile)
        return [[*self.root_prefix(request), *argv] for argv in commands]

    def run_hint(self, tag: str) -> str | None:
        """The command that runs the built image, when it lands in a local image store."""
        if self.spec.run_command is None:
            return None
        return f"{self.spec.run_command} run --rm -p 127.0.0.1:3000:3000 {tag}"

    # -- effectful --------------------------------------------------------------------------
    def flags(self) -> BuildFlags:
        """The installed binary's build flags (probed once per binary; ``ALL`` for plugins)."""
        if self.spec.build_command is None:
            return ALL
        return probe_build_flags(self.spec.build_command, env=self.spec.env)

    def health(self) -> Health:
        return self.spec.health()

    def require_healthy(self) -> None:
        """BackendError (exit 2) naming why the engine is not usable."""
        health = self.spec.health()
        if not health.ok:
            raise BackendError(f"backend {self.name!r} is not usable: {health.reason}")

    def _binary_found(self) -> bool:
        return bool(self.spec.binary) and shutil.which(self.spec.binary) is not None

    def capabilities(self) -> Capabilities:
        return self.spec.capabilities()

    def buildable_platforms(self) -> tuple[str, ...]:
        return tuple(self.spec.capabilities().platforms)

    def check(self, request: BuildRequest, *, thorough: bool = True) -> Capabilities | None:
        """Refuse what the engine cannot do before starting it (BackendError, exit 2).

        ``thorough=False`` is a real build's check, which spends no engine process on what the
        build itself will show: the health probe runs only to explain a failed build (or when
        the binary is missing), and capabilities are probed only when the request depends on
        one (secrets, push, platforms); ``None`` then. ``--dry-run`` and ``backends`` check
        everything.
        """
        self.check_options(request)
        lazy = not thorough and not self.spec.plugin
        if not lazy or not self._binary_found():
            self.require_healthy()
        if lazy and not (request.secrets or request.push or request.platforms):
            return None
        caps = self.spec.capabilities()
        if request.secrets and not caps.secrets:
            why = "its plugin declares buildkit_support=False" if self.spec.plugin else "here"
            raise BackendError(
                f"{self.name} cannot pass build secrets ({why})",
                field="--secret",
                hint="use a BuildKit engine (docker, buildx) or podman/buildah",
            )
        if self.spec.plugin:
            return caps  # push and platforms: a plugin declares none, its engine decides
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
        lands_nowhere = (
            self.spec.result_store is not None and self.spec.result_store(request) is None
        )
        if len(request.platforms) > 1 and not (request.push or request.output) and lands_nowhere:
            warnings.warn(
                f"several --platform values without --push or --output: {self.name} keeps the "
                "result only in its build cache",
                PipelineWarning,
                stacklevel=2,
            )
        return caps

    async def build(
        self, plan: BuildPlan, inputs: BuildInputs, *, on_output: OutputSink | None = None
    ) -> BuildResult:
        """Run ``plan``: refused (exit 2) unless its commands are the ones run here."""
        request = await anyio.to_thread.run_sync(accept_plan, self, plan, inputs)
        return await self.run(request, on_output=on_output)

    async def run(
        self, request: BuildRequest, *, on_output: OutputSink | None = None
    ) -> BuildResult:
        """Build ``request`` (what :meth:`build` runs once the plan is accepted)."""
        started = time.monotonic()
        request = absorb_file_opts(request)
        check_user_files(request)
        caps = await anyio.to_thread.run_sync(partial(self.check, request, thorough=False))
        # the engine's environment: where it (and so we) find registry credentials
        environ = {**os.environ, **self.spec.env, **request.env}
        logins = await anyio.to_thread.run_sync(login_secrets, request, self.spec, environ)
        redact = Redactor([*(secret.read() for secret in request.secrets), *logins])
        tracker = StepTracker()
        # podman/buildah: one build at a time pulls base images into the shared store
        gate = (
            basepulls.PullGate(_read_text(request.dockerfile_path))
            if self.spec.serial_base_pulls
            else None
        )

        # --quiet: engine output only for the error message; the CLI prints just the id
        show = None if request.quiet else on_output

        def sink(line: str) -> None:
            tracker(line)
            if gate is not None:
                gate.see(line)
            if show is not None:
                show(line)

        def waiting(lock: Path) -> None:
            if show is not None:
                show(f"waiting for another build to pull its base images (lock {lock})")

        inherit = request.progress == "tty" and sys.stderr.isatty() and not request.quiet
        if request.progress == "tty" and not inherit:
            # not a terminal: an engine asked for its tty display fails ("not a console")
            request = evolve(request, progress="plain")
        # marks the working containers this build creates, to remove them if it is stopped
        build_id = workingcontainers.new_build_id() if self.spec.working_containers else None
        if build_id is not None:
            marker = {workingcontainers.MARKER_ARG: build_id}
            request = evolve(request, build_args={**request.build_args, **marker})
        with _private_dir() as private:
            request = self._materialize_env_secrets(request, private)
            iidfile, metadata, digestfile = private / "iid", private / "meta.json", private / "dig"
            flags = await anyio.to_thread.run_sync(self.flags)
            argv = self.argv(
                request, iidfile=str(iidfile), metadata_file=str(metadata), flags=flags
            )
            # The engine's own temp files go to our private dir too, so they are removed even
            # when the engine is stopped mid-build (podman leaves buildah* dirs on Ctrl-C).
            engine_tmp = private / "tmp"
            engine_tmp.mkdir()
            if self.spec.caches_in_tmpdir:
                _keep_buildah_caches(engine_tmp)
            try:
                try:
                    if gate is not None:
                        await gate.enter(on_wait=waiting)
                    for prepare in self.prepare_commands(request):
                        await run_streaming(prepare, env=dict(self.spec.env), redact=redact)
                    outcome = await run_streaming(
                        argv,
                        env={**self.spec.env, "TMPDIR": str(engine_tmp), **request.env},
                        on_line=sink,
                        redact=redact,
                        inherit_output=inherit,
                        # podman/buildah mount an empty secret when their environment has a
                        # variable named like its id (`--secret id=TOKEN,src=FILE` with TOKEN
                        # set); they get env secrets as files, so they need none of those
                        unset=() if self.spec.secret_env else tuple(s.id for s in request.secrets),
                    )
                finally:
                    if gate is not None:
                        gate.release()
            except BaseException:  # Ctrl-C, a cancelled matrix cell: the engine was stopped
                with anyio.CancelScope(shield=True):
                    await self._remove_working_containers(request, build_id, engine_tmp)
                raise
            if outcome.returncode != 0:
                await self._remove_working_containers(request, build_id, engine_tmp)
                if outcome.returncode > 0 and not self.spec.plugin:
                    # the check skipped the health probe: an unusable engine says so (exit 2)
                    await anyio.to_thread.run_sync(self.require_healthy)
                refusal = (
                    auth_refusal(outcome.tail, request.tags, pushing=False)
                    if request.push and outcome.returncode > 0
                    else None
                )
                if refusal is not None:  # `build --push`: built and named, then refused
                    await self.remove_tags(request.tags, prefix=self.root_prefix(request))
                    raise await anyio.to_thread.run_sync(
                        partial(
                            self._auth_error,
                            refusal,
                            environ=environ,
                            step=f"push {refusal.tag}",
                            tail=outcome.tail,
                        )
                    )
                failed_push = (
                    build_push_failure(outcome.tail, request.tags, failed_step=tracker.failed)
                    if request.push and outcome.returncode > 0
                    else None
                )
                if failed_push is not None:  # `build --push`: built and named, not pushed
                    await self.remove_tags(request.tags, prefix=self.root_prefix(request))
                    raise self._push_error(
                        failed_push, step=f"push {failed_push.tag}", tail=outcome.tail
                    )
                raise build_error(self.name, outcome, tracker)
            image_id = _read_image_id(iidfile) if self.spec.iidfile else None
            if image_id is None and self._asks_for_image_id(request, flags):
                image_id = await self._inspect_image_id(request, redact)
            if request.check_secrets:
                await self._check_secrets(request)
            checked = self._verification_wanted(request)
            verified, entries = await self._verify_local(request) if checked else (None, [])
            digest = None
            pushes = self.push_commands(request, digestfile=str(digestfile), flags=flags)
            if request.push and pushes:
                pushed = await self._push(request, pushes, sink, redact, environ)
                digest = _read_digest(digestfile) or pushed
            elif request.push and self.spec.metadata_file:
                digest = _metadata_digest(metadata)
            if checked and request.push and request.tags:
                verified, digest, entries = await self._verify_pushed(request, digest, environ)
            result = BuildResult(
                backend=self.name,
                tags=request.tags,
                # not asked for: the engine's default, this machine's unless probed
                platforms=request.platforms
                or (caps.platforms[:1] if caps else ())
                or (native_platform(),),
                image_id=image_id,
                digest=digest,
                duration=time.monotonic() - started,
                log_tail=outcome.tail,
                argv=argv,
                verified=verified,
                platform_digests=verify.platform_digests(entries),
            )
            if not self.spec.plugin:  # a plugin got iidfile/metadata_file as its own options
                native = self.spec.metadata_file and flags.has("--metadata-file")
                write_user_files(request, result, engine_metadata=metadata if native else None)
        return result

    def _verification_wanted(self, request: BuildRequest) -> bool:
        """Read the result back when platforms were asked for explicitly and could come out
        wrong: several of them, a foreign one, or a push (what ships is what gets checked)."""
        if self.spec.plugin or not request.platforms:
            return False
        foreign = request.platforms != (native_platform(),)
        return bool(request.push or len(request.platforms) > 1 or foreign)

    def _scanner(self, request: BuildRequest) -> Store:
        """The local store that holds the result, for --check-secrets (BackendError, exit 2,
        when there is none: the image only goes to a registry or an --output)."""
        store = self.spec.result_store(request) if self.spec.result_store else None
        if store is None or request.output:
            raise BackendError(
                f"--check-secrets reads the image from the engine's local store, and {self.name} "
                "leaves none for this build",
                field="--check-secrets",
                hint="drop --output, or use docker/podman/buildah (buildx: with --load)",
            )
        if len(request.platforms) > 1:
            raise BackendError(
                "--check-secrets scans one image: build one --platform at a time",
                field="--check-secrets",
            )
        return store

    async def _check_secrets(self, request: BuildRequest) -> None:
        """Scan the built image for the secrets' bytes; a hit removes the tags (exit 1)."""
        values = {
            secret.id: secret.read() for secret in request.secrets if secret.id != CA_CERT_SECRET_ID
        }
        if not values or not request.tags:
            return
        tag = request.tags[0]
        store = self._scanner(request)
        try:
            findings = await anyio.to_thread.run_sync(secretscan.scan_image, store, tag, values)
        except (OSError, subprocess.SubprocessError) as exc:
            await self.remove_tags(request.tags, prefix=self.root_prefix(request))
            raise BuildError(
                f"--check-secrets could not read the image {tag} back: {exc}", backend=self.name
            ) from None
        if findings:
            await self.remove_tags(request.tags, prefix=self.root_prefix(request))
            raise BuildError(
                f"secrets found in the built image (it was removed): "
                f"{secretscan.describe(findings)}",
                backend=self.name,
            )

    async def _verify_local(
        self, request: BuildRequest
    ) -> tuple[str | None, list[verify.PlatformEntry]]:
        """Check the result in the engine's local store (before anything is pushed)."""
        store = self.spec.result_store(request) if self.spec.result_store else None
        if store is None or not request.tags:
            return None, []
        tag = request.tags[0]
        try:
            entries = await anyio.to_thread.run_sync(store.entries, tag, request.platforms)
        except verify.Unreadable as exc:
            verify.warn_unverified(tag, str(exc))
            return None, []
        if found := verify.problems(request.platforms, entries):
            await self.remove_tags(request.tags, prefix=self.root_prefix(request))
            raise verify.wrong_result(
                self.name, tag, request.platforms, found, entries, pushed=False
            )
        return "local store", entries

    async def _verify_pushed(
        self, request: BuildRequest, digest: str | None, environ: dict[str, str]
    ) -> tuple[str | None, str | None, list[verify.PlatformEntry]]:
        """Check what the registry now holds under the first tag; its digest is the result's
        (read with the credentials the engine pushed with)."""
        tag = request.tags[0]
        check = partial(
            verify.check_pushed,
            tag,
            request.platforms,
            digest,
            family=self.spec.auth_family,
            environ=environ,
        )
        try:
            found, entries, actual = await anyio.to_thread.run_sync(check)
        except verify.Unreadable as exc:
            verify.warn_unverified(tag, str(exc))
            return None, digest, []
        if found:
            raise verify.wrong_result(
                self.name, tag, request.platforms, found, entries, pushed=True
            )
        return "registry", actual, entries

    def _asks_for_image_id(self, request: BuildRequest, flags: BuildFlags) -> bool:
        """No ``--iidfile`` on this binary, but the image is in the engine's store by a tag."""
        return (
            self.spec.image_id_command is not None
            and not flags.has("--iidfile")
            and bool(request.tags)
            and request.output is None
            and len(request.platforms) <= 1
        )

    async def _inspect_image_id(self, request: BuildRequest, redact: Redactor) -> str | None:
        assert self.spec.image_id_command is not None
        lines: list[str] = []
        outcome = await run_streaming(
            [*self.root_prefix(request), *self.spec.image_id_command(request.tags[0])],
            env=dict(self.spec.env),
            on_line=lines.append,
            redact=redact,
        )
        found = [line.strip() for line in lines if line.strip().startswith("sha256:")]
        return found[0] if outcome.returncode == 0 and found else None

    async def _push(
        self,
        request: BuildRequest,
        commands: Sequence[Sequence[str]],
        sink: Callable[[str], None],
        redact: Redactor,
        environ: dict[str, str],
    ) -> str | None:
        """Run the push commands; the first digest a push printed (``docker push`` has no
        digest file: it prints ``TAG: digest: sha256:... size: N``)."""
        digests: list[str] = []

        def watch(line: str) -> None:
            if match := _PUSHED_DIGEST.search(line):
                digests.append(match.group(1))
            sink(line)

        for argv in commands:
            outcome = await run_streaming(
                argv, env=dict(self.spec.env), on_line=watch, redact=redact
            )
            if outcome.returncode != 0:
                await self.remove_tags(request.tags, prefix=self.root_prefix(request))
                pushed_tag = argv[-1].removeprefix("docker://")
                if refusal := auth_refusal(outcome.tail, [pushed_tag], pushing=True):
                    raise await anyio.to_thread.run_sync(
                        partial(
                            self._auth_error,
                            refusal,
                            environ=environ,
                            step=shlex.join(argv),
                            tail=outcome.tail,
                        )
                    )
                raise self._push_error(
                    describe_push_failure(outcome.tail, pushed_tag),
                    step=shlex.join(argv),
                    tail=outcome.tail,
                    exit_code=outcome.returncode,
                )
        return digests[0] if digests else None

    def _push_error(
        self,
        failed: PushFailure,
        *,
        step: str,
        tail: Sequence[str],
        exit_code: int | None = None,
    ) -> BuildError:
        """A push that failed for another reason than its credentials, naming the registry."""
        registry = verify.parse_reference(failed.tag).registry
        status = f" (exit {exit_code})" if exit_code is not None else ""
        return BuildError(
            f"push to {registry} failed{status}: {failed.reason}; the built tags were removed",
            backend=self.name,
            step=step,
            output_tail=[line for line in tail if line.strip()][-12:],
            hint=failed.hint(registry),
        )

    async def _remove_working_containers(
        self, request: BuildRequest, build_id: str | None, engine_tmp: Path
    ) -> None:
        """After a build that did not succeed: what it left in the engine's store."""
        if self.spec.working_containers is None or build_id is None:
            return
        await workingcontainers.remove_left_behind(
            self.spec.working_containers,
            build_id,
            engine_tmp,
            env=self.spec.env,
            prefix=self.root_prefix(request),
        )

    def _auth_error(
        self,
        refusal: AuthRefusal,
        *,
        environ: dict[str, str],
        step: str,
        tail: Sequence[str],
    ) -> RegistryAuthError:
        """The registry refused the push's credentials: which registry, which credentials (the
        file they came from, never the password) or that there were none, how to log in."""
        ref = verify.parse_reference(refusal.tag)
        registry, family = ref.registry, self.spec.auth_family
        found = credentials.lookup(
            registry, ref.repository, files=credentials.auth_files(family, environ)
        )
        login = f"`{credentials.login_command(self.spec.binary)} {registry}` (it writes to "
        login += f"{credentials.LOGIN_FILES[family]})"
        if found.credential is not None:
            problem = f" with {found.describe(registry)}"
            hint = f"check that user and password, then log in again: {login}"
        else:
            problem = f": {found.describe(registry)}"
            where = (
                "DOCKER_CONFIG to a directory whose config.json"
                if family == credentials.DOCKER
                else "REGISTRY_AUTH_FILE to an auth file that"
            )
            hint = f"log in first: {login}, or set {where} has them"
        return RegistryAuthError(
            f"push to {registry} failed: the registry refused authentication "
            f"({refusal.reason}){problem}; the built tags were removed",
            registry=registry,
            backend=self.name,
            step=step,
            output_tail=[line for line in tail if line.strip()][-6:],
            hint=hint,
        )

    async def remove_tags(self, tags: Sequence[str], *, prefix: Sequence[str] = ()) -> None:
        if self.spec.remove_image is None:
            return
        for tag in tags:
            await run_streaming([*prefix, *self.spec.remove_image(tag)], env=dict(self.spec.env))

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


def _keep_buildah_caches(engine_tmp: Path, *, euid: int | None = None) -> Path:
    """podman/buildah keep `RUN --mount=type=cache` directories under ``$TMPDIR/buildah-cache``
    (``buildah-cache-UID`` when rootless): with our private TMPDIR every build would start
    with empty pip/uv/apt caches. The name is linked to where they live without it (the
    user's own TMPDIR, else /var/tmp), so caches persist across builds as podman users expect.
    """
    uid = os.geteuid() if euid is None else euid
    name = "buildah-cache" if uid == 0 else f"buildah-cache-{uid}"
    persistent = Path(os.environ.get("TMPDIR") or "/var/tmp", name)
    link = engine_tmp / name
    try:
        persistent.mkdir(mode=0o700, parents=True, exist_ok=True)
        link.symlink_to(persistent, target_is_directory=True)
    except OSError:
        pass  # caches then last one build, as before
    return link


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


def login_secrets(request: BuildRequest, spec: BackendSpec, environ: dict[str, str]) -> list[bytes]:
    """The stored passwords for the registries a push goes to (to redact from engine output:
    engines do not print them, and if one ever did, nobody would see it). Files only: no
    credential helper runs for this."""
    if not request.push:
        return []
    files = credentials.read_back_files(spec.auth_family, environ)
    found: list[bytes] = []
    for tag in request.tags:
        ref = verify.parse_reference(tag)
        lookup = credentials.lookup(ref.registry, ref.repository, files=files, helpers=False)
        if lookup.credential is not None:
            found += lookup.credential.secrets()
    return found


def _read_text(path: Path) -> str:
    """The Dockerfile, to count its FROMs ("" when unreadable: the engine will say why)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
