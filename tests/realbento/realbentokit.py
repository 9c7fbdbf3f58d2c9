"""Real BentoML next to us: its venvs, its `bentoml build` / `containerize`, and our builds of
the same projects and bentos, all as subprocesses (the product never imports BentoML).

Used by tests/realbento/test_realbento.py; the fixture projects are in tests/fixtures/bentoml.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "bentoml"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# scripts/lib/bentoml-venvs.sh installs these (scripts/test runs it)
VENVS_DIR = Path(os.environ.get("PIPELINE_BENTOML_VENVS", str(ROOT)))
VENVS = {"1.4": VENVS_DIR / ".venv-bentoml-1.4", "1.2": VENVS_DIR / ".venv-bentoml-1.2"}
VERSIONS = {"1.4": "1.4.40", "1.2": "1.2.20"}
RUNNER = {"docker": "docker", "podman": "podman"}
REQUEST = {"text": "hello_world", "data": {"nested": [1, "two", None], "ok": True}}
API = "/transform"


@dataclass(frozen=True)
class Project:
    """A fixture project and the BentoML line that builds it."""

    name: str
    line: str = "1.4"
    # the bento.yaml spec BentoML writes: 1.4 falls back to spec 1 ("bento v1") for options
    # `image:` cannot express (docker.dockerfile_template, cuda_version, conda, python.wheels)
    spec: int = 2

    @property
    def path(self) -> Path:
        return FIXTURES / self.name

    @property
    def bento_name(self) -> str:
        return "realbento-" + self.name.replace(".", "-")


PROJECTS = {
    p.name: p
    for p in (
        Project("packages"),
        Project("requirements-txt"),
        Project("lock-off"),
        Project("system-packages"),
        Project("setup-script"),
        Project("envs"),
        Project("dockerfile-template", spec=1),
        Project("base-image"),
        Project("bentoml-1.2", line="1.2", spec=1),
    )
}


@dataclass(frozen=True)
class Case:
    """One image we build: a project, from its directory or from BentoML's stored bento, on one
    engine."""

    project: str
    source: str  # "project" | "store"
    engine: str  # "docker" | "podman"

    @property
    def id(self) -> str:
        return f"{self.project}-{self.source}-{self.engine}"


@dataclass
class Outcome:
    """An image build: its tag when it worked, else what failed."""

    tag: str | None
    error: str = ""
    seconds: float = 0.0


def missing_venv(line: str) -> str | None:
    bentoml = VENVS[line] / "bin" / "bentoml"
    if bentoml.is_file():
        return None
    return f"no {bentoml}: scripts/test installs it (scripts/lib/bentoml-venvs.sh)"


def unique_tag(what: str) -> str:
    return f"localhost/realbento-{what}:{uuid.uuid4().hex[:8]}"


def run(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


def tail(proc: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    text = (proc.stdout or "") + (proc.stderr or "")
    return f"exit {proc.returncode}:\n" + "\n".join(text.splitlines()[-lines:])


def bentoml_env(home: Path, line: str) -> dict[str, str]:
    """BentoML's own CLI: its venv first on PATH, its store in ``home``, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "PIPELINE_B"))}
    env.update(
        BENTOML_HOME=str(home),
        PATH=f"{VENVS[line] / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        BENTOML_DO_NOT_TRACK="True",
        NO_COLOR="1",
    )
    return env


def bentoml_build(project: Project, home: Path) -> str:
    """``bentoml build`` with BentoML's own CLI; returns the stored bento's tag."""
    proc = run(
        [str(VENVS[project.line] / "bin" / "bentoml"), "build", str(project.path), "-o", "tag"],
        env=bentoml_env(home, project.line),
        cwd=project.path,
        timeout=300,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:").strip()
    raise AssertionError(f"bentoml build {project.name} failed, {tail(proc)}")


def bentoml_containerize(project: Project, bento_tag: str, home: Path) -> Outcome:
    """BentoML's own image (``bentoml containerize``, docker backend). Its build reaches PyPI
    because the test bed's python:3.11-slim trusts this machine's CA bundle."""
    tag = unique_tag(f"ref-{project.name}")
    started = time.monotonic()
    proc = run(
        [str(VENVS[project.line] / "bin" / "bentoml"), "containerize", bento_tag, "-t", tag,
         "--backend", "docker"],
        env=bentoml_env(home, project.line),
        # BentoML 1.4 refuses a spec-1 bento's dockerfile_template outside the working directory
        # ("Accessing file outside of current working directory"), and its build copies the
        # bento to a temporary directory first: only a working directory above that one works
        cwd=Path("/"),
        timeout=900,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        return Outcome(None, f"bentoml containerize {bento_tag} {tail(proc)}", seconds)
    return Outcome(tag, seconds=seconds)


def pipeline_build(case: Case, source: str, home: Path) -> Outcome:
    """``python -m pipeline build SOURCE`` (project dir or bento tag) as a user runs it, with the
    machine's CA bundle for PyPI, the bentoml pin of the BentoML line the project is for."""
    project = PROJECTS[case.project]
    tag = unique_tag(case.id)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "PIPELINE_B"))}
    env.update(BENTOML_HOME=str(home), PIPELINE_BENTOML_VERSION=VERSIONS[project.line])
    argv = [sys.executable, "-m", "pipeline", "build", source, "-t", tag, "--backend", case.engine]
    if CA_BUNDLE.is_file():
        argv += ["--ca-cert", str(CA_BUNDLE)]
    started = time.monotonic()
    proc = run(argv, env=env, cwd=ROOT, timeout=900)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        return Outcome(None, f"python -m pipeline build {source} {tail(proc)}", seconds)
    return Outcome(tag, seconds=seconds)


def remove_image(engine: str, tag: str) -> None:
    run([RUNNER[engine], "image", "rm", "-f", tag], timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(engine: str, tag: str) -> Iterator[int]:
    """``<engine> run -d -p 127.0.0.1:PORT:3000 TAG`` with no command override; the port."""
    port = free_port()
    proc = run([RUNNER[engine], "run", "-d", "-p", f"127.0.0.1:{port}:3000", tag], timeout=120)
    assert proc.returncode == 0, f"{engine} run {tag} {tail(proc)}"
    container = proc.stdout.strip()
    try:
        yield port
    except BaseException:
        logs = run([RUNNER[engine], "logs", container], timeout=60)
        print(f"--- {engine} logs {tag}:\n{tail(logs, 60)}", file=sys.stderr)
        raise
    finally:
        run([RUNNER[engine], "rm", "-f", container], timeout=120)


def post(port: int, *, timeout: float = 90) -> dict[str, object]:
    """POST REQUEST to the API until the server answers (it takes a few seconds to start)."""
    body = json.dumps(REQUEST).encode()
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{API}",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
                assert isinstance(answer, dict), answer
                return answer
        except urllib.error.HTTPError as exc:  # the server answered: that is the answer
            raise AssertionError(f"POST {API}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
            time.sleep(0.5)
    raise AssertionError(f"no answer from 127.0.0.1:{port}{API} within {timeout:.0f}s: {last}")


def answer_of(engine: str, tag: str) -> dict[str, object]:
    with serving(engine, tag) as port:
        return post(port)
