"""`python -m pipeline export`, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.clirun import cli


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_export_writes_a_context(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    done = cli("export", "examples/hello", "-o", str(out), home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert f"docker build {out}" in done.stderr
    assert {"Dockerfile", "bento.yaml", "env/docker/entrypoint.sh", "src/service.py"} <= set(
        files(out)
    )
    dockerfile = cli("dockerfile", "examples/hello", home=home).stdout
    assert (out / "Dockerfile").read_text(encoding="utf-8") == dockerfile


def test_export_refuses_a_non_empty_directory(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    (out / "mine.txt").write_text("keep", encoding="utf-8")
    done = cli("export", "examples/hello", "-o", str(out), home=home)
    assert done.returncode == 2
    assert "not empty" in done.stderr and "Traceback" not in done.stderr
    assert files(out) == ["mine.txt"]
    # Refused before the project is built: nothing in the store either.
    assert not home.exists()


def test_failed_render_writes_nothing(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    bad = tmp_path / "bad.j2"
    bad.write_text("{% extends bento_base_template %}\n{% block X %}\n", encoding="utf-8")
    done = cli("export", "examples/hello", "-o", str(out), "--template", str(bad), home=home)
    assert done.returncode == 2
    assert f"{bad}:" in done.stderr and "Traceback" not in done.stderr
    # Not even the store: the project's bento is rendered before it is stored.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.j2"]


def test_output_is_required(home: Path) -> None:
    done = cli("export", "examples/hello", home=home)
    assert done.returncode == 2 and "-o/--output" in done.stderr


def test_ca_cert_context_holds_no_certificate(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    done = cli("export", "examples/hello", "-o", str(out), "--ca-cert", home=home)
    assert done.returncode == 0, done.stderr
    assert "--secret id=ca_cert,src=" in done.stderr
    for rel in files(out):
        assert b"BEGIN CERTIFICATE" not in (out / rel).read_bytes(), rel


def test_ca_cert_file_means_what_it_means_in_build(home: Path, tmp_path: Path) -> None:
    """--ca-cert FILE: checked as build checks it, the bundle command printed, not exported."""
    cert = tmp_path / "corp.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    out = tmp_path / "ctx"
    done = cli("export", "examples/setup-script", "-o", str(out), "--ca-cert", str(cert), home=home)
    assert done.returncode == 0, done.stderr
    assert f"{cert} > ca-bundle.pem" in done.stderr
    assert "--secret id=ca_cert,src=ca-bundle.pem" in done.stderr
    assert "--mount=type=secret,id=ca_cert" in (out / "Dockerfile").read_text()
    for rel in files(out):
        assert b"BEGIN CERTIFICATE" not in (out / rel).read_bytes(), rel
    bad = cli("dockerfile", "examples/hello", "--ca-cert", str(tmp_path / "nope.pem"), home=home)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_exported_context_builds_with_docker_as_is(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "ctx"
    assert cli("export", "examples/setup-script", "-o", str(out), home=home).returncode == 0
    tag = f"bento-pipeline-test/export-{os.getpid()}:1"
    try:
        built = subprocess.run(
            ["docker", "build", "-q", "-t", tag, str(out)],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "DOCKER_BUILDKIT": "1"},
        )
        assert built.returncode == 0, built.stderr[-3000:]
        ran = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                tag,
                "sh",
                "-c",
                "cat /etc/bento-setup-script.done; python -c 'import sys; print(sys.prefix)'",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.stdout.splitlines() == ["uid=0 os=debian", "/app/.venv"], ran.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
