"""``python -m pipeline bento ...`` through :func:`pipeline.cli.main`: output and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "bentoml-home"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home


def store_files(home: Path) -> list[Path]:
    return sorted(home.rglob("*")) if home.exists() else []


def make_project(root: Path, bentofile: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bentofile.yaml").write_text(textwrap.dedent(bentofile), encoding="utf-8")
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_build_prints_only_the_tag_on_stdout(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    shutil.copytree(FIXTURES / "project_summarize", project)
    assert main(["bento", "build", str(project), "--version", "v1"]) == 0
    out, err = capsys.readouterr()
    assert out == "summarize:v1\n"
    assert "built summarize:v1" in err
    assert (store / "bentos" / "summarize" / "v1" / "bento.yaml").is_file()


def test_build_generates_a_version(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "p", "service: app:Api\n", {"app.py": "Api = object()\n"})
    assert main(["bento", "build", str(project)]) == 0
    tag = capsys.readouterr().out.strip()
    name, version = tag.split(":")
    assert name == "api" and len(version) == 16
    assert (store / "bentos" / "api" / version).is_dir()


def test_list_table_and_json(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "p", "service: app:Api\n", {"app.py": "Api = object()\n"})
    main(["bento", "build", str(project), "--version", "one"])
    main(["bento", "build", str(project), "--version", "two"])
    capsys.readouterr()

    assert main(["bento", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TAG", "CREATED", "SERVICE"]
    assert [line.split()[0] for line in lines[1:]] == ["api:two", "api:one"]

    assert main(["bento", "list", "--output", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["tag"] for r in rows] == ["api:two", "api:one"]
    assert rows[0]["path"] == str(store / "bentos" / "api" / "two")
    assert rows[0]["service"] == "app:Api"


def test_list_empty_store(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bento", "list", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["bento", "list"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no bentos in" in err


def test_get_path_yaml_json(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        tmp_path / "p",
        "service: app:Api\ndocker:\n  distro: alpine\n  python_version: '3.12'\n",
        {"app.py": "Api = object()\n"},
    )
    main(["bento", "build", str(project), "--version", "v1"])
    capsys.readouterr()

    assert main(["bento", "get", "api", "-o", "path"]) == 0
    assert capsys.readouterr().out == f"{store / 'bentos' / 'api' / 'v1'}\n"

    assert main(["bento", "get", "api:v1", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tag"] == "api:v1"
    assert data["docker"]["distro"] == "alpine"
    assert data["docker"]["python_version"] == "3.12"

    assert main(["bento", "get", "api:latest"]) == 0  # yaml by default
    assert yaml.safe_load(capsys.readouterr().out) == data


def test_get_a_bento_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bento", "get", str(FIXTURES / "bento_v1_4"), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spec"] == 2
    assert data["docker"]["base_image"] == "python:3.11-slim"


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bento", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for word in ("build", "list", "get", "delete", "prune", "BENTOML_HOME", "name:version"):
        assert word in out


# --- bad input: exit code 2, one message naming file and field, no traceback, nothing written


def _no_files(root: Path) -> None:
    return None


def _script_not_executable(root: Path) -> None:
    (root / "setup.sh").write_text("#!/bin/sh\n")
    (root / "setup.sh").chmod(0o644)


def _template_txt(root: Path) -> None:
    (root / "Dockerfile.txt").write_text("{% extends bento_base_template %}\n")


def _symlink_out(root: Path) -> None:
    (root / "leak").symlink_to("/etc/hostname")


BAD_BENTOFILES: list[tuple[str, str, Callable[[Path], None], str, str]] = [
    ("malformed-yaml", "service: s\ndocker:\n  distro: [debian\n", _no_files, "", "malformed YAML"),
    (
        "unknown-key",
        "service: s\ndocker:\n  distroo: debian\n",
        _no_files,
        "docker.distroo",
        "did you mean 'distro'?",
    ),
    (
        "wrong-type",
        "service: s\ndocker:\n  env:\n    FOO: [1]\n",
        _no_files,
        "docker.env.FOO",
        "expected a string, got a list",
    ),
    (
        "unknown-distro",
        "service: s\ndocker:\n  distro: ubuntu\n",
        _no_files,
        "docker.distro",
        "'debian', 'alpine', 'ubi8', 'amazonlinux' or 'miniconda'",
    ),
    (
        "python-unsupported",
        "service: s\ndocker:\n  distro: ubi8\n  python_version: '3.10'\n",
        _no_files,
        "docker.python_version",
        "supported on ubi8: '3.9', '3.11' or '3.12'",
    ),
    (
        "cuda-no-images",
        "service: s\ndocker:\n  distro: amazonlinux\n  python_version: '3.8'\n"
        "  cuda_version: '12'\n",
        _no_files,
        "docker.cuda_version",
        "distros with CUDA: 'debian' or 'ubi8'",
    ),
    (
        "cuda-unsupported",
        "service: s\ndocker:\n  cuda_version: '9.0'\n",
        _no_files,
        "docker.cuda_version",
        "CUDA 9.0 is not supported on debian",
    ),
    (
        "template-missing",
        "service: s\ndocker:\n  dockerfile_template: missing.j2\n",
        _no_files,
        "docker.dockerfile_template",
        "does not exist",
    ),
    (
        "template-extension",
        "service: s\ndocker:\n  dockerfile_template: Dockerfile.txt\n",
        _template_txt,
        "docker.dockerfile_template",
        "must end in '.j2', '.template' or '.jinja'",
    ),
    (
        "setup-missing",
        "service: s\ndocker:\n  setup_script: setup.sh\n",
        _no_files,
        "docker.setup_script",
        "does not exist",
    ),
    (
        "setup-not-executable",
        "service: s\ndocker:\n  setup_script: setup.sh\n",
        _script_not_executable,
        "docker.setup_script",
        "is not executable",
    ),
    (
        "include-escapes",
        "service: s\ninclude: ['../other/*.py']\n",
        _no_files,
        "include[0]",
        "points outside the project directory",
    ),
    ("symlink-escapes", "service: s\n", _symlink_out, "include", "points outside the project"),
    # as BentoML, no service: means the one in service.py; this project has none
    ("missing-service", "name: x\n", _no_files, "service", "has no service.py"),
]


@pytest.mark.parametrize(
    ("bentofile", "setup", "field", "message"),
    [case[1:] for case in BAD_BENTOFILES],
    ids=[case[0] for case in BAD_BENTOFILES],
)
def test_bad_bentofile_exits_2_with_file_and_field(
    store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bentofile: str,
    setup: Callable[[Path], None],
    field: str,
    message: str,
) -> None:
    project = make_project(tmp_path / "p", bentofile, {"a.py": ""})
    setup(project)
    code = main(["bento", "build", str(project)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {project / 'bentofile.yaml'}")
    if field:
        assert f": {field}: " in err
    assert message in err
    assert "Traceback" not in err
    assert store_files(store) == []


def test_template_syntax_error_exits_2_naming_the_template_line(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        tmp_path / "p",
        "service: s\ndocker:\n  dockerfile_template: Dockerfile.j2\n",
        {
            "s.py": "",
            "Dockerfile.j2": "{% extends bento_base_template %}\n{% block SETUP_BENTO_USER %}\n",
        },
    )
    code = main(["bento", "build", str(project)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith(f"error: {project / 'Dockerfile.j2'}:2: template syntax error: ")
    assert "Traceback" not in err
    assert store_files(store) == []


def test_bad_bento_yaml_in_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bento.yaml").write_text("name: a\nversion: b\ndocker:\n  distro: debain\n")
    assert main(["bento", "get", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'bento.yaml'}:4: docker.distro: unknown distro 'debain'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("summarise", "no bento named 'summarise'"),
        ("summarize:v9", "bento 'summarize' has no version 'v9'"),
        ("Bad Name", "bento name 'bad name' is not valid"),
    ],
)
def test_unknown_tag_exits_2(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tag: str, message: str
) -> None:
    project = tmp_path / "project"
    shutil.copytree(FIXTURES / "project_summarize", project)
    main(["bento", "build", str(project), "--version", "v1"])
    capsys.readouterr()
    before = store_files(store)
    assert main(["bento", "get", tag]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tag: ")
    assert message in err
    assert "Traceback" not in err
    assert store_files(store) == before


def test_unknown_tag_suggests_and_lists(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "p", "service: app:Api\n", {"app.py": "Api = object()\n"})
    main(["bento", "build", str(project), "--version", "v1"])
    capsys.readouterr()
    assert main(["bento", "get", "apu"]) == 2
    err = capsys.readouterr().err
    assert "(did you mean 'api'?)" in err and "known bentos: api" in err
    assert main(["bento", "get", "api:v2"]) == 2
    assert "known versions of api: v1" in capsys.readouterr().err


def test_build_missing_dir_exits_2(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["bento", "build", str(tmp_path / "nope")]) == 2
    assert "no such project directory" in capsys.readouterr().err
    assert store_files(store) == []


def test_debug_shows_traceback(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    project = make_project(tmp_path / "p", "service: s\ndocker:\n  distro: nope\n")
    assert main(["bento", "build", "--debug", str(project)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_base_image_warning_on_stderr(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        tmp_path / "p",
        "service: app:Api\ndocker:\n  base_image: my/base:1\n  distro: alpine\n",
        {"app.py": "Api = object()\n"},
    )
    assert main(["bento", "build", str(project), "--version", "v1"]) == 0
    out, err = capsys.readouterr()
    assert out == "api:v1\n"
    assert "warning: " in err and "distro is ignored" in err


def test_module_entry_point(store: Path, tmp_path: Path) -> None:
    """The real ``python -m pipeline`` process: exit code 2 and no traceback."""
    project = make_project(tmp_path / "p", "service: s\ndokcer: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "bento", "build", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "did you mean 'docker'?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert store_files(store) == []
