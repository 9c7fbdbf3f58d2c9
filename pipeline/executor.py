"""The interface every executor implements: external-engine backends and the Dagger pipeline.

An executor runs one :class:`~pipeline.buildplan.BuildPlan` (with the
:class:`~pipeline.buildplan.BuildInputs` made for it: the context directory, the private secret
files) and returns one :class:`~pipeline.request.BuildResult`. It never re-parses bento
config: everything it needs is in the plan. The plan is made by asking the executor about a
:class:`~pipeline.request.BuildRequest` (:meth:`Executor.check`, :meth:`Executor.dry_run`); a
build takes it back only when the request it describes gives exactly the plan's commands here
(:func:`accept_plan`), so a build runs what its plan printed or does not start.

``on_output`` receives engine output line by line (already secret-free) for live progress;
executors also keep the last lines for error messages.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from pipeline.buildplan import (
    CONTEXT_PLACEHOLDER,
    BuildInputs,
    BuildPlan,
    PlannedSecret,
    request_for,
)
from pipeline.errors import BackendError
from pipeline.request import BuildRequest, BuildResult

OutputSink = Callable[[str], None]


@runtime_checkable
class Executor(Protocol):
    name: str
    #: the Dockerfile may use ``RUN --mount`` (BuildKit): secrets, caches (the renderer drops
    #: cache mounts and refuses secret mounts otherwise)
    renders_mounts: bool
    #: the most ``sharing=locked`` cache mounts one ``RUN`` may hold here (None: no limit)
    max_locked_cache_mounts: int | None

    async def build(
        self, plan: BuildPlan, inputs: BuildInputs, *, on_output: OutputSink | None = None
    ) -> BuildResult:
        """Run ``plan`` (refused, exit 2, when :func:`accept_plan` refuses it)."""
        ...

    def dry_run(self, request: BuildRequest) -> str:
        """What a build of ``request`` runs (argv or API operations), as printable text: the
        plan's ``commands`` (:func:`plan_commands`)."""
        ...

    def check(self, request: BuildRequest, *, thorough: bool = True) -> object:
        """Refuse what this engine cannot build here (a BackendError/ConfigError, exit 2):
        ``thorough`` checks everything a real build would find out (``--dry-run``)."""
        ...

    def buildable_platforms(self) -> tuple[str, ...]:
        """The platforms this engine can build for here (empty: not known; the engine
        decides). Probes the engine."""
        ...

    def run_hint(self, tag: str) -> str | None:
        """The command that runs image ``tag`` when a build lands it in a local image store
        (``docker run ...``), else None."""
        ...


def plan_commands(
    executor: Executor, request: BuildRequest, secrets: Sequence[PlannedSecret]
) -> tuple[str, ...]:
    """``executor``'s commands for ``request`` as a plan records them: the context directory
    is ``<context>``, private files in ``$TMPDIR`` are ``<tmp>/...`` and each secret file is
    named by its planned source (``secrets``, in the request's order)."""
    text = executor.dry_run(request)
    for secret, planned in zip(request.secrets, secrets, strict=True):
        if secret.src is not None and planned.source != str(secret.src):
            text = text.replace(str(secret.src), planned.source)
    text = text.replace(str(request.context), CONTEXT_PLACEHOLDER)
    text = text.replace(tempfile.gettempdir().rstrip("/") + "/", "<tmp>/")
    return tuple(text.splitlines())


def accept_plan(executor: Executor, plan: BuildPlan, inputs: BuildInputs) -> BuildRequest:
    """The request ``executor`` runs for ``plan``: refused (BackendError, exit 2) when the plan
    is another engine's, or when the commands it would run here are not the plan's (the plan
    was made with another version of the engine's CLI, or changed)."""
    if plan.backend != executor.name:
        raise BackendError(
            f"the plan is for the {plan.backend!r} backend, not {executor.name!r}",
            field="backend",
            hint=f"run it with --backend {plan.backend}, or make the plan for {executor.name}",
        )
    request = request_for(plan, inputs)
    here = plan_commands(executor, request, plan.secrets)
    if here != tuple(plan.commands):
        planned, actual = _first_difference(tuple(plan.commands), here)
        raise BackendError(
            f"{executor.name} would not run the plan's commands here: the plan has "
            f"{planned!r}, this machine runs {actual!r}",
            field="commands",
            hint="make the plan again on this machine (`python -m pipeline plan ...`)",
        )
    return request


def _first_difference(planned: tuple[str, ...], here: tuple[str, ...]) -> tuple[str, str]:
    """The first command that differs, narrowed to the words that differ when the rest of
    the line is the same (``--tag a:1`` vs ``--tag a:2``, not two whole argv lines)."""
    for a, b in zip(planned, here, strict=False):
        if a != b:
            return _differing_words(a, b)
    longer = len(planned) > len(here)
    extra = (planned if longer else here)[min(len(planned), len(here))]
    return (extra, "(nothing)") if longer else ("(nothing)", extra)


def _differing_words(a: str, b: str) -> tuple[str, str]:
    left, right = a.split(" "), b.split(" ")
    start = 0
    while start < min(len(left), len(right)) and left[start] == right[start]:
        start += 1
    end = 0
    while end < min(len(left), len(right)) - start and left[-1 - end] == right[-1 - end]:
        end += 1
    # one word of context on the left (the flag a changed value belongs to)
    start = max(0, start - 1)
    shown = (" ".join(left[start : len(left) - end]), " ".join(right[start : len(right) - end]))
    return (shown[0] or "(nothing)", shown[1] or "(nothing)")


__all__ = ["Executor", "OutputSink", "accept_plan", "plan_commands"]
