"""``python -m pipeline build`` / ``backends``: parsing, dry runs and bad input (exit 2)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.cli.build import ProgressDisplay

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "examples" / "hello")


@pytest.fixture(autouse=True)
def _env(isolated_build_env: Path) -> None:
    """Own store, own temp dir, no backend from the environment (tests/conftest.py)."""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_argv_and_dockerfile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "build", HELLO, "--backend", "podman", "--dry-run", "-t", "hello:cli",
        "--build-arg", "A=1", "--label", "team=ml", "--opt", "squash",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("# plan sha256:")
    assert "backend:   podman (--backend)" in lines
    command = lines[lines.index("# Dockerfile") - 1]
    assert command.startswith("podman build --file <context>/Dockerfile ")
    assert "--tag hello:cli" in command and "--build-arg A=1" in command
    assert "--label team=ml" in command and " --squash " in command
    assert "# Dockerfile" in lines and any(line.startswith("FROM ") for line in lines)


def test_dry_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", HELLO, "--backend", "docker", "--dry-run", "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["backend"] == "docker"
    assert data["commands"][-1].startswith("DOCKER_BUILDKIT=1 docker build")
    assert data["digest"].startswith("sha256:") and data["bento"]["tag"].startswith("hello:")
    assert data["tags"][0].startswith("hello:")
    assert data["dockerfile"].startswith("FROM ")


def test_default_tag_is_bento_name_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "build", HELLO, "--backend", "buildah", "--dry-run", "--json")
    assert code == 0
    tag = json.loads(out)["tags"][0]
    name, version = tag.split(":")
    assert name == "hello" and version == version.lower() and version


def test_unknown_backend_lists_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "build", HELLO, "--backend", "kaniko", "--dry-run")
    assert code == 2 and out == ""
    assert "unknown backend 'kaniko'" in err
    assert "'docker'" in err and "'buildctl'" in err and "'dagger'" in err
    assert "Traceback" not in err


def test_missing_secret_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    code, _, err = run(capsys, "build", HELLO, "--secret", f"id=aws,src={missing}")
    assert code == 2
    assert f"secret 'aws': file '{missing}' does not exist" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--opt", "=value"], "malformed --opt '=value'"),
        (["--build-arg", "NOVALUE"], "malformed --build-arg 'NOVALUE': expected KEY=VALUE"),
        (["--build-arg", "1X=2"], "malformed --build-arg key '1X'"),
        (["--platform", "linux"], "malformed platform"),
        (["--secret", "id=x,src"], "malformed secret"),
        (["-t", "Upper:Case"], "did you mean 'upper:case'"),
        (["--push", "--output", "type=local,dest=x"], "--push and --output exclude each other"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "build", HELLO, "--backend", "docker", "--dry-run", *argv)
    assert code == 2, err
    assert message in err
    assert out == "" and "Traceback" not in err


def test_engine_not_running_says_how_to_start_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if subprocess.run(["which", "docker"], capture_output=True).returncode != 0:
        pytest.skip("docker CLI not installed: health reports it absent instead")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    code, out, err = run(capsys, "build", HELLO, "--backend", "docker")
    assert code == 2, err
    assert "cannot reach the docker daemon" in err
    assert "systemctl start docker" in err and "scripts/testbed up" in err
    assert list(Path(tempfile.gettempdir()).iterdir()) == []  # no temp context left behind


def test_deprecated_spellings_still_work_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys, "build", HELLO, "--backend", "docker", "--dry-run",
        "--platforms", "linux/amd64", "--secrets", "id=x,env=HOME", "--no-buildkit-cache",
    )  # fmt: skip
    assert code == 0, err
    assert "warning: --platforms is deprecated; use --platform" in err
    assert "warning: --secrets is deprecated; use --secret" in err
    assert "warning: --no-buildkit-cache is deprecated; use --no-cache" in err
    assert "--platform linux/amd64" in out
    assert "--secret id=x,env=HOME" in out and "--no-cache" in out


def test_classic_builder_drops_cache_mounts_with_a_warning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    code, out, err = run(capsys, "build", HELLO, "--dry-run", "--backend", "docker")
    assert code == 0, err
    assert any(line.startswith("DOCKER_BUILDKIT=0 docker build") for line in out.splitlines())
    assert "--mount=" not in out


def test_classic_builder_refuses_secret_mount_template(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    code, _, err = run(
        capsys, "build", str(ROOT / "examples" / "secret-mount"), "--dry-run", "--backend", "docker"
    )
    assert code == 2
    assert "BuildKit" in err and "Traceback" not in err


def test_backends_json_lists_every_engine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backends", "--json")
    assert code == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert {"docker", "buildx", "podman", "buildah", "nerdctl", "buildctl", "dagger"} <= set(
        entries
    )
    for name in ("nerdctl", "buildctl"):
        if not entries[name]["available"]:
            assert (
                "not installed" in entries[name]["health"] or "buildkitd" in entries[name]["health"]
            )
    assert entries["docker"]["env"] == {"DOCKER_BUILDKIT": "1"}
    assert entries["buildah"]["env"]["BUILDAH_FORMAT"] == "oci"
    for entry in entries.values():
        if entry["available"] and entry["capabilities"] is not None and not entry["plugin"]:
            assert set(entry["capabilities"]) == {
                "secrets", "cache_mounts", "multi_platform", "push", "platforms",
            }  # fmt: skip


def test_backends_text_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backends", "buildctl")
    assert code == 0 and out.startswith(("-- buildctl", "ok buildctl"))
    code, _, err = run(capsys, "backends", "nope")
    assert code == 2 and "unknown backend 'nope'" in err


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0
    for flag in ("--secret", "--ca-cert", "--opt", "--dry-run", "--progress", "--cache-to"):
        assert flag in done.stdout


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "auto",
            ["  [base 1/2] FROM python:3.11-slim", "  [base 2/2] RUN make", "  STEP 3/3: USER x"],
        ),
        ("plain", None),
        ("tty", None),
        ("quiet", []),
    ],
)
def test_progress_display_modes(mode: str, expected: list[str] | None) -> None:
    """auto: each step once (BuildKit '#N [stage i/n]' and buildah 'STEP i/n:' headers);
    plain/tty: every line; quiet: nothing."""
    lines = [
        "#5 [base 1/2] FROM python:3.11-slim",
        "#5 DONE 0.1s",
        "#6 [base 2/2] RUN make",
        "#6 0.2 compiling...",
        "#6 [base 2/2] RUN make",
        "STEP 3/3: USER x",
    ]
    stream = io.StringIO()
    display = ProgressDisplay(mode, stream)
    for line in lines:
        display(line)
    assert stream.getvalue().splitlines() == (lines if expected is None else expected)


@pytest.mark.parametrize("backend", ["podman", "buildah"])
def test_dry_run_with_an_env_secret_on_a_file_only_engine(
    backend: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """podman/buildah take secrets as files only: the dry run shows the private file the build
    writes the variable to (not the value, and not an error)."""
    monkeypatch.setenv("PIPELINE_DRY_SECRET", "dry-run-secret-value")
    secret_mount = str(ROOT / "examples" / "secret-mount")
    code, out, err = run(
        capsys, "build", secret_mount, "--backend", backend, "--dry-run",
        "--secret", "id=aws,env=PIPELINE_DRY_SECRET",
    )  # fmt: skip
    assert code == 0, err
    command = next(line for line in out.splitlines() if f"{backend} build" in line)
    assert "--secret id=aws,src=" in command and "secret-aws" in command
    assert "dry-run-secret-value" not in out + err


def test_buildstage_is_the_default_and_no_buildstage_is_one_stage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "build", HELLO, "--backend", "docker", "--dry-run", "-o", "json")
    assert code == 0, err
    dockerfile = json.loads(out)["dockerfile"]
    assert dockerfile.index(" AS base-container") < dockerfile.index(
        "FROM base-container AS buildstage"
    )
    assert "FROM base-container AS runtime" in dockerfile
    code, out, err = run(
        capsys, "build", HELLO, "--backend", "docker", "--dry-run", "-o", "json", "--no-buildstage"
    )
    assert code == 0, err
    assert " AS buildstage" not in json.loads(out)["dockerfile"]
