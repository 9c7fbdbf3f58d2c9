"""Directory helpers for all-or-nothing writes (the store, exported contexts)."""

from __future__ import annotations

from pathlib import Path


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
