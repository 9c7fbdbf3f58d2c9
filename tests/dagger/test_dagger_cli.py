"""``python -m pipeline build ... --backend dagger`` end to end (the CLI process itself)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from pipeline.dagger import connection
from tests.cli.clirun import pipeline_cli


def run_cli(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = pipeline_cli(*args, env=env, timeout=60)
    return done, time.monotonic() - started


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """No Dagger session, no dagger CLI, an empty SDK cache and a private bento store."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN", "_EXPERIMENTAL_DAGGER_CLI_BIN")
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join(p for p in path if not (Path(p) / "dagger").exists())
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["BENTOML_HOME"] = str(tmp_path / "bentoml")
    return env


def test_dry_run_without_a_session_is_the_builds_error(bare_env: dict[str, str]) -> None:
    """--dry-run runs the checks a build runs: no Dagger engine is exit 2, as a build."""
    bare_env["PIPELINE_DAGGER_DOWNLOAD"] = "0"
    done, _ = run_cli("build", "examples/hello", "--backend", "dagger", "--dry-run", env=bare_env)
    assert done.returncode == 2, done.stdout
    assert "needs a Dagger engine session" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_plan_prints_the_dagger_operations(bare_env: dict[str, str]) -> None:
    bare_env["PIPELINE_DAGGER_DOWNLOAD"] = "0"
    done, _ = run_cli(
        "plan",
        "examples/hello",
        "--backend",
        "dagger",
        "--no-check",
        "--platform",
        "linux/amd64,linux/arm64",
        env=bare_env,
    )
    assert done.returncode == 0, done.stderr
    ops = done.stdout
    assert "host.directory(" in ops and "withNewFile('Dockerfile'" in ops
    assert "dockerBuild(dockerfile='Dockerfile', platform='linux/amd64')" in ops
    assert "dockerBuild(dockerfile='Dockerfile', platform='linux/arm64')" in ops


def test_build_without_session_fails_fast_with_a_clear_error(bare_env: dict[str, str]) -> None:
    bare_env["PIPELINE_DAGGER_DOWNLOAD"] = "0"
    done, elapsed = run_cli("build", "examples/hello", "--backend", "dagger", env=bare_env)
    assert elapsed < 5
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error: the dagger backend needs a Dagger engine session" in done.stderr
    assert "downloads are disabled by PIPELINE_DAGGER_DOWNLOAD=0" in done.stderr
    assert "--backend docker | buildx | podman" in done.stderr


def test_build_without_session_or_network_fails_fast(bare_env: dict[str, str]) -> None:
    if anyio.run(connection.download_reachable):
        pytest.skip("dl.dagger.io is reachable here: the SDK would download its CLI")
    done, elapsed = run_cli("build", "examples/hello", "--backend", "dagger", env=bare_env)
    assert elapsed < 5
    assert done.returncode == 2
    assert "dl.dagger.io is unreachable" in done.stderr
