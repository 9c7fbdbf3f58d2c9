"""A real build per engine from a plan loaded back from its JSON (`plan -o json`, then
`build - --plan FILE`): the build runs exactly the plan, labels and all."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from tests.engines.enginekit import (
    DOCKER_CLIS,
    HELLO,
    RUNNER,
    SECRET_MOUNT,
    labels,
    pipeline_cli,
    run_in_image,
    unique_tag,
    use_cli,
)

ENGINES = [
    *(pytest.param(name, marks=getattr(pytest.mark, name)) for name in RUNNER),
    *DOCKER_CLIS,
]


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    for var in ("PIPELINE_BACKEND", "BENTOML_CONTAINERIZE_BACKEND", "DOCKER_BUILDKIT"):
        env.pop(var, None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_plan_of_a_new_project_builds_from_its_json(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = use_cli(engine, monkeypatch)
    runner, tag = RUNNER[engine], unique_tag(engine, "plan")
    tags.append((runner, tag))
    project = tmp_path / "hello"
    shutil.copytree(HELLO, project)  # not stored yet: the plan is made from a scratch copy
    env = cli_env(tmp_path)
    made = pipeline_cli("plan", str(project), "--backend", engine, "-t", tag, "-o", "json", env=env)
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "store").exists()  # planning stored nothing
    plan = json.loads(made.stdout)
    file = tmp_path / "plan.json"
    file.write_text(made.stdout)

    built = pipeline_cli("build", "-", "--plan", str(file), "-o", "json", env=env)
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    assert result["plan_digest"] == plan["digest"]
    assert result["bento"] == plan["bento"]["tag"] and result["tags"] == [tag]
    assert "Traceback" not in built.stderr and built.stderr.strip()  # progress on stderr
    # the image carries exactly the plan's labels (the bento's own LABELs besides)
    found = labels(runner, tag)
    for key, value in plan["labels"].items():
        assert found.get(key) == value, key
    assert found["io.bento-pipeline.bento"] == plan["bento"]["tag"]
    # the project is stored now, as the plan's bento: planning it again gives the same plan
    again = pipeline_cli(
        "plan", str(project), "--backend", engine, "-t", tag, "-o", "json", env=env
    )
    assert json.loads(again.stdout)["digest"] == plan["digest"]


@pytest.mark.slow
@pytest.mark.docker
def test_a_plan_with_a_secret_mounts_it_and_records_only_its_source(
    tags: list[tuple[str, str]], tmp_path: Path
) -> None:
    tag = unique_tag("docker", "plan-secret")
    tags.append(("docker", tag))
    value = f"plan-secret-{secrets.token_hex(12)}"
    secret_file = tmp_path / "aws-credentials"
    secret_file.write_text(value)
    env = cli_env(tmp_path)
    made = pipeline_cli(
        "plan", str(SECRET_MOUNT), "--backend", "docker", "-t", tag, "--no-cache",
        "--secret", f"id=aws,src={secret_file}", "-o", "json", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert value not in made.stdout
    plan = json.loads(made.stdout)
    assert plan["secrets"] == [
        {"id": "aws", "kind": "file", "source": str(secret_file), "origin": "--secret"}
    ]
    file = tmp_path / "plan.json"
    file.write_text(made.stdout)
    built = pipeline_cli("build", "-", "--plan", str(file), "--progress", "plain", env=env)
    assert built.returncode == 0, built.stderr
    assert value not in built.stdout + built.stderr
    digest = run_in_image("docker", tag, "cat", "/home/bentoml/bento/secret.sha256").strip()
    assert digest == hashlib.sha256(value.encode()).hexdigest()
