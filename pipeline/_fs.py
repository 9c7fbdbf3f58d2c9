"""Directory helpers for all-or-nothing writes (the store, exported contexts)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipeline.errors import ConfigError


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p`` that returns the directories it created, outermost first."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def remove_created(created: list[Path]) -> None:
    """Undo :func:`make_dirs`: remove what it created, innermost first, while still empty."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            break


def user_path(value: str | os.PathLike[str], *, field: str) -> Path:
    """A path the user gave, ``~`` expanded; ``~nosuchuser`` is a ConfigError naming ``field``."""
    path = Path(value)
    try:
        return path.expanduser()
    except RuntimeError:
        user = os.fspath(value).split("/", 1)[0]
        raise ConfigError(
            f"cannot expand {user!r}: no such user, or no home directory",
            field=field,
            hint="write the full path",
        ) from None


def kind_of(path: Path) -> str | None:
    """``"dir"``, ``"file"``, ``"other"`` or None (absent, or not a path this system can stat:
    too long, a component that is a file, a loop...)."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"
