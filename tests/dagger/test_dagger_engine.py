"""Against a real Dagger engine (marker ``dagger``: needs a ``dagger`` CLI or a session).

Skipped here when no CLI is on PATH; run them under ``dagger run pytest -m dagger`` or with the
CLI installed (they also need the engine to pull ``alpine`` from docker.io).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import anyio
import pytest

from pipeline.dagger.executor import DaggerExecutor
from pipeline.errors import BuildError
from pipeline.request import BuildRequest, SecretSpec

pytestmark = pytest.mark.dagger

SECRET_VALUE = "engine-secret-value-5150"


def _context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "ignored.bin").write_bytes(b"\0" * 1024)
    (ctx / ".dockerignore").write_text("ignored.bin\n")
    return ctx


def test_multi_platform_oci_export_with_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_SECRET", SECRET_VALUE)
    ctx = _context(
        tmp_path,
        "FROM alpine:3.20\n"
        "ARG GREETING\n"
        "COPY . /app/\n"
        'RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = '
        f'{SECRET_VALUE} && test ! -e /app/ignored.bin && echo "$GREETING" > /greeting\n',
    )
    dest = tmp_path / "image.tar"
    request = BuildRequest(
        context=ctx,
        platforms=("linux/amd64", "linux/arm64"),
        build_args={"GREETING": "hi"},
        secrets=(SecretSpec(id="tok", env="ENGINE_SECRET"),),
        output=f"type=oci,dest={dest}",
    )
    anyio.run(DaggerExecutor(log_output=None).run, request)

    with tarfile.open(dest) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        blobs = b"".join(
            tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        )
    manifests = index["manifests"]
    if len(manifests) == 1 and "index" in manifests[0]["mediaType"]:
        with tarfile.open(dest) as tar:
            digest = manifests[0]["digest"].replace(":", "/")
            manifests = json.load(tar.extractfile(f"blobs/{digest}"))["manifests"]  # type: ignore[arg-type]
    archs = sorted(m["platform"]["architecture"] for m in manifests)
    assert archs == ["amd64", "arm64"]
    assert SECRET_VALUE.encode() not in blobs


def test_failing_run_step_is_a_build_error(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "FROM alpine:3.20\nRUN echo about to fail && exit 3\n")
    with pytest.raises(BuildError) as info:
        anyio.run(DaggerExecutor(log_output=None).run, BuildRequest(context=ctx))
    assert "exit code 3" in str(info.value)
    assert info.value.step and "exit 3" in info.value.step
    assert any("about to fail" in line for line in info.value.output_tail)
