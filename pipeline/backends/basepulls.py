"""One base-image pull at a time into a containers-storage, across processes.

containers-storage (podman, buildah) keeps one image per name: two builds that pull
``python:3.11-slim`` at once for different platforms race, and one fails with "image not
known". A build whose engine spec says ``serial_base_pulls`` holds :class:`BasePullLock` from
its start until the engine's output shows a step after the Dockerfile's last ``FROM``
(:class:`FromPhase`), or until the build ends; the rest of the build runs alongside others.

The lock is an ``flock`` on a file of this user's (mode 0600):
``$XDG_RUNTIME_DIR/bento-pipeline-base-pulls.lock``, else
``/tmp/bento-pipeline-base-pulls-UID.lock``. Not under ``$TMPDIR``: builds with different
temp dirs share one store. Builds in one process (a matrix's cells) take turns through a lock
of the process as well. A file that is not ours (someone else created it) is not used: builds
of other processes then do not wait for this one, as before there was a lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import anyio

from pipeline.stepheaders import numbered_step

FROM_LINE = re.compile(r"^\s*FROM\s", re.IGNORECASE | re.MULTILINE)

_POLL = 0.1  # seconds between tries while another build holds the lock


def from_count(dockerfile: str) -> int:
    """How many ``FROM`` instructions the Dockerfile text has (at least 1)."""
    return max(1, len(FROM_LINE.findall(dockerfile)))


class FromPhase:
    """Follows an engine's step headers: :attr:`done` once a step after the last of the
    Dockerfile's ``froms`` ``FROM`` steps has started (stages may print in any order)."""

    def __init__(self, froms: int) -> None:
        self._froms = max(1, froms)
        self._seen = 0
        self.done = False

    def see(self, line: str) -> bool:
        """Feed one output line; whether the FROM phase is over (it stays over)."""
        step = numbered_step(line)
        if self.done or step is None:
            return self.done
        if step.keyword == "FROM":
            self._seen += 1
        elif self._seen >= self._froms:
            self.done = True
        return self.done


def lock_path(*, uid: int | None = None, runtime_dir: str | None = None) -> Path:
    """Where this user's builds meet (pure: ``runtime_dir`` is ``$XDG_RUNTIME_DIR``)."""
    if runtime_dir and os.path.isabs(runtime_dir):
        return Path(runtime_dir, "bento-pipeline-base-pulls.lock")
    uid = os.geteuid() if uid is None else uid
    return Path("/tmp", f"bento-pipeline-base-pulls-{uid}.lock")


class BasePullLock:
    """The lock, taken by :meth:`acquire` (cancellable: it polls) and given back by
    :meth:`release` (idempotent; every exit path of a build calls it).

    Builds in one process (a matrix's cells) also take turns through a lock of the process,
    so they do even when the file cannot be used."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or lock_path(runtime_dir=os.environ.get("XDG_RUNTIME_DIR"))
        self._fd: int | None = None
        self._in_process = False

    @property
    def held(self) -> bool:
        return self._in_process

    async def acquire(self, *, on_wait: Callable[[Path], None] | None = None) -> bool:
        """Take the lock, waiting while another build holds it; whether the file lock was
        taken too (``False``: the file cannot be used, only this process's builds take
        turns). ``on_wait``: called once with the path if we have to wait."""
        waiting = _Waiting(self.path, on_wait)
        try:
            while not _IN_PROCESS.acquire(blocking=False):
                await waiting.turn()
            self._in_process = True
            fd = _open_own(self.path)
            if fd is None:
                return False
            try:
                while not _flock(fd):
                    await waiting.turn()
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return True
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        if self._in_process:
            self._in_process = False
            _IN_PROCESS.release()


_IN_PROCESS = threading.Lock()


class _Waiting:
    """Sleeps between tries; tells ``on_wait`` once that the build waits."""

    def __init__(self, path: Path, on_wait: Callable[[Path], None] | None) -> None:
        self._path = path
        self._on_wait = on_wait

    async def turn(self) -> None:
        if self._on_wait is not None:
            self._on_wait(self._path)
            self._on_wait = None
        await anyio.sleep(_POLL)


def _flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _open_own(path: Path) -> int | None:
    """The lock file opened for locking (created 0600), if it is a regular file of ours."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        return None
    return fd


class PullGate:
    """One build's turn: :meth:`enter` takes the lock, :meth:`see` follows the engine's output
    and gives the lock back after the last FROM, :meth:`release` gives it back in any case."""

    def __init__(self, dockerfile: str, lock: BasePullLock | None = None) -> None:
        self._phase = FromPhase(from_count(dockerfile))
        self._lock = lock or BasePullLock()

    async def enter(self, *, on_wait: Callable[[Path], None] | None = None) -> None:
        await self._lock.acquire(on_wait=on_wait)

    def see(self, line: str) -> None:
        if self._lock.held and self._phase.see(line):
            self._lock.release()

    def release(self) -> None:
        self._lock.release()
