"""``python -m pipeline backends``: which engines are usable here, and what they can do."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipeline.backends.registry import (
    AUTO_ORDER,
    DAGGER,
    ENV_VARS,
    available_backends,
    get_backend,
    get_executor,
)
from pipeline.cli.command import Command
from pipeline.dagger import connection

DESCRIPTION = f"""\
List every backend with its availability, version, health (and how to fix it) and probed
capabilities: build secrets, cache mounts, multi-platform images, push, buildable platforms.

Auto-selection order (when neither --backend nor ${ENV_VARS[0]}/${ENV_VARS[1]} is set):
{", ".join(AUTO_ORDER)}.
"""


def describe(name: str) -> dict[str, Any]:
    """One backend as a JSON-ready dict (runs its health and capability probes)."""
    if name == DAGGER:
        return _describe_dagger()
    spec = get_backend(name)
    health = spec.health()
    entry: dict[str, Any] = {
        "name": name,
        "binary": spec.binary,
        "available": health.ok,
        "version": health.version,
        "health": health.reason,
        "buildkit": spec.buildkit_support,
        "env": dict(spec.env),
        "plugin": spec.plugin,
        "description": spec.description,
    }
    if health.ok:
        caps = spec.capabilities()
        entry["capabilities"] = caps.to_json()
        if caps.notes:
            entry["notes"] = list(caps.notes)
    else:
        entry["capabilities"] = None
    return entry


def _describe_dagger() -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": DAGGER,
        "binary": "dagger",
        "buildkit": True,
        "env": {},
        "plugin": False,
        "description": "Dagger engine session (dagger-io SDK)",
        "capabilities": None,
        "version": None,
    }
    try:
        get_executor(DAGGER)  # is the executor importable in this install?
    except Exception as exc:
        entry.update(available=False, health=str(exc))
        return entry
    try:
        if connection.attached():
            entry.update(available=True, health="attached to a running dagger session")
        elif (cli := connection.find_cli()) is not None:
            entry.update(available=True, health=f"dagger CLI at {cli} (starts a session)")
        else:
            entry.update(
                available=False,
                health="no dagger CLI and no running session: install the dagger CLI "
                "(https://docs.dagger.io/install), run under `dagger run`, or let the SDK "
                "download it where dl.dagger.io is reachable (docs/dagger.md)",
            )
    except Exception as exc:  # the dagger helper's module may change; never crash the listing
        entry.update(available=False, health=f"cannot probe dagger: {exc}")
    return entry


_CAPABILITIES = ("secrets", "cache_mounts", "multi_platform", "push")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="only these backends (default: all)"
    )


def _run(args: argparse.Namespace) -> int:
    names = args.names or list(available_backends())
    for name in names:
        if name != DAGGER:
            get_backend(name)  # unknown names fail fast, listing the known ones
    with ThreadPoolExecutor(max_workers=4) as pool:
        entries = list(pool.map(describe, names))
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        mark = "ok " if entry["available"] else "-- "
        version = f" {entry['version']}" if entry.get("version") else ""
        print(f"{mark}{entry['name']}{version}: {entry['health']}")
        caps = entry.get("capabilities")
        if caps:
            flags = [k for k in _CAPABILITIES if caps[k]]
            missing = [k for k in _CAPABILITIES if not caps[k]]
            line = f"     can: {', '.join(flags) or 'nothing probed'}"
            if missing:
                line += f"; cannot: {', '.join(missing)}"
            print(line)
            if caps["platforms"]:
                print(f"     platforms: {', '.join(caps['platforms'])}")
    return 0


COMMAND = Command(
    name="backends",
    help="list build engines: availability, version, health, capabilities",
    description=DESCRIPTION,
    configure=_configure,
    run=_run,
)
