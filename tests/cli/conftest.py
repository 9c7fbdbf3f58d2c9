"""Fixtures of the CLI tests (the subprocess helper is ``tests/cli/clirun.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The bento store of one test (not created: commands create it when they store)."""
    return tmp_path / "store"
