"""How the executor names faults from an engine's words (pure): a killed engine, a push that
could not reach its registry, a builder whose daemon is down. The real engines: see
tests/engines/test_faults.py."""

from __future__ import annotations

from pipeline.backends.buildfailures import StepTracker, build_error
from pipeline.backends.buildx import inspect_error
from pipeline.backends.process import RunOutcome
from pipeline.backends.pushfailures import build_push_failure, describe_push_failure

# docker 28 (`build --push`, the docker driver) when nothing listens at the registry's port
DOCKER_PUSH_REFUSED = [
    "#11 [runtime 5/5] RUN chmod +x /home/bentoml/bento/env/docker/entrypoint.sh",
    "#11 CACHED",
    "#12 exporting to image",
    "#12 exporting layers done",
    "#12 naming to 127.0.0.1:43897/hello:x done",
    "#12 DONE 0.0s",
    "#13 pushing 127.0.0.1:43897/hello:x with docker",
    '#13 ERROR: Get "http://127.0.0.1:43897/v2/": dial tcp 127.0.0.1:43897: connect: '
    "connection refused",
    "------",
    " > pushing 127.0.0.1:43897/hello:x with docker:",
    "------",
    'ERROR: Get "http://127.0.0.1:43897/v2/": dial tcp 127.0.0.1:43897: connect: connection '
    "refused",
]


def _tracked(lines: list[str]) -> StepTracker:
    tracker = StepTracker()
    for line in lines:
        tracker(line)
    return tracker


def test_a_failed_buildkit_push_is_the_failing_step_not_the_last_run() -> None:
    tracker = _tracked(DOCKER_PUSH_REFUSED)
    assert tracker.failed == "pushing 127.0.0.1:43897/hello:x with docker"
    assert tracker.current == (
        "[runtime 5/5] RUN chmod +x /home/bentoml/bento/env/docker/entrypoint.sh"
    )


def test_a_build_push_that_cannot_reach_the_registry_names_it() -> None:
    tracker = _tracked(DOCKER_PUSH_REFUSED)
    found = build_push_failure(
        DOCKER_PUSH_REFUSED, ["localhost/other:1", "127.0.0.1:43897/hello:x"],
        failed_step=tracker.failed,
    )  # fmt: skip
    assert found is not None
    assert found.tag == "127.0.0.1:43897/hello:x"
    assert found.reason == "the registry cannot be reached (connection refused)"
    assert found.unreachable and "127.0.0.1:43897 is up" in (found.hint("127.0.0.1:43897") or "")


def test_a_run_step_that_fails_is_no_push_failure_whatever_it_prints() -> None:
    lines = [
        "#7 [runtime 4/5] RUN git push origin && exit 3",
        "#7 0.3 pushing to origin: connection refused",
        "#7 ERROR: process did not complete successfully: exit code: 3",
    ]
    tracker = _tracked(lines)
    assert tracker.failed == "[runtime 4/5] RUN git push origin && exit 3"
    assert build_push_failure(lines, ["127.0.0.1:5000/x:1"], failed_step=tracker.failed) is None


def test_a_push_commands_failure_names_the_last_error_when_the_registry_answered() -> None:
    lines = [
        "Copying blob sha256:464a...",
        "Error: writing blob: initiating layer upload to /v2/x/blobs/uploads/ in 127.0.0.1:5000: "
        "denied: quota exceeded",
    ]
    found = describe_push_failure(lines, "127.0.0.1:5000/x:1")
    assert not found.unreachable and found.hint("127.0.0.1:5000") is None
    assert found.reason.startswith("writing blob: initiating layer upload")
    assert describe_push_failure([], "r/x:1").reason == "the engine did not say why"


def test_a_podman_push_to_a_dead_port_is_unreachable() -> None:
    line = (
        "Error: trying to reuse blob sha256:c915 at destination: pinging container registry "
        '127.0.0.1:43897: Get "https://127.0.0.1:43897/v2/": dial tcp 127.0.0.1:43897: connect: '
        "connection refused"
    )
    found = describe_push_failure(["Copying blob sha256:4649", line], "127.0.0.1:43897/x:1")
    assert found.reason == "the registry cannot be reached (connection refused)"


def test_a_killed_engine_is_named_by_its_signal() -> None:
    lines = ["[3/3] STEP 7/16: RUN sleep 1234.5"]
    tracker = _tracked(lines)
    error = build_error("podman", RunOutcome(-9, tuple(lines), 1), tracker)
    assert str(error).splitlines()[:2] == [
        "podman: the engine process was killed by signal SIGKILL (exit -9)",
        "  failing step: STEP 7/16: RUN sleep 1234.5",
    ]
    assert error.exit_code == 1
    stopped = build_error("docker", RunOutcome(130, (), 0), StepTracker())
    assert str(stopped) == "docker: the engine was stopped (exit 130)"


def test_a_buildx_builder_whose_daemon_is_down_says_so() -> None:
    down = (
        "Name:          default\nDriver:        \nLast Activity: 2026-12-04 14:46:28 +0000 UTC\n"
        "Error:         Cannot connect to the Docker daemon at unix:///nonexistent.sock. Is the "
        "docker daemon running?\n"
    )
    assert inspect_error(down) == (
        "Cannot connect to the Docker daemon at unix:///nonexistent.sock. Is the docker daemon "
        "running?"
    )
    assert inspect_error("Name: default\nDriver: docker\nStatus: running\n") is None
