"""The store, resolving refs, and building projects into bentos (real files in tmp_path)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

import pipeline.bentobuild as bentobuild_mod
from pipeline.bento import (
    build_bento,
    get_bento,
    list_bentos,
    resolve_bento,
    store_home,
)
from pipeline.bentobuild import default_bento_name
from pipeline.context import write_context
from pipeline.errors import BentoNotFoundError, ConfigError, PipelineError, PipelineWarning
from pipeline.loader import load_bentofile
from pipeline.projectfiles import select_files
from pipeline.rendering import render_dockerfile
from pipeline.store import parse_tag

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "bentoml-home"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(FIXTURES / "project_summarize", dest, symlinks=True)
    return dest


def make_project(root: Path, bentofile: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bentofile.yaml").write_text(textwrap.dedent(bentofile), encoding="utf-8")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def store_files(home: Path) -> list[str]:
    if not home.exists():
        return []
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))


def src_files(bento_path: Path) -> list[str]:
    src = bento_path / "src"
    return sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())


def put_bento(home: Path, name: str, version: str, created: str | None) -> Path:
    path = home / "bentos" / name / version
    path.mkdir(parents=True)
    lines = [f"name: {name}", f"version: {version}", "service: s:S"]
    if created:
        lines.append(f"creation_time: '{created}'")
    (path / "bento.yaml").write_text("\n".join(lines) + "\n")
    return path


# --- store ------------------------------------------------------------------------------------


def test_store_home_from_env(store: Path) -> None:
    assert store_home() == store


def test_store_home_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store_home() == tmp_path / "bentoml"


@pytest.mark.parametrize(
    ("tag", "parsed"),
    [("svc", ("svc", None)), ("svc:latest", ("svc", None)), ("Svc:V1", ("svc", "v1"))],
)
def test_parse_tag(tag: str, parsed: tuple[str, str | None]) -> None:
    assert parse_tag(tag) == parsed


@pytest.mark.parametrize("tag", ["svc:", "bad name", "-svc", "svc:ver/sion"])
def test_parse_tag_rejects(tag: str) -> None:
    with pytest.raises(ConfigError):
        parse_tag(tag)


def test_default_bento_name_like_bentoml() -> None:
    assert default_bento_name("service:MyService") == "my_service"
    assert default_bento_name("service.py:svc") == "svc"
    assert default_bento_name("pkg.module:IrisClassifier") == "iris_classifier"


# --- building ---------------------------------------------------------------------------------


def test_build_fixture_project(store: Path, project: Path) -> None:
    (project / ".git").mkdir()
    (project / ".git" / "config").write_text("[core]\n")
    (project / "src" / "pkg" / "__pycache__").mkdir()
    (project / "src" / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"\0")

    with pytest.warns(PipelineWarning, match="python.packages is ignored"):
        bento = build_bento(project, version="v1")

    assert bento.tag == "summarize:v1"
    assert bento.path == store / "bentos" / "summarize" / "v1"
    # include: *.py, src/, data/*.csv, templates/; exclude: tests/, *.secret;
    # .bentoignore: notebooks/, *.log; src/.bentoignore: *.tmp; .git and __pycache__ never.
    assert src_files(bento.path) == [
        "data/train.csv",
        "service.py",
        "src/.bentoignore",
        "src/__init__.py",
        "src/pkg/__init__.py",
        "src/pkg/summarize.py",
        "templates/Dockerfile.j2",
    ]
    env = bento.path / "env"
    # requirements.in: the index options, then requirements_txt (python.packages is ignored
    # beside it, as in BentoML); requirements.txt: that, locked by uv (everything pinned)
    assert (env / "python" / "requirements.in").read_text() == (
        "--index-url https://pypi.org/simple\n--trusted-host pypi.org\n"
        "transformers==4.41.1\n# comment kept\n"
    )
    locked = (env / "python" / "requirements.txt").read_text().splitlines()
    assert locked[0] == "--index-url https://pypi.org/simple"
    pins = [line for line in locked[1:] if line.strip()]
    assert "transformers==4.41.1" in pins
    assert {"tokenizers", "huggingface-hub"} <= {p.split("==")[0] for p in pins}
    assert all("==" in p for p in pins), pins
    assert "pydantic" not in {p.split("==")[0] for p in pins}  # not asked for by anything
    assert (env / "python" / "version.txt").read_text() == "3.11\n"
    wheel = env / "python" / "wheels" / "mylib-0.1.0-py3-none-any.whl"
    assert wheel.read_text() == "PK-not-a-real-wheel\n"
    setup = env / "docker" / "setup_script"
    assert setup.read_text().startswith("#!/bin/sh")
    assert os.access(setup, os.X_OK)
    template = env / "docker" / "Dockerfile.template"
    assert "extends bento_base_template" in template.read_text()
    assert (bento.path / "README.md").read_text().startswith("# Summarization")
    assert (store / "bentos" / "summarize" / "latest").read_text() == "v1"

    # the loaded bento points at files inside itself
    assert bento.docker.setup_script == "env/docker/setup_script"
    assert bento.docker.dockerfile_template == "env/docker/Dockerfile.template"
    assert bento.python.wheels == ("env/python/wheels/mylib-0.1.0-py3-none-any.whl",)
    assert bento.python.requirements_txt == "env/python/requirements.txt"
    assert dict(bento.docker.env) == {
        "HF_HOME": "/home/bentoml/hf",
        "LOG_LEVEL": "info",
        "WORKERS": "2",
    }
    assert bento.models == ("summarization-model:latest", "embedder:v2")
    assert dict(bento.labels) == {"owner": "bentoml-team", "project": "gallery"}


def test_built_bento_yaml_is_spec1_shape(store: Path, project: Path) -> None:
    bento = build_bento(project, version="v1")
    data = yaml.safe_load((bento.path / "bento.yaml").read_text())
    assert data["name"] == "summarize" and data["version"] == "v1"
    assert data["service"] == "service:Summarization"
    created = datetime.fromisoformat(data["creation_time"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert "spec" not in data and "image" not in data
    assert set(data["docker"]) == {
        "distro",
        "python_version",
        "cuda_version",
        "env",
        "system_packages",
        "setup_script",
        "base_image",
        "dockerfile_template",
    }
    assert data["docker"]["setup_script"] == "env/docker/setup_script"
    assert data["docker"]["system_packages"] == ["ffmpeg"]
    assert data["envs"] == [{"name": "HF_HOME", "value": "/home/bentoml/hf", "stage": "all"}]


def test_build_defaults_without_options(store: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "service: app:Api\n", {"app.py": "Api = 1\n"})
    bento = build_bento(root)
    assert bento.name == "api"
    assert re.fullmatch(r"[a-z2-7]{16}", bento.version)
    assert bento.docker.distro == "debian"
    assert bento.docker.python_version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert src_files(bento.path) == ["app.py", "bentofile.yaml"]
    assert (bento.path / "env" / "python" / "requirements.txt").read_text() == ""


def test_bentoignore_gitignore_semantics(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        "service: a:A\nexclude: ['bentofile.yaml']\n",
        {
            ".bentoignore": "*.log\n/build/\n!keep.log\ndocs/**/draft*\n",
            "a.py": "A = object()\n",
            "debug.log": "",
            "keep.log": "",
            "build/out.txt": "",
            "lib/build/inner.txt": "",
            "docs/guide/draft1.md": "",
            "docs/guide/final.md": "",
            "nested/.bentoignore": "secret.txt\n",
            "nested/secret.txt": "",
            "nested/public.txt": "",
            "secret.txt": "",
        },
    )
    bento = build_bento(root)
    assert src_files(bento.path) == [
        ".bentoignore",
        "a.py",
        "docs/guide/final.md",
        "keep.log",
        "lib/build/inner.txt",
        "nested/.bentoignore",
        "nested/public.txt",
        "secret.txt",  # only ignored below nested/
    ]


def test_symlink_inside_project_is_followed(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n", "real/data.txt": "payload\n"}
    )
    (root / "link.txt").symlink_to("real/data.txt")
    (root / "linkdir").symlink_to("real", target_is_directory=True)
    bento = build_bento(root)
    assert (bento.path / "src" / "link.txt").read_text() == "payload\n"
    assert not (bento.path / "src" / "link.txt").is_symlink()
    assert (bento.path / "src" / "linkdir" / "data.txt").read_text() == "payload\n"


def test_symlink_outside_project_is_an_error_and_nothing_is_written(
    store: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    (root / "leak.txt").symlink_to(outside)
    with pytest.raises(ConfigError) as info:
        build_bento(root)
    assert "symlink 'leak.txt' points outside the project" in str(info.value)
    assert info.value.file == str(root / "bentofile.yaml")
    assert store_files(store) == []


def test_symlinked_dir_outside_project_is_an_error(store: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("x")
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    (root / "ext").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ConfigError, match="symlink 'ext' points outside"):
        build_bento(root)
    assert store_files(store) == []


def test_excluded_symlink_outside_project_is_fine(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p", "service: a:A\nexclude: ['leak.txt']\n", {"a.py": "A = 1\n"}
    )
    (root / "leak.txt").symlink_to("/etc/hostname")
    bento = build_bento(root)
    assert "leak.txt" not in src_files(bento.path)


def test_include_escaping_root_writes_nothing(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p", "service: a:A\ninclude: ['../secrets/*']\n", {"a.py": "A = 1\n"}
    )
    with pytest.raises(ConfigError) as info:
        build_bento(root)
    assert info.value.field == "include[0]"
    assert store_files(store) == []


def test_existing_version_is_an_error(store: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    first = build_bento(root, version="v1")
    before = store_files(store)
    with pytest.raises(ConfigError, match="already exists"):
        build_bento(root, version="v1")
    assert store_files(store) == before
    assert first.path.is_dir()


def test_bad_version_and_name(store: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    with pytest.raises(ConfigError, match="bento version 'v 1' is not valid"):
        build_bento(root, version="v 1")
    bad = make_project(tmp_path / "q", "service: a:A\nname: 'Not OK!'\n", {"a.py": "A = 1\n"})
    with pytest.raises(ConfigError, match="bento name") as info:
        build_bento(bad)
    assert info.value.field == "name"
    assert store_files(store) == []


def test_failure_mid_build_leaves_nothing(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    real_write = bentobuild_mod.write_bento

    def write_then_fail(spec, dest, *args):  # type: ignore[no-untyped-def]
        real_write(spec, dest, *args)
        assert (dest / "bento.yaml").is_file()
        raise OSError("disk full")

    monkeypatch.setattr(bentobuild_mod, "write_bento", write_then_fail)
    with pytest.raises(PipelineError, match="nothing was written: disk full"):
        build_bento(root)
    assert store_files(store) == []


def test_failure_keeps_other_versions(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    build_bento(root, version="v1")
    before = store_files(store)
    monkeypatch.setattr(
        bentobuild_mod, "write_bento", lambda *a: (_ for _ in ()).throw(OSError("x"))
    )
    with pytest.raises(PipelineError):
        build_bento(root, version="v2")
    assert store_files(store) == before


def test_project_without_bentofile(store: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BentoNotFoundError, match="has no bentofile.yaml"):
        build_bento(tmp_path / "empty")


def test_select_files_matches_build(project: Path) -> None:
    spec = load_bentofile(project / "bentofile.yaml")
    rels = [rel for rel, _ in select_files(spec)]
    assert "token.secret" not in rels and "debug.log" not in rels
    assert "notebooks/notes.md" not in rels and "src/pkg/scratch.tmp" not in rels


# --- resolving --------------------------------------------------------------------------------


def test_resolve_bento_dir_and_file() -> None:
    by_dir = resolve_bento(FIXTURES / "bento_v1_2")
    by_file = resolve_bento(str(FIXTURES / "bento_v1_2" / "bento.yaml"))
    assert by_dir.tag == by_file.tag == "summarization:5vsa3ywqqoefgatx"


def test_resolve_project_builds_into_store(store: Path, project: Path) -> None:
    bento = resolve_bento(project)
    assert bento.name == "summarize"
    assert bento.path.parent == store / "bentos" / "summarize"
    assert (bento.path / "bento.yaml").is_file()


def test_resolve_tags(store: Path) -> None:
    put_bento(store, "svc", "old", "2024-01-01T00:00:00+00:00")
    put_bento(store, "svc", "new", "2025-01-01T00:00:00+00:00")
    assert resolve_bento("svc:old").version == "old"
    assert resolve_bento("svc").version == "new"  # no latest file: newest creation_time
    assert resolve_bento("svc:latest").version == "new"
    (store / "bentos" / "svc" / "latest").write_text("old\n")
    assert resolve_bento("svc").version == "old"  # the latest file wins, as in BentoML


def test_latest_file_naming_a_missing_version_falls_back(store: Path) -> None:
    put_bento(store, "svc", "a", "2024-01-01T00:00:00+00:00")
    put_bento(store, "svc", "b", None)
    (store / "bentos" / "svc" / "latest").write_text("gone")
    assert get_bento("svc").version == "a"


def test_build_updates_latest(store: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    build_bento(root, version="v1")
    build_bento(root, version="v2")
    assert resolve_bento("a").version == "v2"


def test_unknown_name_suggests(store: Path) -> None:
    put_bento(store, "summarize", "v1", None)
    with pytest.raises(BentoNotFoundError) as info:
        resolve_bento("sumarize")
    assert "(did you mean 'summarize'?)" in str(info.value)
    assert info.value.hint == "known bentos: summarize"


def test_unknown_version_lists_versions(store: Path) -> None:
    put_bento(store, "svc", "v1", None)
    put_bento(store, "svc", "v2", None)
    with pytest.raises(BentoNotFoundError) as info:
        resolve_bento("svc:v3")
    assert "bento 'svc' has no version 'v3'" in str(info.value)
    assert info.value.hint == "known versions of svc: v1, v2"


def test_empty_store(store: Path) -> None:
    with pytest.raises(BentoNotFoundError, match="is empty"):
        resolve_bento("anything")


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BentoNotFoundError, match="no such directory"):
        resolve_bento(str(tmp_path / "nope"))


def test_dir_that_is_neither(tmp_path: Path) -> None:
    with pytest.raises(BentoNotFoundError, match="neither a bento"):
        resolve_bento(tmp_path)


def test_list_bentos_sorted_and_skips_broken(store: Path) -> None:
    put_bento(store, "b", "x", "2024-01-01T00:00:00+00:00")
    put_bento(store, "a", "old", "2024-01-01T00:00:00+00:00")
    put_bento(store, "a", "new", "2025-01-01T00:00:00+00:00")
    broken = store / "bentos" / "c" / "v1"
    broken.mkdir(parents=True)
    (broken / "bento.yaml").write_text("name: c\nversion: v1\ndocker: {distro: nope}\n")
    (store / "bentos" / "a" / ".tmp-half-built").mkdir()
    with pytest.warns(PipelineWarning, match="skipping unreadable bento"):
        tags = [b.tag for b in list_bentos()]
    assert tags == ["a:new", "a:old", "b:x"]


def test_list_bentos_empty(store: Path) -> None:
    assert list_bentos() == []


def test_symlink_loop_is_an_error(store: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    (root / "loop1").symlink_to(root / "loop2")
    (root / "loop2").symlink_to(root / "loop1")
    with pytest.raises(ConfigError, match="symlink loop"):
        build_bento(root)
    assert store_files(store) == []


def test_dangling_symlink_inside_project_is_skipped(store: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", "service: a:A\n", {"a.py": "A = 1\n"})
    (root / "gone").symlink_to(root / "missing.txt")
    assert "gone" not in src_files(build_bento(root).path)


# --- end to end on a real engine ----------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.slow
def test_built_bento_becomes_an_image_with_exactly_the_selected_files(
    store: Path, tmp_path: Path
) -> None:
    """bentofile -> store -> context -> ``docker build``: the image holds the selected files
    and the merged environment, nothing that include/exclude/.bentoignore left out."""
    root = make_project(
        tmp_path / "p",
        """\
        service: service:svc
        name: e2e
        include: ["*.py", "pkg/", "link.txt"]
        exclude: ["pkg/private.py"]
        docker:
          env: ["GREETING=hello world"]
        envs:
          - name: MODE
            value: test
        """,
        {
            "service.py": "svc = None\n",
            "pkg/__init__.py": "",
            "pkg/private.py": "TOKEN = 1\n",
            "pkg/notes.tmp": "",
            "pkg/.bentoignore": "*.tmp\n",
            "data.bin": "x",
            "real.txt": "via symlink\n",
        },
    )
    (root / "link.txt").symlink_to("real.txt")
    bento = build_bento(root)
    context = write_context(bento, tmp_path / "ctx", render_dockerfile(bento))
    tag = f"bento-pipeline-test/e2e:{secrets.token_hex(4)}"
    try:
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, str(context)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        listing = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                tag,
                "-c",
                "cd /home/bentoml/bento/src && find . -type f | sort && cat link.txt",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.splitlines()
        assert listing == [
            "./link.txt",
            "./pkg/.bentoignore",
            "./pkg/__init__.py",
            "./service.py",
            "via symlink",
        ]
        config = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", tag, "--format", "{{json .Config.Env}}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        assert "GREETING=hello world" in config
        assert "MODE=test" in config
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_a_failing_check_stores_nothing_and_names_the_users_files(
    store: Path, tmp_path: Path
) -> None:
    root = make_project(
        tmp_path / "p",
        """\
        service: "service:svc"
        name: checked
        docker:
          dockerfile_template: Dockerfile.j2
        """,
        {"service.py": "svc = None\n", "Dockerfile.j2": "{% extends bento_base_template %}\n"},
    )
    seen: list[Path] = []

    def check(bento: object) -> None:
        seen.append(bento.path)  # type: ignore[attr-defined]
        raise ConfigError(
            f"bad {bento.path}/env/docker/Dockerfile.template",  # type: ignore[attr-defined]
            file=bento.path / "env/docker/Dockerfile.template",  # type: ignore[attr-defined]
            line=1,
        )

    with pytest.raises(ConfigError) as caught:
        build_bento(root, check=check)
    assert caught.value.file == str(root / "Dockerfile.j2")
    assert caught.value.message == f"bad {root / 'Dockerfile.j2'}"
    assert seen and not seen[0].exists()
    assert not (store / "bentos" / "checked").exists()
    # A passing check: the bento lands in the store.
    built = build_bento(root, check=lambda bento: None)
    assert built.path.parent == store / "bentos" / "checked"


def test_template_syntax_error_is_found_before_the_store(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        """\
        service: "service:svc"
        docker:
          dockerfile_template: Dockerfile.j2
        """,
        {
            "service.py": "svc = None\n",
            "Dockerfile.j2": "{% extends bento_base_template %}\n{{ x\n",
        },
    )
    with pytest.raises(PipelineError) as caught:
        build_bento(root)
    assert caught.value.file == str(root / "Dockerfile.j2") and caught.value.line == 2
    assert not store.exists() or not any(store.rglob("bento.yaml"))


def test_check_errors_name_the_users_template_through_a_symlinked_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real-home"
    real.mkdir()
    (tmp_path / "home-link").symlink_to(real)
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home-link"))
    root = make_project(
        tmp_path / "p",
        """\
        service: "service:svc"
        docker:
          dockerfile_template: Dockerfile.j2
        """,
        {
            "service.py": "svc = None\n",
            "Dockerfile.j2": "{% extends bento_base_template %}\n"
            "{% block SETUP_BENTO_USER %}\n{{ undefined_thing }}\n{% endblock %}\n",
        },
    )
    with pytest.raises(PipelineError) as caught:
        resolve_bento(root, check=render_dockerfile)
    assert (caught.value.file, caught.value.line) == (str(root / "Dockerfile.j2"), 3)
    assert list(real.rglob("bento.yaml")) == []


def test_args_and_env_stages_are_kept_in_the_stored_bento_yaml(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        """\
        service: app:Api
        args: {model: small, n: 2}
        envs:
          - {name: A, value: '1'}
          - {name: TOKEN, value: t, stage: build}
          - {name: RT, stage: runtime}
        """,
        {"app.py": "Api = 1\n"},
    )
    bento = build_bento(root)
    data = yaml.safe_load((bento.path / "bento.yaml").read_text())
    assert data["args"] == {"model": "small", "n": 2}
    assert data["envs"] == [
        {"name": "A", "value": "1", "stage": "all"},
        {"name": "TOKEN", "value": "t", "stage": "build"},
        {"name": "RT", "value": "", "stage": "runtime"},
    ]
    assert dict(bento.args) == {"model": "small", "n": 2}
    assert dict(bento.docker.env) == {"A": "1"}


def test_project_with_pyproject_build_table(store: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "service.py").write_text("svc = None\n")
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [project]
            name = "py-proj"
            dependencies = ["six"]

            [tool.bentoml.build]
            service = "service:svc"
            args = {model = "small"}

            [tool.bentoml.build.python]
            lock_packages = false
            """
        )
    )
    bento = resolve_bento(root)
    assert bento.name == "py-proj"
    # src layout (a src/ next to pyproject.toml): src/service.py is the bento's src/service.py
    assert (bento.path / "src" / "service.py").is_file()
    assert not (bento.path / "src" / "src").exists()
    assert (bento.path / "env/python/requirements.txt").read_text().splitlines() == ["six"]
    data = yaml.safe_load((bento.path / "bento.yaml").read_text())
    assert data["args"] == {"model": "small"} and data["python"]["is_src_layout"] is True


def test_bentofile_wins_over_pyproject(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p", "service: app:Api\nname: from-yaml\n", {"app.py": "Api=1\n"}
    )
    (root / "pyproject.toml").write_text('[tool.bentoml.build]\nservice = "app:Api"\nname = "t"\n')
    assert build_bento(root).name == "from-yaml"


def test_pyproject_without_build_table_is_not_a_project(store: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(BentoNotFoundError, match=r"no \[tool.bentoml.build\] in pyproject.toml"):
        resolve_bento(tmp_path)
    with pytest.raises(BentoNotFoundError, match=r"no \[tool.bentoml.build\] table"):
        build_bento(tmp_path)


def test_pyproject_error_names_pyproject(store: Path, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bentoml.build]\nservice = "app:Api"\n\n[tool.bentoml.build.docker]\ndistro = 3\n'
    )
    with pytest.raises(ConfigError) as info:
        build_bento(tmp_path)
    assert str(info.value).startswith(
        f"{tmp_path / 'pyproject.toml'}:5: tool.bentoml.build.docker.distro: "
    )


def test_default_python_on_amazonlinux_names_the_users_bentofile(
    store: Path, tmp_path: Path
) -> None:
    # the default python_version (the running interpreter's) is not one amazonlinux has
    root = make_project(
        tmp_path / "p",
        'service: "app:Api"\ninclude: ["*.py"]\ndocker:\n  distro: amazonlinux\n',
        {"app.py": "Api = 1\n"},
    )
    for build in (
        lambda: build_bento(root),
        lambda: resolve_bento(root, check=render_dockerfile),
    ):
        with pytest.raises(ConfigError) as info:
            build()
        assert str(info.value).startswith(f"{root / 'bentofile.yaml'}:4: docker.python_version: ")
        assert ".tmp-" not in str(info.value)
        assert "hint: set docker.python_version to '3.8'" in str(info.value)
    assert not (store / "bentos").exists()


def test_render_error_in_the_copied_bento_yaml_names_the_users_file_and_line(
    store: Path, tmp_path: Path
) -> None:
    root = make_project(
        tmp_path / "p",
        """\
        service: app:Api
        envs:
          - name: A
            value: a
          - name: TOKEN
            stage: build
        """,
        {"app.py": "Api = 1\n"},
    )
    from pipeline.rendering import RenderOptions

    with pytest.raises(ConfigError) as info:
        resolve_bento(root, check=lambda b: render_dockerfile(b, RenderOptions(buildkit=False)))
    error = info.value
    assert (error.file, error.line, error.field) == (
        str(root / "bentofile.yaml"),
        6,
        "envs[1].stage",
    )
    assert not (store / "bentos").exists()


def test_copied_bento_yaml_errors_name_pyproject_fields(store: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("Api = 1\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bentoml.build]\nservice = "app:Api"\n\n[[tool.bentoml.build.envs]]\n'
        'name = "TOKEN"\nstage = "build"\n'
    )
    from pipeline.rendering import RenderOptions

    with pytest.raises(ConfigError) as info:
        resolve_bento(tmp_path, check=lambda b: render_dockerfile(b, RenderOptions(buildkit=False)))
    error = info.value
    assert (error.file, error.field) == (
        str(tmp_path / "pyproject.toml"),
        "tool.bentoml.build.envs[0].stage",
    )
    assert error.line == 6


@pytest.mark.parametrize(
    ("source", "service"),
    [
        ("import bentoml\n\n@bentoml.service(resources={'cpu': '1'})\nclass Summarize:\n"
         "    pass\n", "service:Summarize"),
        ("from bentoml import service\n\n@service\nclass Echo:\n    pass\n", "service:Echo"),
        ("import bentoml\nsvc = bentoml.Service('legacy')\n", "service:svc"),
    ],
)  # fmt: skip
def test_no_service_key_means_the_service_in_service_py(
    store: Path, tmp_path: Path, source: str, service: str
) -> None:
    root = make_project(tmp_path / "p", "python:\n  lock_packages: false\n", {"service.py": source})
    bento = build_bento(root, bentoml_version="1.4.40")
    assert bento.service == service


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"app.py": "x = 1\n"}, "has no service.py"),
        ({"service.py": "x = 1\n"}, "defines no service"),
        (
            {"service.py": "import bentoml\n@bentoml.service\nclass A: ...\n"
             "@bentoml.service\nclass B: ...\n"},
            "several services (A, B)",
        ),
    ],
)  # fmt: skip
def test_no_service_key_without_one_service_in_service_py(
    store: Path, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    root = make_project(tmp_path / "p", "name: x\n", files)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        build_bento(root)
    assert info.value.field == "service"
    assert not (store / "bentos").exists()


def test_project_readme_is_the_bento_readme_without_description(
    store: Path, tmp_path: Path
) -> None:
    root = make_project(
        tmp_path / "p", "service: app:Api\n", {"app.py": "Api = 1\n", "README.md": "# Mine\n"}
    )
    assert (build_bento(root).path / "README.md").read_text() == "# Mine\n"


def test_conda_packages_without_channels_use_conda_forge(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        "service: app:Api\nconda:\n  dependencies: [numpy]\n",
        {"app.py": "Api = 1\n"},
    )
    bento = build_bento(root)
    environment = yaml.safe_load((bento.path / "env/conda/environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    assert bento.conda.channels == ("conda-forge",)


def test_src_layout_strips_src(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        "service: service:svc\npython:\n  is_src_layout: true\n",
        {"src/service.py": "svc = 1\n", "src/pkg/mod.py": "", "top.txt": "t"},
    )
    bento = build_bento(root)
    files = sorted(
        p.relative_to(bento.path / "src").as_posix()
        for p in (bento.path / "src").rglob("*")
        if p.is_file()
    )
    assert files == ["bentofile.yaml", "pkg/mod.py", "service.py", "top.txt"]
