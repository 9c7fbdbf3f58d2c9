"""The Dagger executor: a :class:`~pipeline.buildplan.BuildPlan` run through a Dagger engine.

``build`` takes the plan back (:func:`pipeline.executor.accept_plan`: its operations must be the
ones run here), uploads the context (``.dockerignore`` applied on the client), writes the rendered
Dockerfile into it, creates one named secret per ``--secret``, runs one ``dockerBuild`` per
platform and then publishes (``--push``), exports a tarball (``--output``) or loads the image
into the local docker engine (``--load``). The API calls live in :mod:`pipeline.dagger.graph`
(shared with the Dagger module); this module adds reading inputs, the session and error mapping.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.to_thread

from pipeline.backends import verify
from pipeline.backends.process import ProbeResult, probe
from pipeline.backends.support import check_request
from pipeline.backends.userfiles import absorb_file_opts, check_user_files, write_user_files
from pipeline.buildplan import BuildInputs, BuildPlan
from pipeline.cacert import system_ca_bundle
from pipeline.dagger.connection import ensure_available, session
from pipeline.dagger.failures import tail, translate
from pipeline.dagger.spec import (
    MAX_SECRET_BYTES,
    DaggerBuildSpec,
    check_secret_mounts,
    check_syntax_directive,
    describe,
    spec_from_request,
)
from pipeline.errors import BackendError, BuildError, ConfigError, PipelineWarning
from pipeline.executor import OutputSink, accept_plan
from pipeline.redaction import Redactor
from pipeline.request import CA_CERT_SECRET_ID, BuildRequest, BuildResult, SecretSpec

if TYPE_CHECKING:
    import dagger

    from pipeline.backends.verify import PlatformEntry

BACKEND = "dagger"


def read_secrets(secrets: Sequence[SecretSpec]) -> dict[str, str]:
    """Secret plaintexts by id, checked against what ``setSecret`` accepts. Never log these."""
    values = {}
    for secret in secrets:
        raw = secret.read()
        if len(raw) > MAX_SECRET_BYTES and secret.id == CA_CERT_SECRET_ID:
            raw = _own_certificates(raw)
        if len(raw) > MAX_SECRET_BYTES:
            ca_bundle = secret.id == CA_CERT_SECRET_ID
            raise ConfigError(
                f"secret {secret.id!r} is {len(raw)} bytes; Dagger accepts at most "
                f"{MAX_SECRET_BYTES}",
                field="--ca-cert" if ca_bundle else "--secret",
                hint=(
                    "--ca-cert bundles the system CA certificates with yours, which is too big "
                    "for a Dagger secret; use another backend (e.g. --backend buildx) for it"
                    if ca_bundle
                    else None
                ),
            )
        try:
            values[secret.id] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(
                f"secret {secret.id!r} ({secret.describe()}) is not UTF-8 text; Dagger secrets "
                "are strings (base64-encode binary secrets)",
                field="--secret",
            ) from None
    return values


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _own_certificates(bundle: bytes) -> bytes:
    """The ``--ca-cert`` bundle minus the system's CA certificates, if that fits a Dagger secret.

    ``--ca-cert`` mounts the system bundle plus the user's certificate, over 128 kB on most
    distributions. Behind a TLS-intercepting proxy every connection is re-signed by the
    proxy's CA, so the user's certificate alone is what the build needs.
    """
    system = system_ca_bundle()
    if system is None:
        return bundle
    known = {block.strip() for block in _PEM_BLOCK.findall(system.read_bytes())}
    own = [block for block in _PEM_BLOCK.findall(bundle) if block.strip() not in known]
    trimmed = b"\n".join(own) + b"\n"
    if not own or len(trimmed) > MAX_SECRET_BYTES:
        return bundle
    warnings.warn(
        f"--ca-cert: the system CA bundle does not fit a Dagger secret ({MAX_SECRET_BYTES} "
        "bytes); the build trusts only your certificate(s), which covers every connection a "
        "TLS-intercepting proxy re-signs",
        PipelineWarning,
        stacklevel=3,
    )
    return trimmed


def read_dockerfile(request: BuildRequest) -> str:
    """The rendered Dockerfile's text (``# syntax=`` lines Dagger cannot run dropped)."""
    path = request.dockerfile_path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no Dockerfile {request.dockerfile!r} in the build context {str(request.context)!r}",
            file=path,
        ) from None
    return check_syntax_directive(text, file=str(path))


def tarball_digest(path: Path) -> str | None:
    """The image's digest from an exported tarball's OCI ``index.json`` (None if unreadable).

    With several platforms this is the digest of the image index, the value ``docker pull``
    and registries report for the multi-platform image.
    """
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile("index.json")
            index = json.load(member) if member is not None else {}
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return None
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if isinstance(manifests, list) and len(manifests) == 1 and isinstance(manifests[0], dict):
        digest = manifests[0].get("digest")
        return digest if isinstance(digest, str) else None
    return None


def loaded_image_id(output: str) -> str | None:
    """The image id from ``docker load`` output (``Loaded image ID: sha256:...``)."""
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Loaded image ID", "Loaded image"):
            return value.strip()
    return None


class DaggerExecutor:
    """Builds through a Dagger engine session (see :mod:`pipeline.dagger.connection`)."""

    name = BACKEND
    renders_mounts = True  # BuildKit inside the engine
    max_locked_cache_mounts: int | None = None

    def __init__(self, *, log_output: TextIO | None = sys.stderr, docker: str = "docker") -> None:
        self.log_output = log_output
        self.docker = docker

    def dry_run(self, request: BuildRequest) -> str:
        """The Dagger operations :meth:`build` would run; secrets by id and source only."""
        request = absorb_file_opts(request)
        check_request(request, BACKEND)
        spec = spec_from_request(request)
        return describe(spec, {s.id: s.describe() for s in request.secrets})

    def check(self, request: BuildRequest, *, thorough: bool = True) -> None:
        """The options Dagger cannot take, and (``thorough``) whether a session can be had."""
        request = absorb_file_opts(request)
        check_request(request, BACKEND)
        check_user_files(request)
        if thorough:
            anyio.run(ensure_available)

    def buildable_platforms(self) -> tuple[str, ...]:
        """Not known without an engine session: the engine decides (it emulates)."""
        return ()

    def run_hint(self, tag: str) -> str | None:
        """None: where the image lands depends on ``--load``/``--push``/``--output``."""
        return None

    async def build(
        self, plan: BuildPlan, inputs: BuildInputs, *, on_output: OutputSink | None = None
    ) -> BuildResult:
        """Run ``plan``: refused (exit 2) unless its operations are the ones run here."""
        request = await anyio.to_thread.run_sync(accept_plan, self, plan, inputs)
        return await self.run(request, on_output=on_output)

    async def run(
        self, request: BuildRequest, *, on_output: OutputSink | None = None
    ) -> BuildResult:
        """Build ``request`` (what :meth:`build` runs once the plan is accepted)."""
        started = time.monotonic()
        request = absorb_file_opts(request)
        check_request(request, BACKEND)
        check_user_files(request)
        spec = spec_from_request(request)
        dockerfile_text = read_dockerfile(request)
        plaintexts = read_secrets(request.secrets)
        check_secret_mounts(dockerfile_text, spec.secret_ids, file=request.dockerfile)
        if spec.output.kind == "load" and shutil.which(self.docker) is None:
            raise BackendError(
                f"--load needs the {self.docker!r} CLI to load the image, and it is not on PATH",
                field="--load",
                hint="use --output type=docker,dest=image.tar and load it where docker runs",
            )
        log: list[str] = []
        redact = Redactor(plaintexts.values())

        def say(line: str) -> None:
            line = redact(line)
            log.append(line)
            if on_output is not None and not request.quiet:
                on_output(line)

        quiet = request.progress == "quiet" or request.quiet
        log_output = None if quiet else self.log_output
        async with session(log_output=log_output) as client:
            import dagger

            try:
                image_id, digest = await self._run(client, spec, dockerfile_text, plaintexts, say)
            except dagger.DaggerError as exc:
                raise translate(exc, plaintexts.values()) from None
        verified: str | None = None
        entries: list[PlatformEntry] = []
        if spec.output.kind == "push" and spec.platforms and spec.output.refs:
            verified, digest, entries = await _verify_published(
                spec.output.refs[0], spec.platforms, digest
            )
        result = BuildResult(
            backend=BACKEND,
            tags=request.tags,
            platforms=spec.platforms,
            image_id=image_id,
            digest=digest,
            duration=time.monotonic() - started,
            log_tail=tuple(log[-20:]),
            verified=verified,
            platform_digests={e.platform: e.digest for e in entries if e.digest},
        )
        write_user_files(request, result)
        return result

    async def _run(
        self,
        client: dagger.Client,
        spec: DaggerBuildSpec,
        dockerfile_text: str,
        plaintexts: Mapping[str, str],
        say: OutputSink,
    ) -> tuple[str | None, str | None]:
        # lazy: it imports the dagger SDK (about a second); dry runs and checks do without it
        from pipeline.dagger import graph

        context = graph.context_directory(client, spec, dockerfile_text)
        secrets = graph.named_secrets(client, plaintexts)
        variants = graph.build_variants(context, spec, [secrets[i] for i in spec.secret_ids])
        say(f"building {', '.join(spec.platforms) or 'the engine platform'} with dockerBuild")
        out = spec.output
        if out.kind == "push":
            published = []
            for ref in out.refs:
                published.append(await graph.publish(variants, ref))
                say(f"published {published[-1]}")
            return None, published[0].rpartition("@")[2] or None
        if out.kind in ("oci", "docker"):
            assert out.dest is not None
            await self._export(variants, out.dest, docker=out.kind == "docker")
            say(f"exported {out.kind} tarball to {out.dest}")
            return None, tarball_digest(out.dest)
        if out.kind == "load":
            with tempfile.TemporaryDirectory(prefix="pipeline-dagger-") as tmp:
                tarball = Path(tmp) / "image.tar"
                await graph.export(variants, tarball, docker=True)
                image_id = await self._docker_load(tarball, out.refs, plaintexts)
            say(f"loaded {image_id} into docker as {' '.join(out.refs) or '(untagged)'}")
            return image_id, None
        await graph.sync_all(variants)
        say("built (no --push, --load or --output: the image stays in the Dagger cache)")
        return None, None

    async def _export(self, variants: list[dagger.Container], dest: Path, *, docker: bool) -> None:
        """Export to a temporary name beside ``dest`` and rename: never a half-written file."""
        from pipeline.dagger import graph  # lazy: the dagger SDK (see _run)

        dest = dest.absolute()
        if not dest.parent.is_dir():
            raise ConfigError(
                f"cannot write {str(dest)!r}: directory {str(dest.parent)!r} does not exist",
                field="--output",
            )
        partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
        try:
            await graph.export(variants, partial, docker=docker)
            if not partial.is_file():
                raise BackendError(
                    f"the Dagger engine reported the export done but wrote no {str(partial)!r}; "
                    "is the session running on another machine?",
                    field="--output",
                )
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)

    async def _docker_load(
        self, tarball: Path, refs: Sequence[str], plaintexts: Mapping[str, str]
    ) -> str:
        if not tarball.is_file():
            raise BackendError(
                "the Dagger engine wrote no image tarball to load; is the session running on "
                "another machine?",
                field="--load",
            )
        result = await _probe([self.docker, "load", "-i", str(tarball)])
        output = result.stdout + result.stderr
        image_id = loaded_image_id(result.stdout)
        if not result.ok or image_id is None:
            raise BuildError(
                "docker load of the Dagger image failed",
                backend=BACKEND,
                step=f"{self.docker} load -i <tarball>",
                output_tail=tail(output, plaintexts.values()),
            )
        for ref in refs:
            tagged = await _probe([self.docker, "tag", image_id, ref])
            if not tagged.ok:
                raise BuildError(
                    f"docker tag {ref} failed",
                    backend=BACKEND,
                    step=f"{self.docker} tag {image_id} {ref}",
                    output_tail=tail(tagged.stderr, plaintexts.values()),
                )
        return image_id


async def _verify_published(
    ref: str, platforms: Sequence[str], digest: str | None
) -> tuple[str | None, str | None, list[PlatformEntry]]:
    """Read a published multi-platform (or explicit-platform) image back from its registry:
    one entry per platform, each of its architecture; the registry's digest is the result's."""
    try:
        found, entries, actual = await anyio.to_thread.run_sync(
            verify.check_pushed, ref, platforms, digest
        )
    except verify.Unreadable as exc:
        verify.warn_unverified(ref, str(exc))
        return None, digest, []
    if found:
        raise verify.wrong_result(BACKEND, ref, platforms, found, entries, pushed=True)
    return "registry", actual, entries


async def _probe(argv: list[str]) -> ProbeResult:
    """``argv`` through the one runner, off the event loop (no time limit: a load takes long)."""
    return await anyio.to_thread.run_sync(functools.partial(probe, argv, timeout=None))
