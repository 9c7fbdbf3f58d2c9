"""Process handling: streaming, redaction, failing-step detection, stopping the process group."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from pipeline.backends import registry
from pipeline.backends.buildfailures import StepTracker
from pipeline.backends.executor import ExternalExecutor
from pipeline.backends.process import Redactor, probe, run_streaming
from pipeline.errors import BackendError, BuildError
from pipeline.request import BuildRequest, SecretSpec


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_run_streaming_streams_lines_and_keeps_the_tail() -> None:
    seen: list[str] = []
    script = "for i in $(seq 1 50); do echo line $i; done; echo to-stderr >&2; exit 3"
    outcome = anyio.run(
        lambda: run_streaming(["sh", "-c", script], on_line=seen.append, tail_lines=5)
    )
    assert outcome.returncode == 3
    assert seen[0] == "line 1" and len(seen) == 51
    assert outcome.tail == ("line 47", "line 48", "line 49", "line 50", "to-stderr")


def test_redactor_hides_secret_values_in_every_line() -> None:
    redact = Redactor([b"hunter2-secret\n", b"multi\nline-value"])
    assert redact("token=hunter2-secret here") == "token=*** here"
    assert redact("line-value leaked") == "*** leaked"
    assert redact("nothing") == "nothing"


def test_cancellation_stops_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; echo started; wait"

    async def main() -> None:
        with anyio.move_on_after(1.5):
            await run_streaming(["sh", "-c", script])

    started = time.monotonic()
    anyio.run(main)
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the engine's child outlived the cancelled build"


def test_step_tracker_names_the_failing_buildkit_step() -> None:
    tracker = StepTracker()
    for line in [
        "#5 [1/3] FROM docker.io/library/python:3.11-slim",
        "#6 [2/3] RUN pip install nothing-here",
        "#7 [3/3] COPY . .",
        "#6 ERROR: process did not complete successfully: exit code: 1",
    ]:
        tracker(line)
    assert tracker.step == "[2/3] RUN pip install nothing-here"


def test_step_tracker_names_the_failing_buildah_step() -> None:
    tracker = StepTracker()
    for line in ["STEP 1/4: FROM python:3.11-slim", "STEP 2/4: RUN false", "Error: oops"]:
        tracker(line)
    assert tracker.step == "STEP 2/4: RUN false"


def test_probe_never_raises() -> None:
    assert probe(["no-such-binary-xyz"]).returncode is None
    assert probe([sys.executable, "-c", "print('hi')"]).stdout.strip() == "hi"


@pytest.fixture()
def script_backend(tmp_path: Path) -> ExternalExecutor:
    """A registered wrapper-script backend whose script prints and fails like an engine."""
    script = tmp_path / "engine.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "#1 [1/2] FROM scratch"\n'
        'echo "#2 [2/2] RUN cat /run/secrets/tok"\n'
        'echo "value was $TOKEN"\n'
        'echo "#2 ERROR: exit code: 1"\n'
        "exit 1\n"
    )
    script.chmod(0o755)
    spec = registry.register_backend(
        "failing-script",
        binary=str(script),
        buildkit_support=True,
        health=lambda: True,
        construct_build_args=lambda **o: [str(script), o["context_path"]],
    )
    yield ExternalExecutor(spec)
    registry.unregister_backend("failing-script")


def test_engine_failure_is_a_build_error_with_step_and_redacted_tail(
    script_backend: ExternalExecutor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKEN", "very-secret-token")
    request = BuildRequest(context=tmp_path, secrets=(SecretSpec(id="tok", env="TOKEN"),))
    lines: list[str] = []
    with pytest.raises(BuildError) as info:
        anyio.run(lambda: script_backend.run(request, on_output=lines.append))
    error = info.value
    assert error.exit_code == 1
    assert error.step == "[2/2] RUN cat /run/secrets/tok"
    assert "value was ***" in error.output_tail
    assert not any("very-secret-token" in line for line in [*lines, str(error)])


def test_unhealthy_engine_is_refused_before_running(tmp_path: Path) -> None:
    spec = registry.register_backend(
        "sick",
        binary=sys.executable,
        buildkit_support=False,
        health=lambda: False,
        construct_build_args=lambda **o: ["-c", "raise SystemExit(9)"],
    )
    try:
        with pytest.raises(BackendError, match="not usable"):
            anyio.run(lambda: ExternalExecutor(spec).run(BuildRequest(context=tmp_path)))
    finally:
        registry.unregister_backend("sick")
