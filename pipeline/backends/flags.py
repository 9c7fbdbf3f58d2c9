"""Which flags an installed engine's build command takes: probed from its ``--help``, once.

Engines on users' machines are not the newest: Debian 12's ``docker.io`` CLI (20.10) has no
``build --metadata-file``, ``--push``, ``--load`` or ``--cache-to``. Argv builders take the
probed :class:`BuildFlags` and leave out (or replace) what the binary lacks instead of failing
with "unknown flag". Probes are cached in memory and on disk (``probes.json``, see
:mod:`pipeline.diskcache`), keyed by everything that decides the answer: the command, the
resolved binary's identity (path, inode, size, mtime, ctime), the environment it runs with,
and for the docker CLI, whose ``build`` may be the buildx plugin, every plugin candidate's
identity and the CLI's ``config.json``. An upgraded engine is probed again, two CLIs on
different PATHs never share a result, and a cached no-op rebuild spends no process on ``--help``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence

from attrs import frozen

from pipeline.backends.process import probe
from pipeline.diskcache import JsonCache, digest, file_identity

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


_cache: dict[str, BuildFlags] = {}

#: what a docker CLI's `build --help` also depends on (the buildx plugin may be `docker build`)
_DOCKER_ENV = ("DOCKER_BUILDKIT", "DOCKER_CONFIG", "DOCKER_CLI_EXPERIMENTAL", "HOME")
_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)
_DISK = JsonCache("probes")


def _docker_inputs(env: Mapping[str, str]) -> list[object]:
    """The plugin candidates and config a docker CLI consults before running ``build``."""
    merged = {**os.environ, **env}
    config_dir = merged.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    config = os.path.join(config_dir, "config.json")
    dirs = [os.path.join(config_dir, "cli-plugins"), *_PLUGIN_DIRS]
    try:
        with open(config, encoding="utf-8") as handle:
            extra = json.load(handle).get("cliPluginsExtraDirs") or []
        dirs += [str(item) for item in extra if isinstance(item, str)]
    except (OSError, ValueError, AttributeError):
        pass
    return [
        file_identity(config),
        [file_identity(os.path.join(d, "docker-buildx")) for d in dirs],
        sorted((k, merged[k]) for k in _DOCKER_ENV if k in merged),
    ]


def _key(path: str, command: Sequence[str], env: Mapping[str, str]) -> str:
    parts: list[object] = [1, file_identity(path), list(command[1:]), sorted(env.items())]
    if os.path.basename(path) == "docker":
        parts.append(_docker_inputs(env))
    return digest(parts)


def probe_build_flags(
    command: Sequence[str], *, env: Mapping[str, str] | None = None
) -> BuildFlags:
    """``BuildFlags`` of ``command`` (e.g. ``("docker", "build")``) from ``command --help``.

    Unknown (``ALL``) when the binary is missing or its help lists no flags: the engine then
    reports what it lacks itself. Only a successful probe is remembered.
    """
    path = shutil.which(command[0], path=os.environ.get("PATH"))
    if path is None:
        return ALL
    key = _key(path, command, env or {})
    if key in _cache:
        return _cache[key]
    stored = _DISK.get(key)
    if isinstance(stored, list) and stored and all(isinstance(n, str) for n in stored):
        _cache[key] = BuildFlags(frozenset(stored), path)
        return _cache[key]
    result = probe([path, *command[1:], "--help"], env=env)
    names = parse_help(result.stdout + "\n" + result.stderr)
    if not names:
        return BuildFlags(None, path)
    if result.ok:
        _DISK.put(key, sorted(names))
    _cache[key] = BuildFlags(names, path)
    return _cache[key]


def clear_cache() -> None:
    """Forget every probe held in memory (tests; the disk cache is keyed, never stale)."""
    _cache.clear()
