"""Small JSON caches on disk for answers that cost a process to compute (engine probes, uv checks).

Each cache is one JSON object in :func:`cache_dir`, keyed by a digest of everything that decides
the answer, so an entry is never stale, only unused. Best effort: an unreadable, corrupt or
unwritable cache only costs recomputing; writes are atomic (a temp file renamed into place), and
each file keeps its newest ``entries`` keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pipeline.paths import cache_dir as cache_dir


def digest(parts: object) -> str:
    """A key: the sha256 of ``parts`` as JSON (anything not JSON becomes its ``str``)."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def file_identity(path: str | os.PathLike[str]) -> list[object]:
    """What changes when a file is replaced, upgraded or touched (just the path when absent)."""
    try:
        st = os.stat(path)
    except OSError:
        return [os.fspath(path)]
    return [os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class JsonCache:
    """``name``.json in :func:`cache_dir` (looked up again on every call: tests and users may
    point ``PIPELINE_CACHE_DIR`` elsewhere at any time)."""

    def __init__(self, name: str, *, entries: int = 64) -> None:
        self.name = name
        self.entries = entries

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.name}.json"

    def _load(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> object | None:
        return self._load().get(key)

    def put(self, key: str, value: object) -> None:
        data = self._load()
        data.pop(key, None)
        data[key] = value
        while len(data) > self.entries:
            data.pop(next(iter(data)))
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.name}-", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
