"""Which flags an installed engine's build command takes: probed from its ``--help``, once.

Engines on users' machines are not the newest: Debian 12's ``docker.io`` CLI (20.10) has no
``build --metadata-file``, ``--push``, ``--load`` or ``--cache-to``. Argv builders take the
probed :class:`BuildFlags` and leave out (or replace) what the binary lacks instead of failing
with "unknown flag". Probes are cached per resolved binary path, its mtime and the command,
so an upgraded engine is probed again and two CLIs on different PATHs never share a result.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence

from attrs import frozen

from pipeline.backends.process import probe

# `      --metadata-file string   Write ...` / `  -q, --quiet   Suppress ...`
_HELP_FLAG = re.compile(r"^\s{1,12}(?:-[A-Za-z0-9], )?(--[a-z0-9][a-z0-9-]*)", re.MULTILINE)


@frozen
class BuildFlags:
    """The long flags a build command accepts; ``names=None``: unknown, assume all of them."""

    names: frozenset[str] | None = None
    binary: str | None = None  # resolved path of the probed binary (for messages)

    def has(self, flag: str) -> bool:
        return self.names is None or flag in self.names

    def describe(self) -> str:
        return self.binary or "this engine"


#: What pure argv tests and plugins get: every flag assumed present.
ALL = BuildFlags()


def parse_help(text: str) -> frozenset[str]:
    """The long flags listed in a cobra/urfave ``--help`` text."""
    return frozenset(_HELP_FLAG.findall(text))


_cache: dict[tuple[object, ...], BuildFlags] = {}


def probe_build_flags(
    command: Sequence[str], *, env: Mapping[str, str] | None = None
) -> BuildFlags:
    """``BuildFlags`` of ``command`` (e.g. ``("docker", "build")``) from ``command --help``.

    Unknown (``ALL``) when the binary is missing or its help lists no flags: the engine then
    reports what it lacks itself.
    """
    path = shutil.which(command[0], path=os.environ.get("PATH"))
    if path is None:
        return ALL
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return ALL
    key = (path, mtime, tuple(command[1:]), tuple(sorted((env or {}).items())))
    if key not in _cache:
        result = probe([path, *command[1:], "--help"], env=env)
        names = parse_help(result.stdout + "\n" + result.stderr)
        _cache[key] = BuildFlags(names or None, path)
    return _cache[key]


def clear_cache() -> None:
    """Forget every probe (tests)."""
    _cache.clear()
