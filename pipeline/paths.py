"""Paths the user gives: ``~`` expanded with an error that names the option, and what a path is.

Pure apart from :func:`kind_of`, which only stats (never creates or changes anything).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipeline.errors import ConfigError


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


def optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    """``value`` as a Path, None staying None (the attrs converter of optional path fields)."""
    return None if value is None else Path(value)


def cache_dir() -> Path:
    """``$PIPELINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/bento-pipeline``, else
    ``~/.cache/bento-pipeline``."""
    explicit = os.environ.get("PIPELINE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "bento-pipeline")
