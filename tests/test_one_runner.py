"""One process runner: :mod:`pipeline.backends.process` starts every process, and its options.

The first test reads every module with :mod:`ast` (nothing is imported) and fails on a process
started anywhere else; the rest run small real commands through the runners (no mocks).
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from pipeline.backends.process import probe, run_lines, stream_stdout

ROOT = Path(__file__).resolve().parents[1]
RUNNER = "pipeline/backends/process.py"

#: What starts a process, by module: a use of any of these names (a call, or the function
#: handed on, e.g. to ``anyio.to_thread.run_sync``) outside the runner is an offender.
STARTERS: Mapping[str, frozenset[str]] = {
    "subprocess": frozenset(
        {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
    ),
    "asyncio": frozenset({"create_subprocess_exec", "create_subprocess_shell"}),
    "anyio": frozenset({"run_process", "open_process"}),
    "os": frozenset(
        {"system", "popen", "posix_spawn", "posix_spawnp", "spawnv", "spawnve", "spawnvp"}
        | {"spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "execv", "execve", "execvp"}
        | {"execvpe", "execl", "execle", "execlp", "execlpe", "fork", "forkpty"}
    ),
}

#: Uses that stay, each with its reason. A test below fails once an entry is no longer there.
ALLOWED: dict[tuple[str, str], str] = {}


def starters(source: str) -> Iterator[tuple[int, str]]:
    """(line, ``module.name``) of every use of a process starter in ``source``: through the
    module (``subprocess.run``, ``import subprocess as sp; sp.run``, ``asyncio.subprocess``'s
    functions included) or a name imported from it (``from subprocess import run as r``)."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> module
    names: dict[str, str] = {}  # local name -> module.function
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if alias.name in STARTERS or root in STARTERS:
                    modules[alias.asname or root] = alias.name if alias.asname else root
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = "asyncio" if node.module == "asyncio.subprocess" else node.module
            for alias in node.names:
                if alias.name in STARTERS.get(module, ()):
                    names[alias.asname or alias.name] = f"{module}.{alias.name}"
                elif module == "asyncio" and alias.name == "subprocess":
                    modules[alias.asname or alias.name] = "asyncio"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names:
            yield node.lineno, names[node.id]
        elif isinstance(node, ast.Attribute):
            base = node.value
            dotted = []
            while isinstance(base, ast.Attribute):
                dotted.append(base.attr)
                base = base.value
            if not isinstance(base, ast.Name) or base.id not in modules:
                continue
            module = modules[base.id].split(".")[0]
            if node.attr in STARTERS[module]:
                yield node.lineno, f"{module}.{node.attr}"


@functools.cache
def _offenders() -> tuple[list[str], set[tuple[str, str]]]:
    offenders: list[str] = []
    allowed_seen: set[tuple[str, str]] = set()
    for path in sorted([*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "render").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel == RUNNER:
            continue
        for line, name in starters(path.read_text(encoding="utf-8")):
            if (rel, name) in ALLOWED:
                allowed_seen.add((rel, name))
            else:
                offenders.append(f"{rel}:{line}: {name}")
    return offenders, allowed_seen


def test_only_the_runner_starts_processes() -> None:
    """Subprocess handling is done once, in pipeline/backends/process.py: use probe,
    run_lines, stream_stdout or run_streaming there instead."""
    offenders, _ = _offenders()
    assert not offenders, f"processes started outside {RUNNER}:\n" + "\n".join(offenders)


def test_every_allowance_is_still_needed() -> None:
    _, seen = _offenders()
    stale = sorted(set(ALLOWED) - seen)
    assert not stale, f"gone: remove from ALLOWED in tests/test_one_runner.py: {stale}"


def test_the_checker_finds_every_spelling() -> None:
    source = (
        "import subprocess, os\n"
        "import subprocess as sp\n"
        "import asyncio.subprocess\n"
        "import anyio as aio\n"
        "from subprocess import Popen as P, CalledProcessError\n"
        "from asyncio.subprocess import create_subprocess_exec\n"
        "subprocess.run(['x'])\n"
        "sp.check_output(['x'])\n"
        "P(['x'])\n"
        "asyncio.create_subprocess_shell('x')\n"
        "asyncio.subprocess.create_subprocess_exec('x')\n"
        "create_subprocess_exec('x')\n"
        "aio.to_thread.run_sync(subprocess.call, ['x'])\n"
        "aio.open_process(['x'])\n"
        "os.system('x')\n"
        "raise CalledProcessError(1, 'x') from subprocess.SubprocessError()\n"
        "thing.run(['x'])\n"
    )
    assert sorted(starters(source)) == [
        (7, "subprocess.run"),
        (8, "subprocess.check_output"),
        (9, "subprocess.Popen"),
        (10, "asyncio.create_subprocess_shell"),
        (11, "asyncio.create_subprocess_exec"),
        (12, "asyncio.create_subprocess_exec"),
        (13, "subprocess.call"),
        (14, "anyio.open_process"),
        (15, "os.system"),
    ]


# -- probe: stdin, cwd, timeouts, text -------------------------------------------------------------

ECHO_STDIN = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"]


def test_probe_writes_input_to_the_command_s_stdin() -> None:
    done = probe(ECHO_STDIN, input="https://index.docker.io/v1/\n")
    assert done.ok and done.stdout == "HTTPS://INDEX.DOCKER.IO/V1/\n"


def test_probe_without_input_gives_an_empty_stdin() -> None:
    started = time.monotonic()
    done = probe(["cat"], timeout=10)
    assert done.ok and done.stdout == "" and time.monotonic() - started < 5


def test_probe_reads_stdin_from_an_open_file(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(b"layer bytes\x00\n")
    with archive.open("rb") as handle:
        done = probe(["wc", "-c"], stdin_file=handle)
    assert done.ok and done.stdout.strip() == "13"


def test_probe_refuses_input_and_a_stdin_file_together(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with (tmp_path / "f").open("rb") as handle, pytest.raises(ValueError):
        probe(["cat"], input="x", stdin_file=handle)


def test_probe_runs_in_cwd(tmp_path: Path) -> None:
    done = probe([sys.executable, "-c", "import os; print(os.getcwd())"], cwd=tmp_path)
    assert Path(done.stdout.strip()).resolve() == tmp_path.resolve()


def test_probe_adds_env_to_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONE_RUNNER_OURS", "kept")
    code = "import os; print(os.environ['ONE_RUNNER_OURS'], os.environ['ONE_RUNNER_ADDED'])"
    done = probe([sys.executable, "-c", code], env={"ONE_RUNNER_ADDED": "added"})
    assert done.stdout.split() == ["kept", "added"]


def test_probe_reports_a_timeout_and_a_missing_binary_apart() -> None:
    started = time.monotonic()
    slow = probe(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - started < 10
    assert slow.returncode is None and slow.timed_out and "did not answer" in slow.stderr
    missing = probe(["no-such-binary-one-runner"], timeout=None)
    assert missing.returncode is None and not missing.timed_out
    assert "no-such-binary-one-runner" in missing.stderr


def test_probe_replaces_undecodable_output() -> None:
    code = "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe')"
    done = probe([sys.executable, "-c", code])
    assert done.ok and done.stdout == "ok \ufffd\ufffd"


# -- stream_stdout: read to the end, or stop early ----------------------------------------------

BIG = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * (4 << 20))"]


def test_stream_stdout_gives_the_whole_output() -> None:
    with stream_stdout(BIG) as out:
        data = out.read()
    assert len(data) == 4 << 20


def test_stream_stdout_drains_what_is_left_and_raises_on_a_failure() -> None:
    """A reader that stops before the end does not block the command; its failure is still
    reported, as CalledProcessError naming the command."""
    argv = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * (4 << 20)); exit(3)"]
    started = time.monotonic()
    with pytest.raises(subprocess.CalledProcessError) as failed, stream_stdout(argv) as out:
        assert out.read(10) == b"x" * 10
    assert failed.value.returncode == 3 and failed.value.cmd == argv
    assert time.monotonic() - started < 30


def test_stream_stdout_stops_early_without_hanging() -> None:
    """read_to_end=False: the command (here endless) is killed when the block is left; its
    exit status is not looked at."""
    code = "import sys\nwhile True: sys.stdout.buffer.write(b'y' * 65536)"
    endless = [sys.executable, "-c", code]
    started = time.monotonic()
    with stream_stdout(endless, read_to_end=False) as out:
        assert out.read(100) == b"y" * 100
    assert time.monotonic() - started < 10
    with stream_stdout(["sh", "-c", "exit 3"], read_to_end=False) as out:
        assert out.read() == b""


def test_stream_stdout_kills_the_command_when_the_reader_fails() -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="bad tar"), stream_stdout(["sleep", "30"]) as out:
        del out
        raise RuntimeError("bad tar")
    assert time.monotonic() - started < 10


def test_stream_stdout_of_a_missing_binary_is_an_oserror() -> None:
    with pytest.raises(OSError), stream_stdout(["no-such-binary-one-runner"]):
        pass


# -- run_lines: merged output line by line ------------------------------------------------------


def test_run_lines_streams_merged_lines_and_keeps_the_tail() -> None:
    seen: list[str] = []
    script = (
        "printf 'one\\r\\ntwo\\rthree\\n'; echo to-stderr >&2; "
        "for i in $(seq 1 30); do echo line $i; done; printf 'no newline \\377'; exit 4"
    )
    outcome = run_lines(["sh", "-c", script], on_line=seen.append, tail_lines=3)
    assert seen[:5] == ["one", "two", "three", "to-stderr", "line 1"]
    assert outcome.returncode == 4 and outcome.lines == len(seen) == 35
    assert outcome.tail == ("line 29", "line 30", "no newline \ufffd")


def test_run_lines_adds_env_or_gives_it_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONE_RUNNER_OURS", "kept")
    code = "import os; print(os.environ.get('ONE_RUNNER_OURS'), os.environ.get('ADDED'))"
    argv = [sys.executable, "-c", code]
    assert run_lines(argv, env={"ADDED": "a"}).tail == ("kept a",)
    alone = run_lines(argv, env={"ADDED": "a"}, inherit_env=False)
    assert alone.returncode == 0 and alone.tail == ("None a",)


def test_run_lines_of_a_missing_binary_is_an_oserror() -> None:
    with pytest.raises(OSError):
        run_lines(["no-such-binary-one-runner"])


def test_runner_children_do_not_inherit_our_stdin(tmp_path: Path) -> None:
    """Every runner gives the command /dev/null (or the input it is handed) as stdin."""
    code = "import os; print(os.path.realpath('/proc/self/fd/0'))"
    if not os.path.exists("/proc/self/fd/0"):
        pytest.skip("no /proc")
    argv = [sys.executable, "-c", code]
    assert probe(argv).stdout.strip() == os.devnull
    assert run_lines(argv).tail == (os.devnull,)
    with stream_stdout(argv) as out:
        assert out.read().decode().strip() == os.devnull
