"""envs[].stage in the Dockerfile and the context: all is baked, runtime is not, build is a
secret mount on every install step and its value reaches neither the Dockerfile nor the context."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.config import Bento, EnvVar
from pipeline.context import build_env_secrets, write_context
from pipeline.errors import ConfigError
from pipeline.graph import default_graph
from pipeline.rendering import RenderOptions, render_dockerfile

MakeBento = Callable[..., Bento]  # tests/render/conftest.py

SECRET = "s3cr3t-value-9f2c"
ENVS = (
    EnvVar("BAKED", "b1", "all"),
    EnvVar("TOKEN", SECRET, "build"),
    EnvVar("RT_ONLY", "r1", "runtime"),
)


def staged_bento(make_bento: MakeBento, **fields: object) -> Bento:
    docker = {"system_packages": ("curl",), "setup_script": "env/docker/setup_script"}
    docker.update(fields.pop("docker", {}))  # type: ignore[call-overload]
    return make_bento(
        docker={**docker, "env": {"BAKED": "b1"}},
        python={"packages": ("six",)},
        files={"env/docker/setup_script": "#!/bin/sh\n"},
        envs=ENVS,
        **fields,
    )


def runs(text: str) -> list[str]:
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("RUN")]


def test_build_env_is_a_secret_on_every_install_step(make_bento: MakeBento) -> None:
    text = render_dockerfile(staged_bento(make_bento))
    mounted = [r for r in runs(text) if "--mount=type=secret,id=TOKEN" in r]
    # system packages, the buildstage venv install, setup_script
    assert any("apt-get" in r and "curl" in r for r in mounted)
    assert any("uv pip install" in r for r in mounted)
    assert any("setup_script" in r for r in mounted)
    for run in mounted:
        assert 'export TOKEN="$(cat /run/secrets/TOKEN)" &&' in run
    # not on steps that install nothing (user creation, chmod of the entrypoint)
    assert not any("--mount=type=secret" in r for r in runs(text) if "groupadd" in r)
    assert SECRET not in text
    assert not re.search(r"^(ARG|ENV)\b.*\bTOKEN\b", text, re.M)


def test_single_stage_layout_mounts_it_on_the_install_too(make_bento: MakeBento) -> None:
    text = render_dockerfile(staged_bento(make_bento), graph=default_graph(buildstage=False))
    assert any("uv pip install" in r and "--mount=type=secret,id=TOKEN" in r for r in runs(text))
    assert SECRET not in text


def test_commands_and_post_commands_of_spec2_get_it(make_bento: MakeBento) -> None:
    bento = make_bento(
        docker={
            "base_image": "python:3.11-slim",
            "commands": ("echo pre",),
            "post_commands": ("echo post",),
        },
        envs=(EnvVar("TOKEN", "", "build"),),
        spec=2,
    )
    text = render_dockerfile(bento)
    for command in ("echo pre", "echo post"):
        (run,) = [r for r in runs(text) if r.endswith(command)]
        assert "--mount=type=secret,id=TOKEN" in run


def test_all_is_baked_runtime_is_not(make_bento: MakeBento) -> None:
    text = render_dockerfile(staged_bento(make_bento))
    assert re.search(r"^ENV .*\bBAKED=\"b1\"", re.sub(r"\s*\\\n\s*", " ", text), re.M)
    assert "RT_ONLY" not in text and "r1" not in text


def test_no_build_envs_no_secret_mounts(make_bento: MakeBento) -> None:
    text = render_dockerfile(make_bento(python={"packages": ("six",)}))
    assert "type=secret" not in text


def test_build_env_without_buildkit_is_an_error(make_bento: MakeBento) -> None:
    with pytest.raises(ConfigError) as info:
        render_dockerfile(staged_bento(make_bento), RenderOptions(buildkit=False))
    assert info.value.field == "envs[1].stage"
    assert "needs BuildKit" in str(info.value)


def test_ca_cert_and_build_env_share_one_export(make_bento: MakeBento) -> None:
    text = render_dockerfile(staged_bento(make_bento), RenderOptions(ca_cert=True))
    (install,) = [r for r in runs(text) if "uv pip install" in r]
    assert "--mount=type=secret,id=ca_cert" in install
    assert "--mount=type=secret,id=TOKEN" in install
    (exports,) = re.findall(r"export PIP_CERT=[^&]*&&", install)
    assert 'TOKEN="$(cat /run/secrets/TOKEN)"' in exports


# --- the secrets the build gets ------------------------------------------------------------------


def test_value_is_a_private_file_removed_afterwards(make_bento: MakeBento) -> None:
    bento = staged_bento(make_bento)
    with build_env_secrets(bento, environ={}) as secrets:
        (secret,) = secrets
        assert secret.id == "TOKEN" and secret.src is not None
        assert secret.src.read_text() == SECRET
        assert stat.S_IMODE(secret.src.stat().st_mode) == 0o600
        folder = secret.src.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not folder.exists()


def test_builder_environment_wins_over_value_as_in_bentoml(make_bento: MakeBento) -> None:
    with build_env_secrets(staged_bento(make_bento), environ={"TOKEN": "x"}) as secrets:
        assert [(s.id, s.env, s.src) for s in secrets] == [("TOKEN", "TOKEN", None)]


def test_neither_value_nor_environment_is_an_error(make_bento: MakeBento) -> None:
    bento = make_bento(envs=(EnvVar("A", "a"), EnvVar("HF_TOKEN", "", "build")))
    with pytest.raises(ConfigError) as info, build_env_secrets(bento, environ={}):
        pass
    assert info.value.field == "envs[1].value"
    assert "HF_TOKEN" in str(info.value) and "export HF_TOKEN=" in str(info.value)


def test_a_secret_the_user_passes_is_skipped(make_bento: MakeBento) -> None:
    with build_env_secrets(staged_bento(make_bento), environ={}, skip=("TOKEN",)) as secrets:
        assert secrets == ()


def test_context_carries_no_build_value(make_bento: MakeBento, tmp_path: Path) -> None:
    bento_yaml = {
        "name": "demo",
        "version": "v1",
        "envs": [
            {"name": "BAKED", "value": "b1", "stage": "all"},
            {"name": "TOKEN", "value": SECRET, "stage": "build"},
        ],
        "docker": {"env": {"BAKED": "b1", "TOKEN": SECRET}},
    }
    bentofile = "service: s\nenvs:\n  - name: TOKEN\n    value: " + SECRET + "\n    stage: build\n"
    pyproject = (
        '[tool.bentoml.build]\nservice = "s"\n'
        f'envs = [{{name = "TOKEN", value = "{SECRET}", stage = "build"}}]\n'
    )
    bento = staged_bento(make_bento)
    (bento.path / "bento.yaml").write_text(yaml.safe_dump(bento_yaml))
    (bento.path / "src").mkdir()
    (bento.path / "src" / "bentofile.yaml").write_text(bentofile)
    (bento.path / "src" / "pyproject.toml").write_text(pyproject)
    (bento.path / "src" / "app.py").write_text("print('hello')\n")
    context = write_context(bento, tmp_path / "ctx", render_dockerfile(bento))
    for path in context.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    stored = yaml.safe_load((context / "bento.yaml").read_text())
    assert stored["envs"][1] == {"name": "TOKEN", "stage": "build"}
    assert stored["docker"]["env"] == {"BAKED": "b1"}
    # the bento itself is untouched
    assert SECRET in (bento.path / "bento.yaml").read_text()
    assert os.path.getsize(context / "src" / "app.py") > 0
