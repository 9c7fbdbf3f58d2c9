"""The bento store on disk: its layout, tags, and looking bentos up in it.

The store is BentoML-compatible: ``$BENTOML_HOME/bentos/<name>/<version>/`` (``$BENTOML_HOME``
defaults to ``~/bentoml``) with a ``latest`` file per name holding the newest version. Hidden
entries (``.tmp-*``) are builds and deletes in progress, never bentos. Writing to the store is
:mod:`pipeline.bentobuild` (a project in) and :mod:`pipeline.prune` (versions out).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import warnings
from collections.abc import Callable, Iterator
from datetime import timezone
from pathlib import Path

from pipeline.config import Bento
from pipeline.errors import (
    BentoNotFoundError,
    ConfigError,
    PipelineError,
    PipelineWarning,
    did_you_mean,
)
from pipeline.loader import load_bento_yaml
from pipeline.paths import user_path

BENTO_YAML = "bento.yaml"
LATEST_FILE = "latest"
TMP_PREFIX = ".tmp-"


# BentoML's tag rules: lowercase letters, digits, '.', '_' and '-', 63 characters at most.
_TAG_PART = re.compile(r"^[a-z0-9]([-._a-z0-9]{0,61}[a-z0-9])?$")


def store_home() -> Path:
    """``$BENTOML_HOME`` or ``~/bentoml``."""
    home = os.environ.get("BENTOML_HOME")
    if home:
        return user_path(home, field="BENTOML_HOME")
    return user_path("~/bentoml", field="HOME")


def bentos_dir(store: Path | None) -> Path:
    return (store if store is not None else store_home()) / "bentos"


def check_tag_part(value: str, what: str, *, field: str, file: Path | None = None) -> str:
    if not _TAG_PART.match(value):
        raise ConfigError(
            f"{what} {value!r} is not valid: use lowercase letters, digits, '.', '_' and '-' "
            "(starting and ending with a letter or digit, at most 63 characters)",
            field=field,
            file=file,
        )
    return value


def looks_like_path(text: str) -> bool:
    """Whether a bento reference is a path (``/``, a leading ``.`` or ``~``, ``.yaml``), never a
    tag."""
    return (
        "/" in text
        or os.sep in text
        or text.startswith(".")
        or text.startswith("~")
        or text.endswith((".yaml", ".yml"))
    )


def parse_tag(tag: str) -> tuple[str, str | None]:
    """``name`` / ``name:latest`` -> (name, None); ``name:version`` -> (name, version)."""
    name, sep, version = tag.strip().partition(":")
    if sep and not version:
        raise ConfigError(f"tag {tag!r} has an empty version", field="tag")
    check_tag_part(name.lower(), "bento name", field="tag")
    if version and version != "latest":
        check_tag_part(version.lower(), "bento version", field="tag")
        return name.lower(), version.lower()
    return name.lower(), None


def _store_entries(parent: Path, keep: Callable[[Path], object]) -> list[str]:
    """Sorted names of ``parent``'s visible subdirectories for which ``keep`` is true
    (hidden ones are builds in progress)."""
    if not parent.is_dir():
        return []
    return sorted(
        d.name for d in parent.iterdir() if d.is_dir() and not d.name.startswith(".") and keep(d)
    )


def stored_versions(name_dir: Path) -> list[str]:
    return _store_entries(name_dir, lambda d: (d / BENTO_YAML).is_file())


def stored_names(bentos: Path) -> list[str]:
    return _store_entries(bentos, stored_versions)


def get_bento(tag: str, *, store: Path | None = None) -> Bento:
    """Look up ``name``, ``name:latest`` or ``name:version`` in the store."""
    return load_bento_yaml(find_in_store(tag, bentos_dir(store)) / BENTO_YAML)


def find_in_store(tag: str, bentos: Path) -> Path:
    """The directory of ``tag`` in ``bentos`` (without loading it: a broken one is found too)."""
    name, version = parse_tag(tag)
    name_dir = bentos / name
    versions = stored_versions(name_dir)
    if not versions:
        names = stored_names(bentos)
        known = f"known bentos: {', '.join(names)}" if names else f"the store {bentos} is empty"
        raise BentoNotFoundError(
            f"no bento named {name!r} in {bentos}{did_you_mean(name, names)}",
            field="tag",
            hint=known,
        )
    if version is None:
        version = _latest_version(name_dir, versions)
    elif version not in versions:
        raise BentoNotFoundError(
            f"bento {name!r} has no version {version!r}{did_you_mean(version, versions)}",
            field="tag",
            hint=f"known versions of {name}: {', '.join(versions)}",
        )
    return name_dir / version


def _latest_version(name_dir: Path, versions: list[str]) -> str:
    recorded = recorded_latest(name_dir)
    if recorded is not None and recorded in versions:
        return recorded
    return newest_first(name_dir, versions)[0]


def newest_first(name_dir: Path, versions: list[str]) -> list[str]:
    """``versions`` newest first: the one the ``latest`` file names, then by ``creation_time``
    (as BentoML does without a valid ``latest`` file); unreadable ones last."""
    recorded = recorded_latest(name_dir)

    def created(version: str) -> tuple[bool, float, str]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PipelineWarning)
                bento = load_bento_yaml(name_dir / version / BENTO_YAML)
        except PipelineError:
            return (version == recorded, float("-inf"), version)
        return (version == recorded, _created(bento, float("-inf")), version)

    return sorted(versions, key=created, reverse=True)


def recorded_latest(name_dir: Path) -> str | None:
    try:
        return (name_dir / LATEST_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _created(bento: Bento, unknown: float) -> float:
    """The bento's creation time as a timestamp (naive times are UTC), or ``unknown``."""
    when = bento.creation_time
    if when is None:
        return unknown
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def list_bentos(store: Path | None = None) -> list[Bento]:
    """Every bento in the store, by name then newest first. Unreadable ones are skipped with
    a warning."""
    bentos = bentos_dir(store)
    found: list[Bento] = []
    for name in stored_names(bentos):
        for version in stored_versions(bentos / name):
            try:
                found.append(load_bento_yaml(bentos / name / version / BENTO_YAML))
            except PipelineError as exc:
                warnings.warn(f"skipping unreadable bento: {exc}", PipelineWarning, stacklevel=2)

    return sorted(found, key=lambda b: (b.name, -_created(b, 0.0)))


def write_latest(name_dir: Path, version: str) -> None:
    os.replace(stage_latest(name_dir, version), name_dir / LATEST_FILE)


def stage_latest(name_dir: Path, version: str) -> Path:
    """``version`` in a new hidden file beside ``latest``, to rename over it; a write that
    fails (a full disk) leaves no file behind."""
    tmp = name_dir / f"{TMP_PREFIX}latest-{secrets.token_hex(4)}"
    try:
        tmp.write_text(version, encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


@contextlib.contextmanager
def in_use(directory: Path) -> Iterator[None]:
    """Hold a shared lock on ``directory`` while a build writes it:
    :func:`pipeline.prune.prune_bentos` never removes a temporary directory somebody holds,
    however old."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)
