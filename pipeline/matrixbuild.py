"""Matrix builds: one bento, many images - cells = platform x python x distro x cuda.

``matrix(...)`` is a thin sync wrapper over the async :func:`amatrix`. The flow::

    resolve the bento ONCE -> expand the cells (pure, pipeline.matrixcells)
    -> prepare every cell (validates, renders)
    -> build the runnable cells through pipeline.api.abuild (anyio task group, capacity limiter)
    -> MatrixResult (one row per cell: ok / failed / skipped / cancelled)

Every cell is its own build with a single platform and its own tag (from ``tag_template``),
even when the engine could build several platforms at once: each row then has its own status,
image and duration, and a failing architecture does not take the others down. (For one
multi-arch manifest under one tag, use ``pipeline.build(..., platforms=[...])``.)

A cell the distro table cannot do (a Python version, CUDA version or architecture the distro
does not offer) is *skipped* with the reason, and listed in the result. A value no distro has
at all (``--python 2.7``, an unknown distro, ``--cuda 99``) and a matrix whose every cell is
skipped are bad input: a :class:`~pipeline.errors.ConfigError` before anything is built or
stored.

Users call ``pipeline.matrix(...)`` and import from :mod:`pipeline.matrix`, the public face that
re-exports this module's names; code inside the package imports this module.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from attrs import frozen

from pipeline import api
from pipeline.backends.base import check_platforms
from pipeline.backends.registry import select_backend
from pipeline.bento import resolve_bento
from pipeline.config import Bento
from pipeline.errors import BackendError, ConfigError, PipelineError
from pipeline.executor import Executor
from pipeline.graph import StageGraph
from pipeline.matrixcells import (
    CELL_OWN_OPTIONS,
    DEFAULT_CONCURRENCY,
    Cell,
    CellResult,
    MatrixPlan,
    MatrixResult,
    PlannedCell,
    expand_matrix,
)

_P = ParamSpec("_P")
_T = TypeVar("_T")

CellOutput = Callable[[Cell, str], None]


def _check_options(options: Mapping[str, Any]) -> None:
    for name, why in CELL_OWN_OPTIONS.items():
        if options.get(name):
            raise ConfigError(
                f"a matrix build takes no {name}= option: {why}",
                field=f"--{name.rstrip('s').replace('_', '-')}",
            )
    api.parse_options(**options)  # every other option, validated once, up front


def plan_matrix(
    bento: str | Path | Bento,
    *,
    platforms: str | Sequence[str] | None = None,
    python_versions: str | Sequence[str] | None = None,
    distros: str | Sequence[str] | None = None,
    cuda_versions: str | Sequence[str] | None = None,
    tag_template: str | None = None,
    backend: str | None = None,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    check_engine: bool = False,
    **options: Any,
) -> tuple[MatrixPlan, str]:
    """Resolve the bento once, expand the cells and prepare (validate, render) every runnable
    one; returns the plan and the backend every cell builds with. A project directory is built
    into the store only after every cell rendered, so a bad matrix stores nothing.

    ``check_engine`` also asks the engine (a probe) whether it can build every platform."""
    _check_options(options)
    selection = select_backend(backend)
    backend_name = selection.name
    checked: list[bool] = []

    def expand(candidate: Bento) -> MatrixPlan:
        return expand_matrix(
            candidate,
            platforms=platforms,
            python_versions=python_versions,
            distros=distros,
            cuda_versions=cuda_versions,
            tag_template=tag_template,
        )

    def check(candidate: Bento) -> None:
        runnable = expand(candidate).runnable
        if check_engine:
            _check_engine_platforms(selection.executor, backend_name, runnable)
        for planned in runnable:
            api.prepare(
                planned.bento,
                backend=backend_name,
                template=template,
                graph=graph,
                tags=[planned.tag],
                platforms=[planned.cell.platform],
                **options,
            )
        checked.append(True)

    # `check` runs only for a project, on the new bento before it enters the store
    resolved = bento if isinstance(bento, Bento) else resolve_bento(str(bento), check=check)
    if not checked:
        check(resolved)
    return expand(resolved), backend_name


def _check_engine_platforms(
    executor: Executor, backend_name: str, cells: Sequence[PlannedCell]
) -> None:
    """A platform the engine cannot build here is bad input (exit 2), not a failed row."""
    buildable = executor.buildable_platforms()
    requested = list(dict.fromkeys(planned.cell.platform for planned in cells))
    check_platforms(backend_name, requested, tuple(buildable))


async def amatrix(
    bento: str | Path | Bento,
    *,
    platforms: str | Sequence[str] | None = None,
    python_versions: str | Sequence[str] | None = None,
    distros: str | Sequence[str] | None = None,
    cuda_versions: str | Sequence[str] | None = None,
    backend: str | None = None,
    tag_template: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    fail_fast: bool = False,
    on_output: CellOutput | None = None,
    on_start: Callable[[PlannedCell], None] | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> MatrixResult:
    """Build ``bento`` once per cell of ``platforms x python_versions x distros x
    cuda_versions``.

    Each axis takes a list or a comma-separated string; one left out is the bento's own value
    (platform: this machine's). ``cuda_versions`` may include ``"none"`` (no CUDA). Every cell
    is one single-platform build tagged from ``tag_template`` (default
    :data:`DEFAULT_TAG_TEMPLATE`; placeholders :data:`TEMPLATE_FIELDS`). At most
    ``concurrency`` cells build at once. A failed cell does not stop the others unless
    ``fail_fast``: then the first failure cancels the running cells and the rest are
    ``cancelled``. Other keyword options are :func:`pipeline.api.abuild`'s (``secrets``,
    ``build_args``, ``ca_cert``, ``push``, ``labels``, ...), except ``tags`` and ``platforms``.

    ``on_output(cell, line)`` gets engine output, ``on_start(planned)`` and ``on_cell(row)``
    report progress. Raises a :class:`~pipeline.errors.PipelineError` on bad input before
    anything is built; engine failures are rows with status ``failed``. Cancelling (Ctrl-C)
    cancels every running build (each cleans up its context and engine process).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"concurrency must be a whole number >= 1, got {concurrency!r}", field="--concurrency"
        )
    started = time.monotonic()
    plan, backend_name = await anyio.to_thread.run_sync(
        functools.partial(
            plan_matrix,
            bento,
            platforms=platforms,
            python_versions=python_versions,
            distros=distros,
            cuda_versions=cuda_versions,
            tag_template=tag_template,
            backend=backend,
            template=template,
            graph=graph,
            check_engine=True,
            **options,
        )
    )
    rows: dict[int, CellResult] = {}
    for index, planned in enumerate(plan.cells):
        if not planned.runnable:
            rows[index] = CellResult(planned.cell, "skipped", error=planned.skip_reason)
            if on_cell is not None:
                on_cell(rows[index])
    limiter = anyio.CapacityLimiter(concurrency)
    # podman/buildah keep one local name per image: two cells pulling python:3.11-slim for
    # different platforms at once make one fail ("image not known"). Their executor lets one
    # build (cell, or another process's) through its FROM steps at a time
    # (pipeline/backends/basepulls.py); the rest of each build still runs concurrently.

    async def run_cell(index: int, planned: PlannedCell, scope: anyio.CancelScope) -> None:
        async with limiter:
            if on_start is not None:
                on_start(planned)
            begun = time.monotonic()
            sink = None if on_output is None else functools.partial(on_output, planned.cell)
            try:
                result = await api.abuild(
                    planned.bento,
                    backend=backend_name,
                    template=template,
                    graph=graph,
                    on_output=sink,
                    tags=[planned.tag],
                    platforms=[planned.cell.platform],
                    **options,
                )
            except PipelineError as error:
                row = CellResult(
                    planned.cell,
                    "failed",
                    tag=planned.tag,
                    error=str(error),
                    duration=time.monotonic() - begun,
                )
            else:
                row = CellResult(
                    planned.cell,
                    "ok",
                    tag=planned.tag,
                    result=result,
                    duration=time.monotonic() - begun,
                )
            rows[index] = row
            if on_cell is not None:
                on_cell(row)
            if fail_fast and row.status == "failed":
                scope.cancel()

    async with anyio.create_task_group() as group:
        for index, planned in enumerate(plan.cells):
            if planned.runnable:
                group.start_soon(run_cell, index, planned, group.cancel_scope)

    for index, planned in enumerate(plan.cells):
        if index not in rows:  # only after fail_fast: other cancellations propagate
            rows[index] = CellResult(
                planned.cell, "cancelled", tag=planned.tag, error="cancelled by --fail-fast"
            )
            if on_cell is not None:
                on_cell(rows[index])
    return MatrixResult(
        bento=plan.bento.tag,
        backend=backend_name,
        rows=tuple(rows[i] for i in range(len(plan.cells))),
        duration=time.monotonic() - started,
    )


def _synchronous(function: Callable[_P, Awaitable[_T]]) -> Callable[_P, _T]:
    """``function`` (a coroutine function) run to its end in a new event loop."""

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return anyio.run(functools.partial(function, *args, **kwargs))

    return run


matrix = _synchronous(amatrix)
matrix.__name__ = matrix.__qualname__ = "matrix"
matrix.__doc__ = """Synchronous :func:`amatrix` (same arguments, same result, same errors)."""


@frozen
class CellDryRun:
    planned: PlannedCell
    dry_run: api.DryRun | None  # None for a skipped cell, or one a real build would fail
    error: str | None = None  # why the engine would refuse the cell (its checks ran)


def dry_run_matrix(
    bento: str | Path | Bento, *, backend: str | None = None, **arguments: Any
) -> tuple[str, list[CellDryRun]]:
    """What :func:`matrix` would run for each cell (exact argv and Dockerfile); builds
    nothing. Takes :func:`plan_matrix`'s arguments; returns the backend and one entry per
    cell."""
    plan, backend_name = plan_matrix(bento, backend=backend, **arguments)
    options = {
        k: v
        for k, v in arguments.items()
        if k not in ("platforms", "python_versions", "distros", "cuda_versions", "tag_template")
    }
    runs: list[CellDryRun] = []
    for planned in plan.cells:
        if not planned.runnable:
            runs.append(CellDryRun(planned, None))
            continue
        try:
            run = api.dry_run(
                planned.bento,
                backend=backend_name,
                tags=[planned.tag],
                platforms=[planned.cell.platform],
                **options,
            )
        except BackendError as exc:  # the engine's checks: this cell's build would fail so
            runs.append(CellDryRun(planned, None, exc.message))
            continue
        runs.append(CellDryRun(planned, run))
    return backend_name, runs
