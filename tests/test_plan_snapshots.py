"""Plan snapshots: the build plan per example bento x engine, compared with tests/golden/plans/.

Regenerate after an intended change with

    PIPELINE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_plan_snapshots.py

and review the diff of tests/golden/plans/ before committing (docs/build.md, "Build plans").

What is pinned so a snapshot depends on the code only: each example is copied out of the git
checkout (no revision label) and stored first with a fixed creation time (the plan then uses
that stored bento); the engine's build flags are taken as all known ones (what a current CLI
has; `tests/backends` and the engine tests cover the probing); the project path is written
`<project>`. The digest is left out (it covers the path) but must be stable.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline import api
from pipeline.backends.executor import ExternalExecutor
from pipeline.backends.flags import ALL
from pipeline.backends.registry import get_executor
from pipeline.bento import build_bento
from pipeline.buildplan import BuildInputs
from pipeline.executor import accept_plan

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "plans"
UPDATE = os.environ.get("PIPELINE_UPDATE_GOLDEN") == "1"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# examples whose bentos need no package index (no packages to lock)
EXAMPLES = ("hello", "secret-mount", "setup-script", "custom-user", "multi-stage-mypackage")
ENGINES = ("docker", "buildx", "podman", "buildah", "nerdctl", "buildctl", "dagger")
OPTIONS: dict[str, dict[str, object]] = {
    "secret-mount": {"secrets": ["id=aws,env=SNAPSHOT_AWS"]},
    "hello": {"platforms": ["linux/amd64", "linux/arm64"], "build_args": ["A=1"]},
}


@pytest.fixture()
def stored(
    tmp_path: Path, isolated_build_env: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Path]:
    monkeypatch.setattr(ExternalExecutor, "flags", lambda self: ALL)
    monkeypatch.setenv("SNAPSHOT_AWS", "snapshot-secret-value")
    monkeypatch.setenv("PIPELINE_DAGGER_DOWNLOAD", "0")
    projects = {}
    for name in EXAMPLES:
        copy = tmp_path / "projects" / name
        shutil.copytree(ROOT / "examples" / name, copy)
        build_bento(copy, creation_time=CREATED)
        projects[name] = copy
    return projects


def snapshot(plan: api.BuildPlan, project: Path) -> str:
    data = plan.to_json()
    digest = data.pop("digest")
    assert digest == plan.digest
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return text.replace(str(project), "<project>")


@pytest.mark.parametrize("engine", ENGINES)
def test_plan_snapshots(engine: str, stored: dict[str, Path]) -> None:
    mismatched = []
    for name, project in stored.items():
        options = OPTIONS.get(name, {})
        plan = api.plan(project, backend=engine, check=False, tags=[f"{name}:snap"], **options)
        again = api.plan(project, backend=engine, check=False, tags=[f"{name}:snap"], **options)
        assert again.digest == plan.digest, f"{name}: the plan is not deterministic"
        text = snapshot(plan, project)
        assert "snapshot-secret-value" not in text
        # the executor takes the plan back: the request it reads from the plan gives exactly
        # the plan's commands on this engine (or the build would be refused)
        request = accept_plan(get_executor(engine), plan, BuildInputs(project))
        assert request.tags == plan.tags and request.platforms == plan.platforms
        golden = GOLDEN / f"{name}.{engine}.json"
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
        elif not golden.is_file() or golden.read_text(encoding="utf-8") != text:
            mismatched.append(golden.name)
    assert not mismatched, (
        f"plans differ from {', '.join(mismatched)}; if intended, regenerate with "
        "PIPELINE_UPDATE_GOLDEN=1 and review the diff"
    )


def test_every_snapshot_belongs_to_a_case() -> None:
    expected = {f"{name}.{engine}.json" for name in EXAMPLES for engine in ENGINES}
    assert {p.name for p in GOLDEN.glob("*.json")} == expected
