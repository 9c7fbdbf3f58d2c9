"""The Python API: build a bento into an image on any backend.

``build(...)`` is a thin sync wrapper over the async :func:`abuild`; the CLI (``python -m
pipeline build``) calls the same functions, so both validate alike. The flow::

    resolve_bento -> render_dockerfile -> temporary_context -> BuildRequest -> executor.build

Every bad input raises a :class:`~pipeline.errors.PipelineError` subclass (naming the option
and what is allowed) before anything is built or written.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from attrs import evolve, frozen

from pipeline.backends.registry import select_backend
from pipeline.bento import resolve_bento
from pipeline.buildoptions import BuildOptions as BuildOptions
from pipeline.buildoptions import default_tag as default_tag
from pipeline.buildoptions import options_from_json
from pipeline.buildoptions import parse_opt as parse_opt
from pipeline.buildoptions import parse_options as parse_options
from pipeline.buildoptions import parse_platforms as parse_platforms
from pipeline.buildoptions import parse_tags as parse_tags
from pipeline.buildplan import (
    BuildPlan,
    manifest_changes,
)
from pipeline.config import Bento
from pipeline.errors import BuildError, ConfigError
from pipeline.executor import OutputSink
from pipeline.graph import StageGraph
from pipeline.labels import BENTO_TAG_LABEL as BENTO_TAG_LABEL
from pipeline.labels import image_labels as image_labels
from pipeline.labels import public_url as public_url
from pipeline.paths import user_path
from pipeline.planner import build_inputs, compute_plan, plan_steps, step_origin
from pipeline.prepared import PreparedBuild, build_request, prepare
from pipeline.request import (
    BuildRequest,
    BuildResult,
)


async def abuild(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    on_output: OutputSink | None = None,
    on_prepared: Callable[[PreparedBuild], None] | None = None,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> BuildResult:
    """Build ``bento`` (a bento dir, a project dir with ``bentofile.yaml`` or a store tag).

    Keyword options: ``tags``, ``platforms``, ``secrets`` (``"id=X,src=FILE"``,
    ``"id=X,env=VAR"`` or :class:`SecretSpec`), ``build_args``, ``target``, ``cache_from``,
    ``cache_to``, ``progress``, ``push``, ``load``, ``output``, ``labels``, ``no_cache``,
    ``ca_cert``, ``opts`` (backend pass-through), and BentoML's containerize options
    ``network``, ``pull``, ``ssh``, ``add_hosts``, ``iidfile``, ``metadata_file``, ``quiet``,
    ``run_as_root`` and ``features`` (bentoml extras). ``bentoml.container.build``'s keyword
    names are aliases (``bento_tag``, ``image_tag``, ``build_arg``, ``label``, ``secret``,
    ``platform``, ``add_host``, ...; its other engine flags become ``opts``); any other keyword
    is a :class:`~pipeline.errors.ConfigError`. ``graph`` is the stage graph to render
    (default :func:`pipeline.graph.default_graph`; add, replace or reorder stages on it).
    ``backend`` defaults to
    ``PIPELINE_BACKEND``/``BENTOML_CONTAINERIZE_BACKEND`` or the first healthy engine.
    ``on_output`` receives engine output lines (secrets redacted). The build runs the
    :class:`~pipeline.buildplan.BuildPlan` :func:`plan` prints; the result names the bento and
    the plan's digest. Raises a :class:`~pipeline.errors.PipelineError` on bad input and
    :class:`~pipeline.errors.BuildError` when the engine fails.
    """
    prepared = await anyio.to_thread.run_sync(
        functools.partial(
            prepare, bento, backend=backend, template=template, graph=graph, **options
        )
    )
    if on_prepared is not None:
        on_prepared(prepared)
    with build_request(prepared) as request:
        planned = await anyio.to_thread.run_sync(
            functools.partial(compute_plan, prepared, request, template=template, graph=graph)
        )
        return await _run_plan(prepared, request, planned, on_output)


async def _run_plan(
    prepared: PreparedBuild,
    request: BuildRequest,
    planned: BuildPlan,
    on_output: OutputSink | None,
) -> BuildResult:
    try:
        inputs = build_inputs(request, planned)
        result = await prepared.selection.executor.build(planned, inputs, on_output=on_output)
    except BuildError as error:
        if error.origin is None and error.step:
            origin = step_origin(error.step, prepared.bento, plan_steps(planned))
            raise error.with_origin(origin) from None
        raise
    return evolve(
        result,
        bento=prepared.bento.tag,
        plan_digest=planned.digest,
        labels=dict(request.labels),
    )


def build(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    on_output: OutputSink | None = None,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> BuildResult:
    """Synchronous :func:`abuild` (same arguments, same result, same errors)."""
    return anyio.run(
        functools.partial(
            abuild,
            bento,
            backend=backend,
            on_output=on_output,
            template=template,
            graph=graph,
            **options,
        )
    )


def plan(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    check: bool = True,
    **options: Any,
) -> BuildPlan:
    """The :class:`~pipeline.buildplan.BuildPlan` :func:`build` would run, with the same
    arguments; nothing is built or written. A project is built into a temporary store that is
    removed again (its content version is the one a real build stores; when the store already
    holds it, that bento is the plan's). ``check`` runs every check of the engine a real build
    runs (installed and healthy, its platforms, secrets and push): ``build --dry-run``.
    """
    with tempfile.TemporaryDirectory(prefix="pipeline-plan-") as scratch:
        prepared = prepare(
            bento,
            backend=backend,
            template=template,
            graph=graph,
            project_store=Path(scratch),
            **options,
        )
        with build_request(prepared) as request:
            if check:
                prepared.selection.executor.check(request, thorough=True)
            return compute_plan(prepared, request, template=template, graph=graph)


def load_plan(path: str | Path) -> BuildPlan:
    """A plan written by ``plan -o json`` (or :meth:`BuildPlan.to_json`), checked."""
    file = user_path(path, field="--plan")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the plan: {exc}", file=file, field="--plan") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the plan is not JSON: {exc}", file=file, field="--plan") from None
    return BuildPlan.from_json(data, file=file)


async def abuild_plan(
    planned: BuildPlan,
    *,
    on_output: OutputSink | None = None,
    on_prepared: Callable[[PreparedBuild], None] | None = None,
    file: Path | None = None,
) -> BuildResult:
    """Run ``planned`` (e.g. :func:`load_plan`'s): its bento is resolved again from its source
    (a project is stored, as by a build), its context written from it with the plan's
    Dockerfile, and the build runs only when the bento, the context's files, the secrets and
    the engine's commands are still the plan's; else a ConfigError says what changed."""
    prepared = await anyio.to_thread.run_sync(
        functools.partial(_prepare_planned, planned, file=file)
    )
    if on_prepared is not None:
        on_prepared(prepared)
    with build_request(prepared) as request:
        again = await anyio.to_thread.run_sync(
            functools.partial(compute_plan, prepared, request, instructions=planned.instructions)
        )
        _same_plan(planned, again, file)
        return await _run_plan(prepared, request, planned, on_output)


def build_plan(planned: BuildPlan, *, on_output: OutputSink | None = None) -> BuildResult:
    """Synchronous :func:`abuild_plan`."""
    return anyio.run(functools.partial(abuild_plan, planned, on_output=on_output))


def _prepare_planned(planned: BuildPlan, *, file: Path | None) -> PreparedBuild:
    options = options_from_json(planned.options, file=file)
    created = planned.bento.created
    try:
        when = None if created is None else datetime.fromisoformat(created)
    except ValueError:
        raise ConfigError(
            f"bento.created {created!r} is not an ISO 8601 time", file=file, field="bento.created"
        ) from None
    bento = resolve_bento(planned.bento.source, creation_time=when)
    if bento.tag != planned.bento.tag:
        raise ConfigError(
            f"{planned.bento.source} now gives the bento {bento.tag}, the plan was made for "
            f"{planned.bento.tag}: its files changed since",
            file=file,
            field="bento",
            hint="make the plan again",
        )
    selection = select_backend(planned.backend)
    return PreparedBuild(bento, selection, planned.dockerfile, options, planned.bento.source)


def _same_plan(planned: BuildPlan, again: BuildPlan, file: Path | None) -> None:
    if planned.digest == again.digest:
        return
    changes = [f"context: {c}" for c in manifest_changes(planned.context, again.context)]
    for name in ("secrets", "commands", "tags", "platforms", "labels", "build_args", "backend"):
        if getattr(planned, name) != getattr(again, name):
            changes.append(f"{name}: {getattr(planned, name)!r} -> {getattr(again, name)!r}")
    raise ConfigError(
        "the plan no longer matches what it would build:\n  " + "\n  ".join(changes or ["?"]),
        file=file,
        hint="make the plan again (`python -m pipeline plan ... -o json`)",
    )


@frozen
class DryRun:
    """What :func:`dry_run` reports (the :class:`BuildPlan` in full is ``plan``)."""

    backend: str
    command: str
    dockerfile: str
    tags: tuple[str, ...]
    plan: BuildPlan | None = None


def dry_run(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> DryRun:
    """What :func:`build` would run (exact argv, or Dagger operations) and the Dockerfile:
    :func:`plan` with every engine check, nothing written."""
    planned = plan(bento, backend=backend, template=template, graph=graph, **options)
    command = "\n".join(planned.commands)
    return DryRun(planned.backend, command, planned.dockerfile, planned.tags, planned)
