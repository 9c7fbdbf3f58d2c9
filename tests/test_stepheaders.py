"""The one grammar of engine step headers (pipeline.stepheaders), fed the lines engines print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.backends.basepulls import FromPhase
from pipeline.backends.buildfailures import StepTracker
from pipeline.stepheaders import BUILDKIT_STEP, numbered_step, step_line, without_header

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("line", "n", "m", "keyword"),
    [
        ("STEP 5/9: RUN pip install x", 5, 9, "RUN"),  # buildah, podman
        ("[2/3] STEP 1/2: FROM python:3.11-slim AS base", 1, 2, "FROM"),  # podman 4, multi-stage
        ("Step 3/7 : COPY . /app", 3, 7, "COPY"),  # docker's classic builder
    ],
)
def test_numbered_steps(line: str, n: int, m: int, keyword: str) -> None:
    step = numbered_step(line)
    assert step is not None and (step.n, step.m, step.keyword) == (n, m, keyword)


def test_buildkit_step_numbers_with_and_without_a_stage() -> None:
    named = BUILDKIT_STEP.match("#9 [runtime 3/4] RUN true")
    assert named is not None and (named["stage"], named["n"], named["m"]) == ("runtime", "3", "4")
    plain = BUILDKIT_STEP.match("[2/2] RUN false")
    assert plain is not None and plain["stage"] is None
    assert BUILDKIT_STEP.match("#3 [internal] load .dockerignore") is None


@pytest.mark.parametrize(
    "step",
    [
        "[runtime 3/4] RUN true",
        "STEP 3/4: RUN true",
        "[1/2] STEP 3/4: RUN true",
        "#7 [3/4] RUN true",
    ],
)
def test_without_header_leaves_the_instruction(step: str) -> None:
    assert without_header(step) == "RUN true"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("#6 [runtime 2/4] RUN true", "[runtime 2/4] RUN true"),
        ("#3 [internal] load .dockerignore", "[internal] load .dockerignore"),
        ("#6 0.512 some log line", None),
        ("STEP 2/2: RUN true", "STEP 2/2: RUN true"),
        ("[2/3] STEP 1/2: FROM base AS runtime", "[2/3] STEP 1/2: FROM base AS runtime"),
        ("Step 1/9 : FROM python:3.11-slim", "Step 1/9 : FROM python:3.11-slim"),
        ("Collecting numpy", None),
    ],
)
def test_progress_shows_each_engines_step_lines(line: str, shown: str | None) -> None:
    assert step_line(line) == shown


def test_the_tracker_names_the_failed_step_of_each_engine() -> None:
    buildkit = StepTracker()
    for line in (
        "#5 [internal] load metadata for docker.io/library/python:3.11-slim",
        "#6 [2/2] RUN false",
        '#6 ERROR: process "/bin/sh -c false" did not complete successfully: exit code: 1',
        " > [2/2] RUN false:",
    ):
        buildkit(line)
    assert buildkit.step == "[2/2] RUN false"
    pushing = StepTracker()
    for line in ("#6 [2/2] RUN true", "#9 pushing 127.0.0.1:5000/a:1 with docker", "#9 ERROR: x"):
        pushing(line)
    assert pushing.step == "pushing 127.0.0.1:5000/a:1 with docker"
    buildah = StepTracker()
    for line in ("STEP 1/2: FROM python:3.11-slim", "[2/2] STEP 2/2: RUN false"):
        buildah(line)
    assert buildah.step == "STEP 2/2: RUN false"
    buildah('Error: error building at STEP "RUN false": exit status 1')
    assert buildah.step == "RUN false"


def test_the_from_phase_ends_at_the_first_step_after_every_from() -> None:
    phase = FromPhase(2)
    seen = [
        phase.see(line)
        for line in (
            "[1/2] STEP 1/3: FROM python:3.11-slim AS base",
            "[1/2] STEP 2/3: ENV A=1",
            "[2/2] STEP 1/2: FROM base AS runtime",
            "[2/2] STEP 2/2: RUN true",
        )
    ]
    assert seen == [False, False, False, True]


def test_no_other_module_spells_a_step_header() -> None:
    """One grammar: a regex for ``STEP n/m``/``Step n/m``/``[n/m]`` anywhere else is a second."""
    header = re.compile(r"re\.compile\(r?[\"'][^\"']*(STEP|Step|\\d\+/\\d\+)")
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "pipeline").rglob("*.py"))
        if path.name != "stepheaders.py" and header.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
