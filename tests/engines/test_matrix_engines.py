"""Matrix builds on real engines: one image per architecture (run under qemu for arm64), and a
failing cell that does not stop the others. The test bed mirrors python:3.11-slim for
linux/amd64 and linux/arm64 at 127.0.0.1:5000."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

import pipeline
from tests.engines.enginekit import (
    HELLO,
    ROOT,
    image_exists,
    interrupt,
    pipeline_cli,
    project_with_step,
    remove_image,
    run_in_image,
    sh,
    sleeping,
)


def _template(engine: str, what: str) -> str:
    return f"localhost/pipeline-test-matrix-{what}-{engine}:{uuid.uuid4().hex[:8]}-{{arch}}"


@pytest.mark.arm64
@pytest.mark.parametrize(
    "engine", [pytest.param(e, marks=getattr(pytest.mark, e)) for e in ("podman", "buildah")]
)
def test_one_image_per_architecture(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    result = pipeline.matrix(
        HELLO,
        backend=engine,
        platforms=["linux/amd64", "linux/arm64"],
        python_versions="3.11",
        distros="debian",
        tag_template=_template(engine, "arch"),
    )
    tags = [row.tag for row in result.rows]
    try:
        assert [(row.cell.arch, row.status) for row in result.rows] == [
            ("amd64", "ok"),
            ("arm64", "ok"),
        ], [row.error for row in result.rows]
        machines = [
            run_in_image(
                "podman", str(tag), "python", "-c", "import platform; print(platform.machine())"
            ).strip()
            for tag in tags
        ]
        assert machines == ["x86_64", "aarch64"]
        for tag, arch in zip(tags, ("amd64", "arm64"), strict=True):
            inspected = sh("podman", "image", "inspect", "--format", "{{.Architecture}}", str(tag))
            assert inspected.stdout.strip() == arch
            assert run_in_image("podman", str(tag), "python", "--version").startswith("Python 3.11")
    finally:
        for tag in tags:
            if tag:
                remove_image("podman", tag)


@pytest.mark.arm64
@pytest.mark.podman
def test_a_failing_cell_is_reported_and_the_others_still_build(tmp_path: Path) -> None:
    # the step fails only under arm64: the amd64 cell must still build
    project = project_with_step(tmp_path, 'RUN test "$(uname -m)" = x86_64', name="amd64only")
    template = _template("podman", "fail")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    proc = pipeline_cli(
        "matrix", str(project), "--backend", "podman", "--platform", "amd64,arm64",
        "--python", "3.11", "-t", template, "--output", "json", env=env,
    )  # fmt: skip
    data = json.loads(proc.stdout)
    rows = {row["platform"]: row for row in data["cells"]}
    try:
        assert proc.returncode == 1, proc.stderr
        assert data["ok"] is False
        assert rows["linux/amd64"]["status"] == "ok"
        assert rows["linux/arm64"]["status"] == "failed"
        assert 'test "$(uname -m)" = x86_64' in rows["linux/arm64"]["error"]
        assert "produced by:" in rows["linux/arm64"]["error"]  # the api's step origin
        assert image_exists("podman", rows["linux/amd64"]["tag"])
        assert not image_exists("podman", rows["linux/arm64"]["tag"])
        assert "x86_64" in run_in_image("podman", rows["linux/amd64"]["tag"], "uname", "-m")
    finally:
        for row in rows.values():
            remove_image("podman", row["tag"])


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.podman
def test_ctrl_c_stops_every_running_cell(tmp_path: Path) -> None:
    marker = f"{1000 + secrets.randbelow(8000)}.5"
    project = project_with_step(tmp_path, f"RUN sleep {marker}", name="slowcells")
    private_tmp = tmp_path / "clitmp"
    private_tmp.mkdir()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store"), "TMPDIR": str(private_tmp)}
    template = _template("podman", "ctrlc")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "matrix", str(project), "--backend", "podman",
         "--platform", "amd64,arm64", "--python", "3.11", "-t", template,
         "--concurrency", "2", "--progress", "plain"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or ()), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    try:
        while not (sleeping(marker) and _both_cells_at(f"RUN sleep {marker}", output)):
            assert proc.poll() is None, "matrix ended early:\n" + "".join(output[-20:])
            assert time.monotonic() < deadline, "a slow step never started:\n" + "".join(
                output[-30:]
            )
            time.sleep(0.5)
    except AssertionError:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        raise
    interrupt(
        proc, reader, output, marker, still_running="a cell's build step kept running after Ctrl-C"
    )
    # nothing temporary is left (buildah's kept cache-mount directory is a cache)
    assert [p.name for p in private_tmp.iterdir() if not p.name.startswith("buildah-cache")] == []
    assert "ok in" not in "".join(output)
    for arch in ("amd64", "arm64"):
        assert not image_exists("podman", template.replace("{arch}", arch))


def _both_cells_at(step: str, output: list[str]) -> bool:
    lines = list(output)
    return all(
        any(line.startswith(f"[py3.11-debian-{arch}]") and step in line for line in lines)
        for arch in ("amd64", "arm64")
    )


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.registry
@pytest.mark.podman
def test_push_sends_each_cell_to_the_registry(tmp_path: Path, registry_url: str) -> None:
    name, version = "pipeline-test-matrix-push", uuid.uuid4().hex[:8]
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    proc = pipeline_cli(
        "matrix", str(HELLO), "--backend", "podman", "--platform", "amd64,arm64",
        "--python", "3.11", "--push", "-t", f"{registry_url}/{name}:{version}-{{arch}}",
        "--output", "json", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = json.loads(proc.stdout)["cells"]
    try:
        for cell, arch in zip(cells, ("amd64", "arm64"), strict=True):
            assert cell["status"] == "ok"
            manifest = _registry_json(
                f"http://{registry_url}/v2/{name}/manifests/{version}-{arch}",
                "application/vnd.oci.image.manifest.v1+json, "
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            config = _registry_json(
                f"http://{registry_url}/v2/{name}/blobs/{manifest['config']['digest']}", "*/*"
            )
            assert config["architecture"] == arch
    finally:
        for cell in cells:
            remove_image("podman", cell["tag"])


def _registry_json(url: str, accept: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data
