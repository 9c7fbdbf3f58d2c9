"""One smoke test per engine the test bed provides: docker, buildx, buildah, podman.

Each builds the same two-stage Dockerfile from an unmodified ``FROM python:3.11-slim`` (served
by the test bed's docker.io mirror), with a BuildKit-style secret mount read in the first stage
and a ``pip download`` that needs PyPI through the image's CA store. Then it runs the image,
checks the secret's sha256 made it into the image, and that the plaintext is in no layer of the
exported image, nor in its history or config. Builds use ``--no-cache``: BuildKit does not key
its cache on secret contents, so a cached RUN would show an older secret's hash.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCKERFILE = """\
FROM python:3.11-slim AS build
RUN --mount=type=secret,id=token \\
    sha256sum /run/secrets/token | cut -d' ' -f1 > /secret.sha256 \\
 && pip download --no-deps --dest /wheels six \\
 && ls /wheels > /wheels.txt

FROM python:3.11-slim
COPY --from=build /secret.sha256 /wheels.txt /
CMD ["cat", "/secret.sha256", "/wheels.txt"]
"""


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        pytest.fail(f"`{' '.join(argv)}` exited {proc.returncode}:\n{tail}", pytrace=False)
    return proc


def build_argv(engine: Engine, context: Path, tag: str, secret: Path) -> list[str]:
    return [
        *engine.build_command,
        "--no-cache",
        "--secret",
        f"id=token,src={secret}",
        "-t",
        tag,
        str(context),
    ]


@dataclass(frozen=True)
class Engine:
    name: str
    build_command: tuple[str, ...]  # followed by the common build options
    run: Callable[[str], str]  # tag -> output of the image's CMD
    export: Callable[[str, Path], None]  # tag, archive path
    metadata: Callable[[str], str]  # tag -> history + config text
    remove: Callable[[str], list[str]]


def _docker_run(tag: str) -> str:
    return _run(["docker", "run", "--rm", tag]).stdout


def _docker_metadata(tag: str) -> str:
    history = _run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag])
    inspect = _run(["docker", "image", "inspect", tag])
    return history.stdout + inspect.stdout


def _podman_metadata(tag: str) -> str:
    history = _run(["podman", "history", "--no-trunc", "--format", "{{.CreatedBy}}", tag])
    inspect = _run(["podman", "image", "inspect", tag])
    return history.stdout + inspect.stdout


def _buildah_run(tag: str) -> str:
    container = _run(["buildah", "from", "--pull-never", tag]).stdout.strip()
    try:
        return _run(
            ["buildah", "run", container, "--", "cat", "/secret.sha256", "/wheels.txt"]
        ).stdout
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def _buildah_metadata(tag: str) -> str:
    return _run(["buildah", "inspect", "--type", "image", tag]).stdout


ENGINES = {
    "docker": Engine(
        "docker",
        ("docker", "build"),
        _docker_run,
        lambda tag, dest: _run(["docker", "save", "-o", str(dest), tag]) and None,
        _docker_metadata,
        lambda tag: ["docker", "rmi", "-f", tag],
    ),
    "buildx": Engine(
        "buildx",
        ("docker", "buildx", "build", "--load"),
        _docker_run,
        lambda tag, dest: _run(["docker", "save", "-o", str(dest), tag]) and None,
        _docker_metadata,
        lambda tag: ["docker", "rmi", "-f", tag],
    ),
    "buildah": Engine(
        "buildah",
        ("buildah", "build"),
        _buildah_run,
        lambda tag, dest: _run(["buildah", "push", tag, f"oci-archive:{dest}"]) and None,
        _buildah_metadata,
        lambda tag: ["buildah", "rmi", "-f", tag],
    ),
    "podman": Engine(
        "podman",
        ("podman", "build"),
        lambda tag: _run(["podman", "run", "--rm", tag]).stdout,
        lambda tag, dest: _run(
            ["podman", "save", "--format", "oci-archive", "-o", str(dest), tag]
        ) and None,
        _podman_metadata,
        lambda tag: ["podman", "rmi", "-f", tag],
    ),
}  # fmt: skip


def archive_blobs(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every regular file of an image archive, gzip layers decompressed (name, content)."""
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            yield member.name, data


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    value = f"pipeline-smoke-secret-{secrets.token_hex(16)}"
    path = tmp_path / "secret.txt"
    path.write_text(value)
    return path, value


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    [pytest.param(ENGINES[name], marks=getattr(pytest.mark, name), id=name) for name in ENGINES],
)
def test_two_stage_build_with_secret_mount(
    engine: Engine, secret_file: tuple[Path, str], tmp_path: Path
) -> None:
    secret_path, secret_value = secret_file
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    tag = f"localhost/pipeline-smoke-{engine.name}:{uuid.uuid4().hex[:12]}"
    try:
        _run(build_argv(engine, context, tag, secret_path))

        output = engine.run(tag).split()
        expected = hashlib.sha256(secret_value.encode()).hexdigest()
        assert output[0] == expected, "the secret was not readable during the build"
        assert any(
            line.startswith("six-") and line.endswith(".whl") for line in output[1:]
        ), f"pip download inside the build did not fetch a wheel: {output[1:]}"

        archive = tmp_path / "image.tar"
        engine.export(tag, archive)
        blobs = list(archive_blobs(archive))
        assert len(blobs) >= 3, "the export holds no layers"
        # Control: the digest file is found by the same scan, so the scan does read layers.
        assert any(expected.encode() in data for _, data in blobs)
        leaks = [name for name, data in blobs if secret_value.encode() in data]
        assert leaks == [], f"secret plaintext found in {leaks}"
        assert secret_value.encode() not in archive.read_bytes()

        metadata = engine.metadata(tag)
        assert "secret.sha256" in metadata or "sha256sum" in metadata  # history is there
        assert secret_value not in metadata
    finally:
        subprocess.run(engine.remove(tag), capture_output=True, check=False)
