"""Why a build failed, read from the engine's output: the step that failed, and the error.

:class:`StepTracker` follows the step headers an engine prints (the grammar is
:mod:`pipeline.stepheaders`) to name the step that failed; :func:`build_error` is the
:class:`~pipeline.errors.BuildError` of a failed build: a killed or stopped engine, or the
failed step with the last lines of output.
"""

from __future__ import annotations

import signal

from pipeline.backends.process import RunOutcome
from pipeline.errors import BuildError
from pipeline.stepheaders import (
    BRACKETED,
    FAILED_SUMMARY,
    NUMBERED_ERROR,
    PROGRESS_ERROR,
    PROGRESS_LINE,
    numbered_step,
)


class StepTracker:
    """Follows step headers in engine output to name the step that failed."""

    def __init__(self) -> None:
        self._headers: dict[str, str] = {}
        self.current: str | None = None
        self.failed: str | None = None

    def __call__(self, line: str) -> None:
        text = line.strip()
        progress = PROGRESS_LINE.match(text)
        if progress and BRACKETED.match(progress["text"]):
            self._headers[progress["vertex"]] = progress["text"]
            self.current = progress["text"]
        elif match := PROGRESS_ERROR.match(text):
            self.failed = self._headers.get(match["vertex"], self.failed)
        elif progress and progress["vertex"] not in self._headers:
            # the first line of any other vertex ("#13 pushing REG/NAME:TAG with docker"):
            # named when it fails (a push), but not a Dockerfile step: not `current`
            self._headers[progress["vertex"]] = progress["text"]
        elif match := FAILED_SUMMARY.match(text):
            self.failed = self.failed or match["step"]
        elif step := numbered_step(text):
            self.current = f"STEP {step.n}/{step.m}: {step.text}"
        elif match := NUMBERED_ERROR.search(text):
            self.failed = self.failed or match["step"]

    @property
    def step(self) -> str | None:
        return self.failed or self.current


def build_error(backend: str, outcome: RunOutcome, tracker: StepTracker) -> BuildError:
    if outcome.returncode < 0:
        message = (
            f"the engine process was killed by signal {_signal_name(-outcome.returncode)} "
            f"(exit {outcome.returncode})"
        )
    elif outcome.returncode in (130, 143):
        message = f"the engine was stopped (exit {outcome.returncode})"
    else:
        message = f"build failed (exit {outcome.returncode})"
    tail = [line for line in outcome.tail if line.strip()][-15:]
    return BuildError(message, backend=backend, step=tracker.step, output_tail=tail)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
