"""Helpers for real-engine tests: run containers, reach them over HTTP, look inside images."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from pipeline.backends import workingcontainers
from tests.cli.clirun import pipeline_cli as pipeline_cli  # re-exported for the engine tests

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
SECRET_MOUNT = ROOT / "examples" / "secret-mount"
SERVICE_CMD = ("python", "/home/bentoml/bento/src/service.py")

# which CLI runs/inspects the images each engine produces
RUNNER = {"docker": "docker", "buildx": "docker", "podman": "podman", "buildah": "podman"}

# The distribution's docker CLI (Debian 12 docker.io: 20.10), when another one comes first on
# PATH: engine ids "docker@/usr/bin" run with /usr/bin first on PATH (see use_cli).
DISTRO_DOCKER = Path("/usr/bin/docker")


def _docker_clis() -> list[object]:
    first = shutil.which("docker")
    if not DISTRO_DOCKER.is_file() or first is None:
        return []
    if Path(first).resolve() == DISTRO_DOCKER.resolve():
        return []
    engine = f"docker@{DISTRO_DOCKER.parent}"
    return [pytest.param(engine, marks=pytest.mark.docker, id=engine)]


DOCKER_CLIS = _docker_clis()


def use_cli(engine: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``"docker@/usr/bin"`` -> ``"docker"`` with /usr/bin first on PATH; names pass through."""
    name, _, directory = engine.partition("@")
    if directory:
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return name


STORE_FORMAT = "{{.Store.GraphDriverName}}\n{{.Store.GraphRoot}}"


def marked(build_id: str) -> list[str]:
    """The working containers in containers-storage that carry a podman/buildah build's id
    (``pipeline.backends.workingcontainers``): exactly that build's, whatever else runs."""
    store = workingcontainers.parse_store(sh("podman", "info", "--format", STORE_FORMAT).stdout)
    assert store is not None
    return workingcontainers.marked_containers(*store, build_id)


def docker_containers_running(command: str) -> set[str]:
    """The docker containers (any state) whose command holds ``command``: a build step's."""
    out = sh("docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}}\t{{.Command}}").stdout
    return {line.split("\t", 1)[0] for line in out.splitlines() if command in line}


def project_with_step(root: Path, step: str, *, name: str) -> Path:
    """A project (``root/name``) whose Dockerfile template adds ``step`` after the bento's."""
    project = root / name
    project.mkdir()
    (project / "service.py").write_text("svc = None\n")
    (project / "Dockerfile.template").write_text(
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_COMPONENTS %}\n{{ super() }}\n"
        f"{step}\n{{% endblock %}}\n"
    )
    (project / "bentofile.yaml").write_text(
        f'service: "service:svc"\nname: {name}\ninclude: ["*.py"]\n'
        "docker:\n  dockerfile_template: ./Dockerfile.template\n"
    )
    return project


FAILING_STEP = "echo about-to-fail && exit 3"


def failing_project(root: Path) -> Path:
    """A project whose Dockerfile template adds a step that fails (:data:`FAILING_STEP`)."""
    return project_with_step(root, f"RUN {FAILING_STEP}", name="failing")


def unique_tag(engine: str, what: str) -> str:
    # podman/buildah qualify short names with localhost/; docker does not mind the prefix
    return f"localhost/pipeline-test-{what}-{engine}:{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sh(*argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


def sleeping(marker: str) -> bool:
    """Is a build step's `sleep <marker>` running anywhere on this machine?"""
    return sh("pgrep", "-f", f"sleep {marker}", check=False).returncode == 0


def interrupt(
    proc: subprocess.Popen[str],
    reader: threading.Thread,
    output: list[str],
    marker: str,
    *,
    still_running: str,
) -> None:
    """Ctrl-C the CLI ``proc`` (its own session); it must exit 130 and its `sleep <marker>`
    step stop within 60 s (else ``still_running`` is the failure)."""
    os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    reader.join(timeout=10)
    assert proc.returncode == 130, "".join(output[-20:])
    deadline = time.monotonic() + 60
    while sleeping(marker):
        assert time.monotonic() < deadline, still_running
        time.sleep(0.5)


def image_exists(runner: str, tag: str) -> bool:
    return sh(runner, "image", "inspect", tag, check=False).returncode == 0


def remove_image(runner: str, tag: str) -> None:
    sh(runner, "image", "rm", "-f", tag, check=False)


def http_get(url: str, timeout: float = 60) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return response.status, response.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
            time.sleep(0.5)
    raise AssertionError(f"no HTTP answer from {url} within {timeout:.0f}s: {last}")


def serve_and_get(runner: str, tag: str) -> tuple[int, str]:
    """Run the image's service on 127.0.0.1:<free port> and GET / from it."""
    port = free_port()
    started = sh(runner, "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:3000", tag, *SERVICE_CMD)
    container = started.stdout.strip()
    try:
        return http_get(f"http://127.0.0.1:{port}/")
    finally:
        sh(runner, "rm", "-f", container, check=False)


def run_in_image(runner: str, tag: str, *command: str) -> str:
    return sh(runner, "run", "--rm", "--entrypoint", command[0], tag, *command[1:]).stdout


def saved_image_contains(runner: str, tag: str, needle: bytes, workdir: Path) -> list[str]:
    """Members of ``<runner> save`` (layers decompressed, nested tars opened) holding needle."""
    archive = workdir / "image.tar"
    sh(runner, "save", "-o", str(archive), tag)
    hits: list[str] = []

    def scan(name: str, data: bytes) -> None:
        if data[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError):
                data = gzip.decompress(data)
        if needle in data:
            hits.append(name)
        if len(data) > 512 and data[257:262] == b"ustar":
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                for member in inner.getmembers():
                    if member.isfile():
                        handle = inner.extractfile(member)
                        if handle is not None:
                            scan(f"{name}!{member.name}", handle.read())

    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if member.isfile():
                handle = outer.extractfile(member)
                if handle is not None:
                    scan(member.name, handle.read())
    archive.unlink()
    return hits


def history(runner: str, tag: str) -> str:
    return sh(runner, "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag).stdout


def labels(runner: str, tag: str) -> dict[str, str]:
    out = sh(runner, "image", "inspect", "--format", "{{json .Config.Labels}}", tag).stdout
    return json.loads(out.strip() or "null") or {}
