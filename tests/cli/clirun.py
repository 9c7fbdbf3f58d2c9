"""``cli()`` / ``pipeline_cli()``: ``python -m pipeline`` as a real subprocess, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pipeline_cli(
    *argv: str, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGV`` from the repository root; stdout and stderr kept apart."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=timeout,
    )  # fmt: skip


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGS`` from the repo root with ``BENTOML_HOME=home``."""
    return pipeline_cli(*args, env={**os.environ, "BENTOML_HOME": str(home)}, timeout=120)
