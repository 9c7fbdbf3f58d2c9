"""Running processes: done once, here. Never a shell.

Every process the pipeline starts goes through one of these:

- :func:`run_streaming` (async): engine builds. Output streamed line by line, the last lines
  kept, secrets redacted, the whole process group stopped on cancellation or Ctrl-C.
- :func:`probe`: short synchronous commands whose output is read whole (engine health and
  capabilities, ``git``, ``uv``, credential helpers, ``engine load``). Never raises: a command
  that cannot start or times out has ``returncode`` None.
- :func:`run_lines`: long synchronous commands whose merged output is shown line by line as it
  comes (the base image's ``mmdebstrap``, ``skopeo``), the last lines kept.
- :func:`stream_stdout`: a command whose binary stdout the caller reads as a stream (``docker
  save`` into a tar reader), to the end (a failure raises) or only as far as it needs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import anyio
from anyio.abc import Process
from attrs import frozen

from pipeline.redaction import Redactor as Redactor  # the one rule; executors import it here

TAIL_LINES = 30
_TERMINATE_GRACE = 5.0


@frozen
class ProbeResult:
    """Outcome of a short command: ``returncode`` is ``None`` when the binary could not start
    or did not finish in time (``timed_out``); ``stderr`` then says why."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def first_error_line(self) -> str:
        for line in (self.stderr or self.stdout).splitlines():
            if line.strip():
                return line.strip()
        return ""


def probe(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 20.0,
    input: str | None = None,
    stdin_file: IO[bytes] | None = None,
    cwd: Path | None = None,
) -> ProbeResult:
    """Run a short command (version, help, info, a query) and capture its output as text
    (undecodable bytes replaced). Never raises.

    ``env`` is added to this process's environment. The command's stdin is ``input`` (text),
    else ``stdin_file`` (an open binary file, e.g. an archive for ``engine load``), else
    nothing (/dev/null). ``timeout`` None waits as long as the command runs.
    """
    if input is not None and stdin_file is not None:
        raise ValueError("probe: give input or stdin_file, not both")
    full_env = {**os.environ, **(env or {})}
    stdin: IO[bytes] | int | None = stdin_file
    if input is None and stdin_file is None:
        stdin = subprocess.DEVNULL
    try:
        done = subprocess.run(
            list(argv),
            env=full_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            input=input,
            stdin=stdin,  # None with input: subprocess.run pipes ``input`` in
            check=False,
        )
    except FileNotFoundError as exc:
        return ProbeResult(None, "", str(exc))
    except subprocess.TimeoutExpired:
        return ProbeResult(
            None, "", f"{argv[0]} did not answer within {timeout:.0f}s", timed_out=True
        )
    except OSError as exc:
        return ProbeResult(None, "", str(exc))
    return ProbeResult(done.returncode, done.stdout, done.stderr)


@contextlib.contextmanager
def stream_stdout(argv: Sequence[str], *, read_to_end: bool = True) -> Iterator[IO[bytes]]:
    """Run ``argv`` and give its stdout (binary) to the ``with`` block to read as a stream;
    its stderr is discarded, its stdin is /dev/null.

    ``read_to_end=True``: leaving the block reads what is left of the output, waits for the
    command and raises :class:`subprocess.CalledProcessError` when it failed (the caller wanted
    the whole stream). ``read_to_end=False``: leaving the block kills the command, which never
    hangs however much output is left (the caller stops reading when it has what it needs);
    the exit status is not looked at. An exception from the block kills the command too.
    Raises OSError when ``argv`` cannot start.
    """
    command = list(argv)
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        try:
            yield proc.stdout
        except BaseException:
            proc.kill()
            raise
        if not read_to_end:
            proc.kill()
            return
        while proc.stdout.read(1 << 16):
            pass
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, command)


@frozen
class RunOutcome:
    """Outcome of a streamed command: its exit status, its last lines, how many it printed."""

    returncode: int
    tail: tuple[str, ...]
    lines: int


def run_lines(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    on_line: Callable[[str], None] | None = None,
    tail_lines: int = TAIL_LINES,
) -> RunOutcome:
    """Run ``argv`` synchronously, reading its merged stdout/stderr as text line by line
    (undecodable bytes replaced; a newline or a carriage return ends a line) as it comes.

    Each line, without its line ending, goes to ``on_line`` and the kept tail. ``env`` is
    added to this process's environment, or with ``inherit_env=False`` is the command's whole
    environment (a command run in a chroot needs nothing of ours); stdin is /dev/null. The
    command stays in our process group, so a terminal's Ctrl-C reaches it too. Raises OSError
    when ``argv`` cannot start.
    """
    full_env = {**(os.environ if inherit_env else {}), **(env or {})}
    tail: deque[str] = deque(maxlen=tail_lines)
    count = 0
    with subprocess.Popen(
        list(argv),
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            count += 1
            tail.append(line)
            if on_line is not None:
                on_line(line)
        returncode = proc.wait()
    return RunOutcome(returncode, tuple(tail), count)


async def run_streaming(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    on_line: Callable[[str], None] | None = None,
    redact: Callable[[str], str] = lambda line: line,
    inherit_output: bool = False,
    tail_lines: int = TAIL_LINES,
    unset: Sequence[str] = (),
) -> RunOutcome:
    """Run ``argv`` in its own process group, streaming merged stdout/stderr line by line.

    Lines pass through ``redact`` before reaching ``on_line`` or the kept tail. When the caller
    is cancelled (anyio cancellation, Ctrl-C), the whole process group gets SIGTERM and, after
    a grace period, SIGKILL; the engine never outlives the build. ``inherit_output`` lets the
    engine draw its own TTY progress on our terminal (nothing is captured then). ``unset``
    names variables the engine must not inherit.
    """
    full_env = {**os.environ, **(env or {})}
    for name in unset:
        full_env.pop(name, None)
    tail: deque[str] = deque(maxlen=tail_lines)
    count = 0
    process: Process = await anyio.open_process(
        list(argv),
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=None if inherit_output else subprocess.PIPE,
        stderr=None if inherit_output else subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if process.stdout is not None:
            buffer = b""
            async for chunk in process.stdout:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    line = redact(raw.decode("utf-8", "replace").rstrip("\r"))
                    count += 1
                    tail.append(line)
                    if on_line is not None:
                        on_line(line)
            if buffer:
                line = redact(buffer.decode("utf-8", "replace").rstrip("\r"))
                count += 1
                tail.append(line)
                if on_line is not None:
                    on_line(line)
        returncode = await process.wait()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _stop_group(process)
        raise
    finally:
        if process.returncode is not None:
            with anyio.CancelScope(shield=True):
                await process.aclose()
    return RunOutcome(returncode, tuple(tail), count)


async def _stop_group(process: Process) -> None:
    """Stop the engine: its whole process group and whatever it started outside the group.

    The group gets SIGINT (as a terminal's Ctrl-C would: docker/buildx cancel the build, podman
    exits without committing), then SIGTERM, then SIGKILL. Processes the engine started in
    their own session (podman/buildah run each RUN step's container that way, and leave it
    running when podman exits) get SIGKILL at once: they are the cancelled build step.
    """
    pgid = process.pid  # start_new_session=True: the child leads its own group
    strays: set[int] = set()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        strays |= _strays(pgid)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not _group_alive(pgid):
            break
        _signal_group(pgid, sig)
        with anyio.move_on_after(_TERMINATE_GRACE):
            while True:
                if process.returncode is None:
                    with anyio.move_on_after(0.1):
                        await process.wait()
                if not _group_alive(pgid):
                    break
                await anyio.sleep(0.1)
        if not _group_alive(pgid):
            break
    for pid in strays | _strays(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if process.returncode is None:
        await process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) from /proc (empty where there is no /proc)."""
    table: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _strays(pgid: int) -> set[int]:
    """Descendants of the group's members that live in other process groups."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    todo = [pid for pid, (_, group) in table.items() if group == pgid]
    found: set[int] = set()
    while todo:
        pid = todo.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid for pid in found if table[pid][1] != pgid}


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
