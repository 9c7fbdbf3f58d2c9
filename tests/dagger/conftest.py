"""Fixtures for the Dagger tests: the contract session server behind ``dagger.dag``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagger_contract import SCHEMA_PATH, ContractServer


def _schema_path() -> Path:
    """$PIPELINE_DAGGER_SCHEMA, else a copy vendored beside these tests, else the shared one."""
    if os.environ.get("PIPELINE_DAGGER_SCHEMA"):
        return Path(os.environ["PIPELINE_DAGGER_SCHEMA"])
    vendored = Path(__file__).with_name("schema.graphqls")
    return vendored if vendored.is_file() else SCHEMA_PATH


@pytest.fixture(scope="session")
def dagger_schema() -> str:
    """The pinned v0.21 GraphQL schema (SDL); the contract tests skip without it."""
    path = _schema_path()
    if not path.is_file():
        pytest.skip(f"Dagger API schema {path} is absent (set PIPELINE_DAGGER_SCHEMA)")
    return path.read_text(encoding="utf-8")


@pytest.fixture
def contract(dagger_schema: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContractServer]:
    """A running contract server; DAGGER_SESSION_PORT/TOKEN point the SDK at it."""
    with ContractServer(dagger_schema, token="contract-session-token") as server:
        monkeypatch.setenv("DAGGER_SESSION_PORT", str(server.port))
        monkeypatch.setenv("DAGGER_SESSION_TOKEN", server.token)
        monkeypatch.delenv("_EXPERIMENTAL_DAGGER_CLI_BIN", raising=False)
        yield server


@pytest.fixture
def no_dagger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment with no session, no CLI on PATH or in the SDK cache."""
    for name in ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN", "_EXPERIMENTAL_DAGGER_CLI_BIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    keep = [p for p in path if not (Path(p) / "dagger").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(keep))
    assert shutil.which("dagger") is None


def dagger_cli() -> str | None:
    return shutil.which("dagger")


requires_dagger_cli = pytest.mark.skipif(
    dagger_cli() is None, reason="no dagger CLI on PATH (real-engine Dagger tests)"
)
