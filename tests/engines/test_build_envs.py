"""envs[].stage on real engines: a build-stage env is usable by the install steps (setup_script,
the package index of the venv install) and stored nowhere; all is baked, runtime is not."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import textwrap
from pathlib import Path

import pytest
from enginekit import (
    RUNNER,
    history,
    labels,
    pipeline_cli,
    run_in_image,
    saved_image_contains,
    sh,
    unique_tag,
)

import pipeline

ENGINES = [pytest.param(name, marks=getattr(pytest.mark, name)) for name in ("docker", "podman")]
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(autouse=True)
def _isolated(isolated_build_env: Path) -> Path:
    return isolated_build_env


def staged_project(root: Path, inline: str) -> Path:
    """A project whose setup_script writes the SHA-256 of two build-stage envs (one from the
    environment, one with an inline value) and whose venv install reads its index URL from a
    third (carrying a credential, as private indexes do)."""
    project = root / "staged"
    project.mkdir()
    (project / "service.py").write_text("import six\nsvc = None\n")
    script = project / "setup.sh"
    script.write_text(
        textwrap.dedent(
            """\
            #!/bin/sh
            set -eu
            printf %s "$FROM_ENV" | sha256sum | cut -d' ' -f1 > /home/bentoml/from_env.sha256
            printf %s "$INLINE" | sha256sum | cut -d' ' -f1 > /home/bentoml/inline.sha256
            """
        )
    )
    script.chmod(0o755)
    (project / "bentofile.yaml").write_text(
        textwrap.dedent(
            f"""\
            service: "service:svc"
            name: staged
            include: ["*.py", "setup.sh"]
            envs:
              - {{name: FROM_ENV, stage: build}}
              - {{name: INLINE, value: "{inline}", stage: build}}
              - {{name: UV_INDEX_URL, stage: build}}
              - {{name: BAKED, value: baked-value}}
              - {{name: RT_ONLY, value: runtime-value, stage: runtime}}
            python:
              packages: [six]
              lock_packages: false
            docker:
              setup_script: ./setup.sh
            """
        )
    )
    return project


def image_env(runner: str, tag: str) -> list[str]:
    out = sh(runner, "image", "inspect", "--format", "{{json .Config.Env}}", tag).stdout
    return list(json.loads(out))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_build_stage_envs_are_used_during_the_build_and_stored_nowhere(
    engine: str,
    tags: list[tuple[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    _isolated: Path,
) -> None:
    if not SYSTEM_CA.is_file():
        pytest.skip("no system CA bundle to reach the package index")
    runner, tag = RUNNER[engine], unique_tag(engine, "buildenvs")
    tags.append((runner, tag))
    from_env = f"from-env-{secrets.token_hex(10)}"
    inline = f"inline-{secrets.token_hex(10)}"
    token = f"tok{secrets.token_hex(10)}"
    index = f"https://__token__:{token}@pypi.org/simple"
    monkeypatch.setenv("FROM_ENV", from_env)
    monkeypatch.setenv("UV_INDEX_URL", index)
    project = staged_project(tmp_path, inline)
    lines: list[str] = []
    result = pipeline.build(
        project,
        backend=engine,
        tags=[tag],
        ca_cert=SYSTEM_CA,
        progress="plain",
        no_cache=True,
        on_output=lines.append,
    )
    # used: the setup_script saw both values, the venv install the index (six came from it)
    sha = {v: hashlib.sha256(v.encode()).hexdigest() for v in (from_env, inline)}
    assert (
        run_in_image(runner, tag, "cat", "/home/bentoml/from_env.sha256").strip() == sha[from_env]
    )
    assert run_in_image(runner, tag, "cat", "/home/bentoml/inline.sha256").strip() == sha[inline]
    out = run_in_image(runner, tag, "/app/.venv/bin/python", "-c", "import six; print('ok')")
    assert out.strip() == "ok"
    # stage all is baked, runtime is not; build-stage names are not in the image's env
    env = image_env(runner, tag)
    assert "BAKED=baked-value" in env
    assert not any(
        e.split("=", 1)[0] in ("RT_ONLY", "FROM_ENV", "INLINE", "UV_INDEX_URL") for e in env
    )
    # stored nowhere: no layer file, no history entry, no config, no log line
    inspect = sh(runner, "image", "inspect", tag).stdout
    for value in (from_env, inline, token):
        assert saved_image_contains(runner, tag, value.encode(), tmp_path) == [], value
        assert value not in history(runner, tag)
        assert value not in inspect
        assert all(value not in f"{k}={v}" for k, v in labels(runner, tag).items())
        assert not any(value in line for line in [*lines, *result.log_tail, *result.argv])
    assert list(_isolated.iterdir()) == []


def test_export_writes_no_build_value(tmp_path: Path) -> None:
    inline = f"inline-{secrets.token_hex(10)}"
    project = staged_project(tmp_path, inline)
    out = tmp_path / "ctx"
    result = pipeline_cli("export", str(project), "-o", str(out), env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert inline not in result.stdout + result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert inline.encode() not in path.read_bytes(), path
    dockerfile = (out / "Dockerfile").read_text()
    assert "--mount=type=secret,id=INLINE" in dockerfile
    assert os.path.isfile(out / "bento.yaml")
