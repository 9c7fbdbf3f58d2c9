"""Hostile CLI arguments and environments: exit 2 with a message naming what is wrong, never a
traceback, nothing half-written (issue: hardening)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.clirun import ROOT, pipeline_cli

HELLO = ROOT / "examples" / "hello"


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}


def _assert_clean(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr


def _project(tmp_path: Path, bentofile: str) -> Path:
    project = tmp_path / "project"
    shutil.copytree(HELLO, project)
    (project / "bentofile.yaml").write_text(bentofile)
    return project


def test_a_home_that_cannot_be_expanded_is_named(env: dict[str, str]) -> None:
    _assert_clean(pipeline_cli("dockerfile", "~nosuchuser/x", env=env), "'~nosuchuser'", "bento")
    home = {**env, "BENTOML_HOME": "~nosuchuser/store"}
    _assert_clean(pipeline_cli("bento", "list", env=home), "BENTOML_HOME", "'~nosuchuser'")
    secret = pipeline_cli(
        "build", str(HELLO), "--dry-run", "--secret", "id=x,src=~nosuchuser/f", env=env
    )
    _assert_clean(secret, "--secret", "'~nosuchuser'")


def test_a_tag_too_long_for_a_file_name_is_a_tag_error(env: dict[str, str]) -> None:
    done = pipeline_cli("dockerfile", "hello:" + "a" * 300, env=env)
    _assert_clean(done, "bento version", "at most 63 characters")


def test_a_binary_template_is_named(tmp_path: Path, env: dict[str, str]) -> None:
    template = tmp_path / "bin.j2"
    template.write_bytes(b"\xff\xfe\x00{% extends bento_base_template %}")
    done = pipeline_cli("dockerfile", str(HELLO), "--template", str(template), env=env)
    _assert_clean(done, str(template), "not UTF-8")


@pytest.mark.parametrize("where", ["under-a-file", "dangling-symlink", "unwritable", "file"])
def test_export_refuses_a_place_it_cannot_write_before_building(
    where: str, tmp_path: Path, env: dict[str, str]
) -> None:
    (tmp_path / "a-file").write_text("")
    targets = {
        "under-a-file": tmp_path / "a-file" / "ctx",
        "dangling-symlink": tmp_path / "link",
        "unwritable": Path("/proc/ctx"),
        "file": tmp_path / "a-file",
    }
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    done = pipeline_cli("export", str(HELLO), "-o", str(targets[where]), env=env)
    _assert_clean(done, str(targets[where]))
    assert not (tmp_path / "store").exists(), "no bento stored for an export that cannot happen"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "link"]


def test_a_pattern_git_refuses_names_the_field(tmp_path: Path, env: dict[str, str]) -> None:
    project = _project(tmp_path, 'service: service:svc\ninclude:\n  - "*.py"\n  - "abc\\\\"\n')
    _assert_clean(
        pipeline_cli("dockerfile", str(project), env=env),
        "bentofile.yaml",
        "include[1]",
        "not a valid gitignore pattern",
    )


def test_a_bad_dotenv_line_is_named_without_its_value(tmp_path: Path, env: dict[str, str]) -> None:
    project = _project(tmp_path, "service: service:svc\ndocker:\n  env: .env\n")
    secret = "s3cr3t-value-never-shown"
    (project / ".env").write_text(f"GOOD=1\nBAD KEY={secret}\n{secret}\n")
    done = pipeline_cli("dockerfile", str(project), env=env)
    _assert_clean(done, ".env:2", "the key is 'BAD KEY'")
    assert secret not in done.stderr and secret not in done.stdout
    (project / ".env").write_text(f"GOOD=1\n{secret}\n")
    done = pipeline_cli("dockerfile", str(project), env=env)
    _assert_clean(done, ".env:2", "no '='")
    assert secret not in done.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path, env: dict[str, str]) -> None:
    built = pipeline_cli("bento", "build", str(HELLO), env=env)
    assert built.returncode == 0, built.stderr
    tag = built.stdout.split()[-1]
    command = [sys.executable, "-m", "pipeline", "bento", "get", tag, "-o", "json"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(1)
        proc.stdout.close()  # `| head -c1`
        errors = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert code in (0, 141)


@pytest.mark.parametrize(
    "expression",
    [
        "cycler.__init__.__globals__.os.popen('id').read()",
        "''.__class__.__mro__[1].__subclasses__()",
        "bento.__class__.__init__.__globals__",
    ],
)
def test_a_template_cannot_reach_python_internals(
    expression: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """Templates render in Jinja's sandbox: a stored bento's template is someone else's code."""
    project = _project(
        tmp_path,
        'service: service:svc\ninclude: ["*.py"]\ndocker:\n  dockerfile_template: t.j2\n',
    )
    marker = tmp_path / "ran"
    (project / "t.j2").write_text(
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_COMPONENTS %}\n{{ super() }}\n"
        f"RUN echo {{{{ {expression} }}}} > {marker}\n{{% endblock %}}\n"
    )
    done = pipeline_cli("dockerfile", str(project), env=env)
    _assert_clean(done, "t.j2", "unsafe")
    assert done.stdout == ""
