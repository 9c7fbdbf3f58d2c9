"""The build plan: computed once, printed, loaded back, checked before it runs (no engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import anyio
import pytest
from attrs import evolve

from pipeline import api
from pipeline.backends.registry import get_executor
from pipeline.buildplan import (
    BuildInputs,
    BuildPlan,
    PlannedFile,
    context_manifest,
    manifest_changes,
    request_for,
)
from pipeline.cli import main
from pipeline.errors import BackendError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello"


@pytest.fixture()
def project(tmp_path: Path, isolated_build_env: Path) -> Path:
    """A copy of examples/hello outside any git checkout."""
    copy = tmp_path / "hello"
    shutil.copytree(HELLO, copy)
    return copy


def store_entries(tmp_path: Path) -> list[Path]:
    bentos = tmp_path / "store" / "bentos"
    return sorted(bentos.rglob("bento.yaml")) if bentos.exists() else []


def test_a_plan_is_complete_and_names_no_temporary_path(
    project: Path, tmp_path: Path, isolated_build_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN_TOKEN", "plan-token-plaintext")
    planned = api.plan(
        project,
        backend="podman",
        check=False,
        tags=["hello:plan"],
        secrets=["id=tok,env=PLAN_TOKEN"],
        build_args=["A=1"],
        labels=["team=ml"],
        cache_from=["type=local,src=/cache"],
    )
    assert planned.backend == "podman" and planned.tags == ("hello:plan",)
    assert planned.build_args == {"A": "1"} and planned.labels["team"] == "ml"
    assert planned.cache["cache_from"] == ["type=local,src=/cache"]
    assert [(s.id, s.kind, s.source, s.origin) for s in planned.secrets] == [
        ("tok", "env", "PLAN_TOKEN", "--secret")
    ]
    # the context as a manifest: the Dockerfile and the bento's files, each with its digest
    paths = {f.path: f for f in planned.context}
    assert paths["Dockerfile"].sha256 == context_digest(planned.dockerfile.encode())
    assert "src/service.py" in paths and paths["env/docker/entrypoint.sh"].mode == "0755"
    # instructions keep their origins; every command names the context <context>
    assert planned.instructions[0].text.startswith("FROM ")
    assert any(i.origin and "built-in stage" in i.origin for i in planned.instructions)
    text = "\n".join(planned.commands)
    assert "<context>" in text and "--build-arg A=1" in text
    everything = json.dumps(planned.to_json())
    for leak in (str(isolated_build_env), tempfile.gettempdir() + "/bento-context"):
        assert leak not in everything
    assert "plan-token-plaintext" not in everything + planned.to_text()


def context_digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_planning_a_project_stores_nothing_and_leaves_no_temp_dir(
    project: Path, tmp_path: Path, isolated_build_env: Path
) -> None:
    first = api.plan(project, backend="docker", check=False)
    second = api.plan(project, backend="docker", check=False)
    assert store_entries(tmp_path) == []
    assert list(isolated_build_env.iterdir()) == []
    # content-addressed: the same project is the same bento, the same plan
    assert first.bento.tag == second.bento.tag
    labels = dict(first.labels)
    labels.pop("org.opencontainers.image.created")  # made now, since the store has no copy
    other = dict(second.labels)
    other.pop("org.opencontainers.image.created")
    assert labels == other
    # only bento.yaml (its creation_time) differs until the project is stored
    assert manifest_changes(first.context, second.context) in ([], ["bento.yaml: content changed"])
    assert first.dockerfile == second.dockerfile


def test_a_stored_bento_plans_to_the_digest_its_build_reports(
    project: Path, tmp_path: Path
) -> None:
    from pipeline.bento import build_bento

    stored = build_bento(project)
    planned = api.plan(project, backend="docker", check=False)
    again = api.plan(stored.tag, backend="docker", check=False)
    assert planned.bento.tag == stored.tag
    # the stored bento's creation time, not the scratch copy's
    created = api.image_labels(stored)["org.opencontainers.image.created"]
    assert planned.labels["org.opencontainers.image.created"] == created
    assert planned.digest == api.plan(project, backend="docker", check=False).digest
    # by tag: the same build, only the source differs
    assert again.context == planned.context and again.commands == planned.commands
    assert len(store_entries(tmp_path)) == 1


def test_json_round_trip_keeps_the_digest(project: Path) -> None:
    planned = api.plan(project, backend="buildah", check=False, platforms=["linux/arm64"])
    data = json.loads(json.dumps(planned.to_json()))
    loaded = BuildPlan.from_json(data)
    assert loaded == planned and loaded.digest == planned.digest == data["digest"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema=99), "schema 99 is not supported"),
        (lambda d: d.pop("dockerfile"), "not a build plan of this version"),
        (lambda d: d.update(tags=["evil:1"]), "the plan was changed after it was made"),
    ],
)
def test_a_bad_plan_file_is_a_clear_error(
    project: Path, tmp_path: Path, change: object, message: str
) -> None:
    data = api.plan(project, backend="docker", check=False).to_json()
    change(data)  # type: ignore[operator]
    file = tmp_path / "plan.json"
    file.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as caught:
        api.load_plan(file)
    assert caught.value.file == str(file)


def test_running_a_plan_whose_project_changed_is_refused(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "plan.json"
    file.write_text(json.dumps(api.plan(project, backend="docker", check=False).to_json()))
    (project / "service.py").write_text((project / "service.py").read_text() + "# changed\n")
    code = main(["build", "-", "--plan", str(file)])
    err = capsys.readouterr().err
    assert code == 2
    assert "its files changed since" in err and str(file) in err and "Traceback" not in err


def test_plan_flag_takes_no_other_build_options(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "plan.json"
    file.write_text(json.dumps(api.plan(project, backend="docker", check=False).to_json()))
    assert main(["build", "-", "--plan", str(file), "-t", "other:1", "--push"]) == 2
    err = capsys.readouterr().err
    assert "--tags, --push cannot be given with it" in err
    assert main(["build", str(project), "--plan", str(file)]) == 2
    assert f"BENTO '{project}' cannot be given" in capsys.readouterr().err


def test_manifest_changes_name_each_path() -> None:
    a = (PlannedFile("a", 1, "x", "0644"), PlannedFile("b", 1, "y", "0644"))
    b = (PlannedFile("a", 1, "x", "0755"), PlannedFile("c", 1, "z", "0644"))
    assert manifest_changes(a, b) == ["a: mode 0644 -> 0755", "b: missing", "c: new"]
    assert manifest_changes(a, a) == []


def test_context_manifest_reads_modes_and_links(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"data")
    os.symlink("f", tmp_path / "d" / "link")
    found = {f.path: f for f in context_manifest(tmp_path)}
    assert found["run.sh"].mode == "0755" and found["d/f"].mode == "0644"
    assert found["d/link"].mode == "link" and found["d/link"].target == "f"
    assert found["d/f"].sha256 == context_digest(b"data")


# -- executors take the plan ----------------------------------------------------------------


def test_an_executor_refuses_another_engines_plan(project: Path, tmp_path: Path) -> None:
    planned = api.plan(project, backend="podman", check=False)
    with pytest.raises(BackendError, match="the plan is for the 'podman' backend, not 'docker'"):
        anyio.run(lambda: get_executor("docker").build(planned, BuildInputs(tmp_path)))


def test_an_executor_refuses_a_plan_whose_commands_it_would_not_run(
    project: Path, tmp_path: Path
) -> None:
    """A plan made where the CLI had other flags (or edited and re-digested) does not run."""
    planned = api.plan(project, backend="docker", check=False, tags=["hello:1"])
    other = evolve(
        planned, commands=[c.replace("--tag hello:1", "--tag hello:2") for c in planned.commands]
    )
    with pytest.raises(BackendError, match="would not run the plan's commands here") as caught:
        anyio.run(lambda: get_executor("docker").build(other, BuildInputs(tmp_path)))
    assert "the plan has '--tag hello:2', this machine runs '--tag hello:1'" in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_plan_with_a_private_secret_needs_its_file(project: Path, tmp_path: Path) -> None:
    cert = tmp_path / "proxy.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n")
    planned = api.plan(project, backend="docker", check=False, ca_cert=cert)
    [secret] = planned.secrets
    assert (secret.id, secret.source) == ("ca_cert", "<secret ca_cert>")
    with pytest.raises(ConfigError, match="'ca_cert' .* is a file the build writes itself"):
        request_for(planned, BuildInputs(tmp_path))
    bundle = tmp_path / "bundle.pem"
    request = request_for(planned, BuildInputs(tmp_path, {"ca_cert": bundle}))
    assert [(s.id, s.src) for s in request.secrets] == [("ca_cert", bundle)]


# -- dry run: the checks a real build makes ----------------------------------------------------


def test_dry_run_of_an_engine_that_is_not_installed_is_exit_2(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("nerdctl"):
        pytest.skip("nerdctl is installed here")
    code = main(["build", str(project), "--backend", "nerdctl", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "nerdctl" in err and "Traceback" not in err
    assert store_entries(tmp_path) == []
    # the plan alone (no checks) is still there for a machine that has it
    assert main(["plan", str(project), "--backend", "nerdctl", "--no-check"]) == 0
    assert "nerdctl build" in capsys.readouterr().out


@pytest.mark.podman
def test_dry_run_of_a_platform_the_engine_cannot_build_is_exit_2(project: Path) -> None:
    with pytest.raises(BackendError, match="cannot build for linux/s390x"):
        api.dry_run(project, backend="podman", platforms=["linux/s390x"])


def test_plan_help_explains_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plan", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for word in ("--no-check", "manifest", "digest", "--plan FILE", "<context>"):
        assert word in out
    assert "--dry-run" not in out.split("options:")[1].split("examples:")[0]


# -- labels --------------------------------------------------------------------------------------


def test_every_image_gets_oci_and_bento_labels_under_the_users(project: Path) -> None:
    planned = api.plan(
        project,
        backend="docker",
        check=False,
        labels=["org.opencontainers.image.title=mine"],
    )
    labels = planned.labels
    name, version = planned.bento.tag.split(":")
    assert labels["org.opencontainers.image.title"] == "mine"  # the user's wins
    assert labels["org.opencontainers.image.version"] == version
    assert labels[api.BENTO_TAG_LABEL] == planned.bento.tag
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert "org.opencontainers.image.revision" not in labels  # not a git checkout
    assert f"--label {api.BENTO_TAG_LABEL}={name}:{version}" in "\n".join(planned.commands)


def test_git_labels_name_the_commit_and_a_remote_without_credentials(project: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    names = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")
    env = {**os.environ, **dict.fromkeys(names, "t")}
    for argv in (
        ["init", "-q"],
        ["add", "."],
        ["commit", "-qm", "x"],
        ["remote", "add", "origin", "https://user:s3cret-token@git.example/org/repo.git"],
    ):
        subprocess.run(["git", "-C", str(project), *argv], check=True, env=env)
    head = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    planned = api.plan(project, backend="docker", check=False)
    assert planned.labels["org.opencontainers.image.revision"] == head
    assert planned.labels["org.opencontainers.image.source"] == "https://git.example/org/repo.git"
    assert "s3cret-token" not in json.dumps(planned.to_json())


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://tok@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://u:p@host:8443/o/r", "https://host:8443/o/r"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("https://github.com/o/r", "https://github.com/o/r"),
    ],
)
def test_public_url(url: str, public: str) -> None:
    assert api.public_url(url) == public
