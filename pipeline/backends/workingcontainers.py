"""What a podman/buildah build that was stopped leaves behind, found and removed.

buildah (inside podman too) runs a build in *working containers* in containers-storage and
removes them when the build ends, also when a step fails (``--force-rm``), but not when the
engine is interrupted or killed: they stay (``podman ps -a --external`` lists them), each
holding a mounted copy of a layer. A killed engine also leaves its running ``RUN`` step behind:
the step's process runs in its own session and outlives the engine.

Every podman/buildah build gets the build arg ``BENTO_PIPELINE_BUILD=<random id>``. No
Dockerfile declares it, so it is in no cache key, no image and no step's environment (podman
lists it among the "build args were not consumed", beside its own ``TARGETARCH`` ones), but
buildah records it in the state of each working container it creates (``Args`` in
``<graph root>/<driver>-containers/<id>/userdata/buildah.json``). After a build that did not
succeed, exactly the containers that carry its id are removed: containers of other builds,
running at the same time or not, are never touched. A step still running is found by the pid
file buildah writes into the step's bundle directory under ``$TMPDIR`` (the build's private
one) and killed when its cgroup is that bundle's (a pid since reused is never signalled).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
from attrs import frozen

from pipeline.backends.process import probe, run_streaming

MARKER_ARG = "BENTO_PIPELINE_BUILD"
_STATE_FILE = "buildah.json"
_MAX_STATE = 4 * 1024 * 1024  # a working container's state is a few KiB
_STEP_EXIT_WAIT = 5.0  # seconds for killed steps to be gone before their containers go


@frozen
class WorkingContainers:
    """How an engine names its store and removes containers from it.

    ``store_command`` prints the storage driver, a newline and the graph root;
    ``remove_command`` is followed by container ids.
    """

    store_command: tuple[str, ...]
    remove_command: tuple[str, ...]


def new_build_id() -> str:
    return secrets.token_hex(8)


def parse_store(text: str) -> tuple[str, Path] | None:
    """``(driver, graph root)`` from ``store_command``'s output (pure)."""
    driver, _, root = text.strip("\n").partition("\n")
    driver, root = driver.strip(), root.strip("\n")
    if not driver or not os.path.isabs(root):
        return None
    return driver, Path(root)


def marked_containers(driver: str, graph_root: Path, build_id: str) -> list[str]:
    """The ids of the working containers whose buildah state carries ``build_id``."""
    found: list[str] = []
    try:
        entries = list(os.scandir(graph_root / f"{driver}-containers"))
    except OSError:
        return found
    for entry in entries:
        try:
            with open(Path(entry.path, "userdata", _STATE_FILE), "rb") as handle:
                state = json.loads(handle.read(_MAX_STATE))
        except (OSError, ValueError):
            continue  # not a buildah container, or not readable by us
        args = state.get("Args") if isinstance(state, dict) else None
        if isinstance(args, dict) and args.get(MARKER_ARG) == build_id:
            found.append(entry.name)
    return sorted(found)


def stop_orphaned_steps(engine_tmp: Path, *, wait: float = _STEP_EXIT_WAIT) -> list[int]:
    """Kill the ``RUN`` steps a stopped engine left running (their bundle directories are in
    ``engine_tmp``) and wait up to ``wait`` seconds for them to be gone; the pids killed."""
    killed: list[int] = []
    for pid_file in sorted(engine_tmp.glob("buildah*/pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid > 1 and _in_cgroup_of(pid, pid_file.parent.name):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    deadline = time.monotonic() + wait
    while any(_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.1)
    return killed


def _in_cgroup_of(pid: int, bundle: str) -> bool:
    """Whether ``pid`` runs in the cgroup buildah made for the bundle (``.../buildah-<bundle>``,
    ``.scope`` under systemd)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return re.search(rf"[/-]{re.escape(bundle)}(?:\.scope)?$", text, re.MULTILINE) is not None


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


async def remove_left_behind(
    engine: WorkingContainers,
    build_id: str,
    engine_tmp: Path,
    *,
    env: Mapping[str, str],
    prefix: Sequence[str] = (),
) -> list[str]:
    """After a build that did not succeed: stop its orphaned steps and remove its working
    containers; the ids removed. Never raises for what it cannot find or read."""
    await anyio.to_thread.run_sync(stop_orphaned_steps, engine_tmp)
    answer = await anyio.to_thread.run_sync(
        partial(probe, [*prefix, *engine.store_command], env=env)
    )
    store = parse_store(answer.stdout) if answer.ok else None
    if store is None:
        return []
    ids = await anyio.to_thread.run_sync(marked_containers, *store, build_id)
    if ids:
        await run_streaming([*prefix, *engine.remove_command, *ids], env=dict(env))
    return ids
