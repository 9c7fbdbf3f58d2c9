"""Removing bentos from the store: one version (:func:`delete_bento`), every version but the
newest few (:func:`prune_bentos`), and the leftovers of interrupted builds and deletes.

Deleting is all-or-nothing: the version is renamed out of sight first, then removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import attrs

from pipeline.errors import (
    BentoNotFoundError,
    ConfigError,
    PipelineError,
    PipelineWarning,
    did_you_mean,
)
from pipeline.paths import kind_of, user_path
from pipeline.store import (
    BENTO_YAML,
    LATEST_FILE,
    TMP_PREFIX,
    bentos_dir,
    find_in_store,
    in_use,
    looks_like_path,
    newest_first,
    parse_tag,
    recorded_latest,
    stored_names,
    stored_versions,
    write_latest,
)

# `prune` removes a leftover `.tmp-*` only when nothing changed in it for this long (and no build
# holds its lock): an interrupted build's, never an active one's.
LEFTOVER_AGE = 3600.0


@attrs.frozen
class Removed:
    """A bento version (or a leftover temporary entry of an interrupted build or delete) that
    :func:`prune_bentos` removed, or in a dry run would remove."""

    path: Path
    size: int  # bytes
    name: str | None = None  # None for a leftover
    version: str | None = None

    @property
    def tag(self) -> str | None:
        return f"{self.name}:{self.version}" if self.name and self.version else None


def locate_bento(ref: str | os.PathLike[str], *, store: Path | None = None) -> Path:
    """The store directory of ``ref`` (``name``, ``name:latest``, ``name:version``, or a path),
    without loading it (a broken bento is found too). A path is accepted only when it is a
    ``bentos/<name>/<version>`` directory of the store; a word without ``/`` is always a tag."""
    bentos = bentos_dir(store)
    text = os.fspath(ref)
    if not looks_like_path(text):
        return find_in_store(text, bentos)
    path = user_path(text, field="bento")
    if path.name == BENTO_YAML:
        path = path.parent
    if kind_of(path) != "dir":
        raise BentoNotFoundError(f"no such directory: {text}", field="bento")
    real = path.resolve()
    in_store = bentos / real.parent.name / real.name
    if (
        real.parent.parent != bentos.resolve()
        or real.name.startswith(".")
        or real.parent.name.startswith(".")
        or in_store.resolve() != real
        or not (real / BENTO_YAML).is_file()
    ):
        raise ConfigError(
            f"{path} is not a bento of the store {bentos}: only its "
            "bentos/<name>/<version> directories can be deleted here",
            field="bento",
            hint="name it by tag (name:version); a directory outside the store is yours to "
            "remove",
        )
    return in_store


def delete_bento(ref: str | os.PathLike[str], *, store: Path | None = None) -> Path:
    """Delete one bento version from the store; return the directory it had.

    ``ref`` is ``name:version``, ``name`` / ``name:latest`` (the latest version only), or the
    path of a version directory inside the store (see :func:`locate_bento`). All-or-nothing:
    the version is renamed to a hidden ``.tmp-`` sibling first, so a half-deleted bento is
    never seen as one, then removed. When ``latest`` named it, ``latest`` moves to the newest
    remaining version (by ``creation_time``); without one left, ``latest`` and the name's
    directory go too.
    """
    path = locate_bento(ref, store=store)
    _remove_version(path)
    return path


def check_keep(keep: object, *, field: str = "keep") -> int:
    """``keep`` as a count of versions to keep: a whole number, at least 1."""
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise ConfigError(f"{keep!r} is not a whole number of versions to keep", field=field)
    if keep < 1:
        raise ConfigError(
            f"cannot keep {keep} versions: keep at least 1; use delete to remove all",
            field=field,
            hint="python -m pipeline bento delete NAME:VERSION [NAME:VERSION ...]",
        )
    return keep


def prune_bentos(
    *,
    store: Path | None = None,
    keep: int = 1,
    dry_run: bool = False,
    names: Iterable[str] = (),
) -> list[Removed]:
    """Per bento name (every one, or ``names``), keep the latest version and the ``keep - 1``
    next newest (by ``creation_time``), delete the rest (as :func:`delete_bento`); remove the
    store's leftover ``.tmp-*`` entries that nothing changed for :data:`LEFTOVER_AGE` seconds
    and no build holds. ``dry_run`` removes nothing. Returns what went (or would go), versions
    first. A store that does not exist has nothing to prune."""
    keep = check_keep(keep)
    bentos = bentos_dir(store)
    wanted = [_prune_name(name) for name in names]
    if not bentos.is_dir():
        return []
    known = stored_names(bentos)
    for name in wanted:
        if name not in known:
            raise BentoNotFoundError(
                f"no bento named {name!r} in {bentos}{did_you_mean(name, known)}",
                field="name",
                hint=f"known bentos: {', '.join(known)}" if known else "the store is empty",
            )
    removed: list[Removed] = []
    for name in dict.fromkeys(wanted) or known:
        name_dir = bentos / name
        for version in newest_first(name_dir, stored_versions(name_dir))[keep:]:
            path = name_dir / version
            removed.append(Removed(path, _tree_size(path), name, version))
            if not dry_run:
                _remove_version(path)
    dirs = [bentos / n for n in wanted] if wanted else [bentos, *_visible_dirs(bentos)]
    for leftover in _leftovers(dirs):
        removed.append(Removed(leftover, _tree_size(leftover)))
        if not dry_run:
            _remove_leftover(leftover)
    return removed


def _prune_name(text: str) -> str:
    name, version = parse_tag(text)
    if ":" in text:
        raise ConfigError(
            f"{text!r}: prune takes bento names, not versions",
            field="name",
            hint=f"to delete one version: python -m pipeline bento delete {name}:"
            f"{version or 'VERSION'}",
        )
    return name


def _visible_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _remove_version(path: Path) -> None:
    """Rename ``path`` to a hidden sibling and remove it, holding it all along (a concurrent
    prune leaves it to this call), then point ``latest`` elsewhere if it named it."""
    name_dir = path.parent
    tag = f"{name_dir.name}:{path.name}"
    hidden = name_dir / f"{TMP_PREFIX}delete-{path.name}-{secrets.token_hex(4)}"
    symlink = path.is_symlink()  # then the store's entry goes, never what it points at
    with contextlib.ExitStack() as held:
        try:
            if not symlink:
                held.enter_context(in_use(path))
            os.rename(path, hidden)
        except FileNotFoundError as exc:
            raise BentoNotFoundError(f"bento {tag} is gone (deleted meanwhile?)") from exc
        except OSError as exc:
            raise PipelineError(f"cannot delete {tag} ({path}): {exc}") from exc
        try:
            if symlink:
                hidden.unlink()
            else:
                shutil.rmtree(hidden)
        except OSError as exc:
            warnings.warn(
                f"{tag} is deleted, but some of its files are left in {hidden} ({exc}); "
                "`python -m pipeline bento prune` removes them once they are an hour old",
                PipelineWarning,
                stacklevel=3,
            )
    _repoint_latest(name_dir)
    if not stored_versions(name_dir):
        _remove_if_empty(name_dir)


def _repoint_latest(name_dir: Path) -> None:
    versions = stored_versions(name_dir)
    latest = name_dir / LATEST_FILE
    if not versions:
        latest.unlink(missing_ok=True)
        return
    recorded = recorded_latest(name_dir)
    if recorded is not None and recorded not in versions:
        write_latest(name_dir, newest_first(name_dir, versions)[0])


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: a build in progress, or not ours
        directory.rmdir()


def _leftovers(dirs: Iterable[Path]) -> list[Path]:
    """The ``.tmp-*`` entries of ``dirs`` that are stale: nothing in them changed for
    :data:`LEFTOVER_AGE` seconds and no build or delete holds them."""
    now = time.time()
    found: list[Path] = []
    for directory in dirs:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(TMP_PREFIX):
                continue
            if now - _last_change(entry) > LEFTOVER_AGE and not _held(entry):
                found.append(entry)
    return found


def _last_change(path: Path) -> float:
    """The newest mtime in ``path`` (itself and, for a directory, everything below it)."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return time.time()
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, entry)).st_mtime)
    return newest


def _held(path: Path) -> bool:
    """Whether a build or delete holds ``path`` (see :func:`pipeline.store.in_use`)."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _remove_leftover(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    if path.parent.name != "bentos" and not stored_versions(path.parent):
        (path.parent / LATEST_FILE).unlink(missing_ok=True)
        _remove_if_empty(path.parent)


def _tree_size(path: Path) -> int:
    """Bytes of the files in ``path`` (symlinks not followed)."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
