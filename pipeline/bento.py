"""A bento as the user names it and sees it: a reference (a bento directory, a project, or a
store tag) resolved to a :class:`pipeline.config.Bento` (:func:`resolve_bento`), and a bento as
plain data (:func:`bento_to_dict`).

The store's functions live in :mod:`pipeline.store` (locate, list), :mod:`pipeline.bentobuild`
(a project in) and :mod:`pipeline.prune` (versions out); the public ones are importable from
here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from pipeline.bentobuild import BentoCheck
from pipeline.bentobuild import build_bento as build_bento
from pipeline.bentocontent import content_version as content_version
from pipeline.config import Bento
from pipeline.errors import BentoNotFoundError
from pipeline.fieldpaths import PYPROJECT
from pipeline.loader import load_bento_yaml
from pipeline.paths import kind_of, user_path
from pipeline.projectfiles import BENTOFILE
from pipeline.projectfiles import build_file as build_file
from pipeline.prune import delete_bento as delete_bento
from pipeline.prune import prune_bentos as prune_bentos
from pipeline.store import BENTO_YAML
from pipeline.store import get_bento as get_bento
from pipeline.store import list_bentos as list_bentos
from pipeline.store import looks_like_path as looks_like_path
from pipeline.store import store_home as store_home


def resolve_bento(
    ref: str | os.PathLike[str],
    *,
    store: Path | None = None,
    check: BentoCheck | None = None,
    project_store: Path | None = None,
    creation_time: datetime | None = None,
) -> Bento:
    """A bento from a bento dir, a project dir (built into the store first) or a store tag.

    ``check`` only runs for a project: see :func:`build_bento`. A project is built into
    ``project_store`` (default: ``store``), e.g. a temporary store a dry run removes afterwards;
    tags are always looked up in ``store``.
    """
    text = os.fspath(ref)
    path = user_path(text, field="bento")
    if kind_of(path) == "file" and path.name in (BENTO_YAML, BENTOFILE, PYPROJECT):
        path = path.parent
    if kind_of(path) == "dir":
        if (path / BENTO_YAML).is_file():
            return load_bento_yaml(path / BENTO_YAML)
        if build_file(path) is not None:
            target = project_store if project_store is not None else store
            return build_bento(path, store=target, check=check, creation_time=creation_time)
        raise BentoNotFoundError(
            f"{path} is neither a bento (no {BENTO_YAML}) nor a project (no {BENTOFILE}, "
            f"no [tool.bentoml.build] in {PYPROJECT})"
        )
    if looks_like_path(text):
        raise BentoNotFoundError(f"no such directory: {text}")
    return get_bento(text, store=store)


def bento_to_dict(bento: Bento) -> dict[str, Any]:
    """A JSON/YAML-friendly view of a bento (what ``bento get -o json|yaml`` prints)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    data = attrs.asdict(bento, recurse=True)
    data = {"tag": bento.tag, **data}
    return {k: plain(v) for k, v in data.items()}
