"""Leak scan per engine: a build's secrets (a file and an environment variable) reach the build
(the image holds their hashes) and appear in no process argv during the build (every
/proc/*/cmdline, polled), no output line, no JSON result, no plan, no layer, image config,
history or label, and no file left in $TMPDIR."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.engines.enginekit import (
    DOCKER_CLIS,
    RUNNER,
    SECRET_MOUNT,
    history,
    labels,
    run_in_image,
    saved_image_contains,
    sh,
    unique_tag,
    use_cli,
)

ROOT = Path(__file__).resolve().parents[2]
ENGINES = [
    *(pytest.param(name, marks=getattr(pytest.mark, name)) for name in RUNNER),
    *DOCKER_CLIS,
]


class ArgvWatch:
    """Polls every process's command line until stopped; keeps those holding a needle."""

    def __init__(self, needles: list[bytes]) -> None:
        self.needles = needles
        self.hits: list[str] = []
        self.seen = 0  # command lines read: the watch did run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        argv = handle.read()
                except OSError:
                    continue
                self.seen += 1
                if any(needle in argv for needle in self.needles):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(0.05)


def test_the_argv_watch_sees_a_secret_on_a_command_line() -> None:
    needle = f"watch-me-{secrets.token_hex(8)}"
    with ArgvWatch([needle.encode()]) as watch:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)", needle], check=True)
    assert watch.hits and needle in watch.hits[0]


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """secret-mount, whose file secret ``aws`` leaves its hash in the image, plus a step that
    does the same for the env secret ``token`` and a slow step: the build runs long enough to
    be watched."""
    copy = tmp_path / "leaky"
    shutil.copytree(SECRET_MOUNT, copy)
    template = copy / "Dockerfile.template"
    text = template.read_text()
    steps = (
        "RUN --mount=type=secret,id=token sha256sum /run/secrets/token"
        " | cut -d ' ' -f 1 > /home/bentoml/bento/token.sha256\n"
        "RUN sleep 2\n\n"
    )
    template.write_text(text.replace("{% endblock %}", steps + "{% endblock %}"))
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_no_secret_reaches_argv_output_json_plan_or_image(
    engine: str,
    project: Path,
    tags: list[tuple[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = use_cli(engine, monkeypatch)
    runner, tag = RUNNER[engine], unique_tag(engine, "leak")
    tags.append((runner, tag))
    file_value = f"leak-file-{secrets.token_hex(16)}"
    env_value = f"leak-env-{secrets.token_hex(16)}"
    secret_file = tmp_path / "aws-credentials"
    secret_file.write_text(file_value)
    private_tmp = tmp_path / "clitmp"
    private_tmp.mkdir()
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "store"),
        "TMPDIR": str(private_tmp),
        "LEAK_TOKEN": env_value,
    }
    options = [
        "--backend", engine, "-t", tag, "--no-cache",
        "--secret", f"id=aws,src={secret_file}", "--secret", "id=token,env=LEAK_TOKEN",
    ]  # fmt: skip
    needles = [file_value.encode(), env_value.encode()]

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=600,
        )  # fmt: skip

    plan = cli("plan", str(project), *options, "-o", "json")
    assert plan.returncode == 0, plan.stderr
    with ArgvWatch(needles) as watch:
        done = cli("build", str(project), *options, "--progress", "plain", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert watch.seen > 100, "the argv watch did not run"
    assert watch.hits == []
    # the secret was really used: the image holds its hash
    result = json.loads(done.stdout)
    assert result["tags"] == [tag]
    for name, value in (("secret", file_value), ("token", env_value)):
        digest = run_in_image(runner, tag, "cat", f"/home/bentoml/bento/{name}.sha256").strip()
        assert digest == hashlib.sha256(value.encode()).hexdigest(), name
    for value in (file_value, env_value):
        for where, text in {
            "stdout": done.stdout,
            "stderr": done.stderr,
            "plan": plan.stdout + plan.stderr,
            "history": history(runner, tag),
            "labels": json.dumps(labels(runner, tag)),
            "config": sh(runner, "image", "inspect", tag).stdout,
        }.items():
            assert value not in text, where
        assert saved_image_contains(runner, tag, value.encode(), tmp_path) == []
    # no private file (env secrets written for podman/buildah, the context) is left behind
    left = [p.name for p in private_tmp.iterdir() if not p.name.startswith("buildah-cache")]
    assert left == []
