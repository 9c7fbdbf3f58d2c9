"""One base-image pull at a time (pipeline/backends/basepulls.py): the FROM phase read from step
headers, and the lock shared by builds in this process and in others."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from pipeline.backends.basepulls import (
    BasePullLock,
    FromPhase,
    PullGate,
    from_count,
    lock_path,
)

TWO_FROMS = "FROM python:3.11-slim AS buildstage\nRUN x\nFROM python:3.11-slim AS base\n"


def test_the_from_phase_ends_at_the_first_step_after_the_last_from() -> None:
    phase = FromPhase(from_count(TWO_FROMS))
    seen = [
        (line.split(":")[0], phase.see(line))
        for line in (
            "STEP 1/5: FROM python:3.11-slim AS buildstage",
            "STEP 2/5: RUN x",  # a FROM is still to come
            "STEP 3/5: FROM python:3.11-slim AS base",
            "--> Using cache 1234",
            "STEP 4/5: ENV A=1",  # past the last FROM
            "STEP 5/5: FROM nothing",  # over is over
        )
    ]
    assert seen == [
        ("STEP 1/5", False), ("STEP 2/5", False), ("STEP 3/5", False),
        ("--> Using cache 1234", False), ("STEP 4/5", True), ("STEP 5/5", True),
    ]  # fmt: skip


def test_the_from_phase_reads_podmans_multi_stage_step_headers() -> None:
    # podman 4 prefixes each step of a multi-stage build with its stage, "[2/3] STEP 1/2: ...",
    # and runs the stages out of order (the default layout has three FROMs)
    dockerfile = (
        "FROM python:3.11-slim AS base-container\nENV A=1\n"
        "FROM base-container AS buildstage\nRUN x\nFROM base-container AS runtime\nRUN y\n"
    )
    phase = FromPhase(from_count(dockerfile))
    seen = [
        phase.see(line)
        for line in (
            "[1/3] STEP 1/2: FROM python:3.11-slim AS base-container",
            "[1/3] STEP 2/2: ENV A=1",
            "[3/3] STEP 1/2: FROM b1b6b15e1a7d AS runtime",
            "[2/3] STEP 1/2: FROM b1b6b15e1a7d AS buildstage",
            "[2/3] STEP 2/2: RUN x",
            "[3/3] STEP 2/2: RUN y",
        )
    ]
    assert seen == [False, False, False, False, True, True]


def test_a_dockerfile_without_from_counts_one() -> None:
    assert from_count("") == 1
    assert from_count("from a\n  FROM b AS c\nRUN echo FROM x\n") == 2


def test_the_lock_lives_in_the_runtime_dir_else_in_tmp_per_user() -> None:
    assert lock_path(runtime_dir="/run/user/1000") == Path(
        "/run/user/1000/bento-pipeline-base-pulls.lock"
    )
    assert lock_path(uid=1000, runtime_dir=None) == Path("/tmp/bento-pipeline-base-pulls-1000.lock")
    assert lock_path(uid=7, runtime_dir="relative") == Path("/tmp/bento-pipeline-base-pulls-7.lock")


def test_builds_in_one_process_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "pulls.lock"
    events: list[str] = []

    async def build(name: str, gate: PullGate) -> None:
        await gate.enter(on_wait=lambda _: events.append(f"{name} waits"))
        events.append(f"{name} pulls")
        await anyio.sleep(0.3)
        for line in ("STEP 1/3: FROM a", "STEP 2/3: FROM b", "STEP 3/3: RUN x"):
            gate.see(line)  # the lock goes back at RUN
        events.append(f"{name} builds")
        await anyio.sleep(0.3)
        gate.release()

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(build, "one", PullGate(TWO_FROMS, BasePullLock(path)))
            await anyio.sleep(0.05)
            group.start_soon(build, "two", PullGate(TWO_FROMS, BasePullLock(path)))

    anyio.run(main)
    assert events == ["one pulls", "two waits", "one builds", "two pulls", "two builds"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_build_waits_for_another_process_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "pulls.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), "1.0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waited: list[Path] = []
        lock = BasePullLock(path)
        started = time.monotonic()
        assert anyio.run(lambda: lock.acquire(on_wait=waited.append)) is True
        assert time.monotonic() - started > 0.5 and waited == [path]
        lock.release()
        lock.release()  # idempotent
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_file_of_someone_else_is_not_used(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to make a file of another user")
    path = tmp_path / "pulls.lock"
    path.write_text("")
    os.chown(path, 12345, 12345)
    lock = BasePullLock(path)
    assert anyio.run(lock.acquire) is False  # no shared lock; this process's turn all the same
    assert lock.held
    lock.release()
    assert not lock.held


def test_a_cancelled_wait_gives_nothing_back_it_did_not_take(tmp_path: Path) -> None:
    path = tmp_path / "pulls.lock"

    async def main() -> None:
        first = BasePullLock(path)
        await first.acquire()
        second = BasePullLock(path)
        with anyio.move_on_after(0.3):
            await second.acquire()
        assert not second.held and first.held
        first.release()
        third = BasePullLock(path)
        with anyio.fail_after(2):
            await third.acquire()  # the cancelled waiter left the lock free
        third.release()

    anyio.run(main)
