"""A project's files: its build config (:func:`build_file`: ``bentofile.yaml``, else
``pyproject.toml``) and which of its files a bento gets (:func:`select_files`: ``include``,
``exclude`` and ``.bentoignore`` with gitignore semantics, as BentoML). Reads the project,
writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pathspec

from pipeline.config import BentofileSpec
from pipeline.errors import ConfigError
from pipeline.fieldpaths import PYPROJECT
from pipeline.loader import pyproject_build_table

BENTOFILE = "bentofile.yaml"
BENTOIGNORE = ".bentoignore"


# Never copied into a bento, whatever the patterns say (as BentoML).
ALWAYS_EXCLUDED: tuple[str, ...] = (".git/", ".venv/", "venv/", "__pycache__/")


def build_file(project: Path) -> Path | None:
    """The project's build config, in BentoML's order: ``bentofile.yaml``, else a
    ``pyproject.toml`` with a ``[tool.bentoml.build]`` table; ``None`` when it has neither."""
    bentofile = project / BENTOFILE
    if bentofile.is_file():
        return bentofile
    pyproject = project / PYPROJECT
    if pyproject.is_file() and pyproject_build_table(pyproject):
        return pyproject
    return None


def _spec(
    lines: list[str] | tuple[str, ...], *, file: Path | None = None, field: str | None = None
) -> pathspec.PathSpec:
    """GitIgnoreSpec: git's own semantics (negation, anchoring, dir-only patterns). A pattern
    git would refuse (one ending in a lone backslash, ...) is a ConfigError naming it."""
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError):  # pathspec's GitIgnorePatternError is a ValueError
        pass
    for index, line in enumerate(lines):  # only to name the pattern that failed
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except (ValueError, TypeError) as exc:
            where = f"{field}[{index}]" if field else None
            raise ConfigError(
                f"{line!r} is not a valid gitignore pattern ({exc})",
                file=file,
                field=where,
                line=None if field else index + 1,
                hint="a pattern may not end in one backslash (it escapes nothing): remove it, "
                "or end in two for a literal backslash",
            ) from None
    raise ConfigError("the patterns are not valid gitignore patterns", file=file, field=field)


class _Selector:
    """include/exclude/.bentoignore with gitignore semantics (via pathspec), as BentoML."""

    def __init__(self, root: Path, spec: BentofileSpec) -> None:
        self.root = root
        self.include = _spec(
            spec.include if spec.include is not None else ["*"], file=spec.path, field="include"
        )
        self.exclude = _spec(list(spec.exclude or ()), file=spec.path, field="exclude")
        self.always = _spec(ALWAYS_EXCLUDED)
        self.ignores: list[tuple[str, pathspec.PathSpec]] = []

    def add_ignore_file(self, rel_dir: str, file: Path) -> None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", file=file) from None
        self.ignores.append((rel_dir, _spec(lines, file=file)))

    def _ignored(self, rel: str) -> bool:
        for parent, spec in self.ignores:
            if not parent:
                if spec.match_file(rel):
                    return True
            elif rel.startswith(parent + "/") and spec.match_file(rel[len(parent) + 1 :]):
                return True
        return False

    def excluded_dir(self, rel_dir: str) -> bool:
        probe = rel_dir + "/"
        return (
            self.always.match_file(probe) or self.exclude.match_file(probe) or self._ignored(probe)
        )

    def includes(self, rel: str) -> bool:
        return (
            self.include.match_file(rel)
            and not self.exclude.match_file(rel)
            and not self.always.match_file(rel)
            and not self._ignored(rel)
        )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def select_files(spec: BentofileSpec) -> list[tuple[str, Path]]:
    """``(relative posix path in src/, real file to copy)`` for every included file.

    Symlinks are followed when they stay inside the project; one that points outside is an
    error (unless excluded), so a bento never smuggles in ``/etc/passwd`` or ``~/.ssh``.
    """
    root = spec.project_dir.resolve()
    selector = _Selector(root, spec)
    chosen: list[tuple[str, Path]] = []
    seen_dirs: set[Path] = set()

    def walk(directory: Path, rel_dir: str) -> None:
        real = directory.resolve()
        if real in seen_dirs:
            return
        seen_dirs.add(real)
        ignore = directory / BENTOIGNORE
        if ignore.is_file():
            selector.add_ignore_file(rel_dir, ignore)
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                try:
                    target = entry.resolve(strict=False)
                except (OSError, RuntimeError):  # a symlink loop
                    raise ConfigError(
                        f"symlink {rel!r} is part of a symlink loop",
                        file=spec.path,
                        field="include",
                        hint=f"remove the loop or exclude {rel!r}",
                    ) from None
                is_dir = target.is_dir()
                if (is_dir and selector.excluded_dir(rel)) or (
                    not is_dir and not selector.includes(rel)
                ):
                    continue
                if not _inside(target, root):
                    raise ConfigError(
                        f"symlink {rel!r} points outside the project ({os.readlink(entry)} -> "
                        f"{target})",
                        file=spec.path,
                        field="include",
                        hint=f"copy the target into the project or exclude {rel!r}",
                    )
                if not target.exists():
                    continue  # dangling link inside the project: nothing to copy
            if entry.is_dir():
                if not selector.excluded_dir(rel):
                    walk(entry, rel)
            elif entry.is_file() and selector.includes(rel):
                chosen.append((rel, entry.resolve()))

    walk(spec.project_dir, "")
    if spec.python.is_src_layout:
        # as BentoML: the project's src/ is the bento's src/ root (src/pkg/x.py -> pkg/x.py)
        chosen = [(rel[4:] if rel.startswith("src/") else rel, real) for rel, real in chosen]
    return chosen
