"""BentoML's containerize flags on ``containerize``, ``build`` and ``matrix``: each flag lands in
the build request the CLI makes (captured on its way to the engine), bad values exit 2, and one
real docker build shows ``-q`` prints only the image id."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pipeline import api
from pipeline.cli import main
from pipeline.request import BuildRequest
from tests.cli.clirun import pipeline_cli

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "examples" / "hello")
BUILD_COMMANDS = ("containerize", "build")


@pytest.fixture(autouse=True)
def _env(isolated_build_env: Path) -> None:
    """Own store, own temp dir, no backend from the environment (tests/conftest.py)."""


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[BuildRequest]:
    """Every BuildRequest the CLI hands to an executor (dry runs included)."""
    seen: list[BuildRequest] = []
    original = api.build_request

    @contextmanager
    def recording(prepared: api.PreparedBuild) -> Iterator[BuildRequest]:
        with original(prepared) as request:
            seen.append(request)
            yield request

    monkeypatch.setattr(api, "build_request", recording)
    return seen


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors (usage + message, exit 2)
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def dry_request(
    capsys: pytest.CaptureFixture[str],
    requests: list[BuildRequest],
    command: str,
    *argv: str,
    bento: str = HELLO,
) -> tuple[BuildRequest, str]:
    code, _, err = run(capsys, command, bento, "--backend", "docker", "--dry-run", *argv)
    assert code == 0, err
    assert len(requests) == 1
    return requests[0], err


FLAG_CASES: list[tuple[list[str], Callable[[BuildRequest], Any], Any]] = [
    (["-t", "svc:1"], lambda r: r.tags, ("svc:1",)),
    (["--image-tag", "svc:1", "--docker-image-tag", "svc:2"], lambda r: r.tags, ("svc:1", "svc:2")),
    (["--network", "host"], lambda r: r.network, "host"),
    (["--pull"], lambda r: r.pull, True),
    (["--ssh", "default", "--ssh", "git=/k"], lambda r: r.ssh, ("default", "git=/k")),
    (["--add-host", "db:10.0.0.2"], lambda r: r.add_hosts, ("db:10.0.0.2",)),
    (["--add-host", "db=10.0.0.2"], lambda r: r.add_hosts, ("db:10.0.0.2",)),
    (["-q"], lambda r: r.quiet, True),
    (["--quiet"], lambda r: r.quiet, True),
    (["--run-as-root"], lambda r: r.run_as_root, True),
    (["--platform", "linux/amd64"], lambda r: r.platforms, ("linux/amd64",)),
    (["--build-arg", "A=1"], lambda r: dict(r.build_args), {"A": "1"}),
    (["--label", "team=ml"], lambda r: {"team": r.labels["team"]}, {"team": "ml"}),
    (["--secret", "id=h,env=HOME"], lambda r: [s.id for s in r.secrets], ["h"]),
    (["--target", "base-container"], lambda r: r.target, "base-container"),
    (["--no-cache"], lambda r: r.no_cache, True),
    (["--cache-from", "r/app:c"], lambda r: r.cache_from, ("r/app:c",)),
    (["--cache-to", "type=inline"], lambda r: r.cache_to, ("type=inline",)),
    (["--progress", "plain"], lambda r: r.progress, "plain"),
    (["--output", "type=local,dest=out"], lambda r: r.output, "type=local,dest=out"),
    (["--opt", "cpu-shares=2"], lambda r: r.opts, (("cpu-shares", "2"),)),
    # BentoML's --opt spellings of first-class options set those options
    (["--opt", "network=host"], lambda r: (r.network, r.opts), ("host", ())),
    (["--opt", "add-host=db:1.2.3.4"], lambda r: r.add_hosts, ("db:1.2.3.4",)),
    (["--opt", "pull"], lambda r: (r.pull, r.opts), (True, ())),
    (["--opt", "pull=never"], lambda r: (r.pull, r.opts), (False, (("pull", "never"),))),
    (["--opt", "quiet"], lambda r: r.quiet, True),
    # buildx-only flags: passed to the engine as --opt items, in command-line order
    (
        ["--allow", "network.host", "--ulimit", "nofile=1024:2048", "--shm-size", "1g"],
        lambda r: r.opts,
        (("allow", "network.host"), ("ulimit", "nofile=1024:2048"), ("shm-size", "1g")),
    ),
    (
        ["--builder", "b1", "--cgroup-parent", "cg"],
        lambda r: r.opts,
        (("builder", "b1"), ("cgroup-parent", "cg")),
    ),
    (["--build-context", "src=/x"], lambda r: r.opts, (("build-context", "src=/x"),)),
    (["--attest", "type=sbom"], lambda r: r.opts, (("attest", "type=sbom"),)),
    (["--no-cache-filter", "base"], lambda r: r.opts, (("no-cache-filter", "base"),)),
    (
        ["--provenance", "mode=max", "--sbom", "true"],
        lambda r: r.opts,
        (("provenance", "mode=max"), ("sbom", "true")),
    ),
    (["--opt", "a=1", "--allow", "x"], lambda r: r.opts, (("a", "1"), ("allow", "x"))),
]  # fmt: skip


@pytest.mark.parametrize("command", BUILD_COMMANDS)
@pytest.mark.parametrize(("argv", "field", "expected"), FLAG_CASES)
def test_flag_sets_the_request_field(
    capsys: pytest.CaptureFixture[str],
    requests: list[BuildRequest],
    command: str,
    argv: list[str],
    field: Callable[[BuildRequest], Any],
    expected: Any,
) -> None:
    request, err = dry_request(capsys, requests, command, *argv)
    assert field(request) == expected
    assert "deprecated" not in err


def test_without_flags_the_bentoml_fields_are_off(
    capsys: pytest.CaptureFixture[str], requests: list[BuildRequest]
) -> None:
    request, _ = dry_request(capsys, requests, "containerize")
    assert (request.network, request.pull, request.ssh, request.add_hosts) == (None, False, (), ())
    assert (request.iidfile, request.metadata_file, request.quiet, request.run_as_root) == (
        None, None, False, False,
    )  # fmt: skip
    assert request.opts == ()


@pytest.mark.parametrize("command", BUILD_COMMANDS)
@pytest.mark.parametrize(
    ("flag", "field"), [("--iidfile", "iidfile"), ("--metadata-file", "metadata_file")]
)
def test_user_files_are_request_fields_not_engine_opts(
    capsys: pytest.CaptureFixture[str],
    requests: list[BuildRequest],
    tmp_path: Path,
    command: str,
    flag: str,
    field: str,
) -> None:
    """The user's --iidfile / --opt iidfile=... is the request's own field: never an --opt that
    would collide with the file the executor asks the engine for."""
    target = tmp_path / "out" / "file"
    target.parent.mkdir()
    for argv in ([flag, str(target)], ["--opt", f"{flag[2:]}={target}"]):
        requests.clear()
        request, _ = dry_request(capsys, requests, command, *argv)
        assert getattr(request, field) == target
        assert request.opts == ()


def test_enable_features_reach_the_rendered_dockerfile(capsys: pytest.CaptureFixture[str]) -> None:
    bento = str(ROOT / "tests" / "fixtures" / "bento_v1_4")  # pins bentoml==1.4.8
    code, out, err = run(
        capsys, "containerize", bento, "--backend", "docker", "--dry-run", "--json",
        "--enable-features", "grpc,tracing", "--enable-features", "io-image",
    )  # fmt: skip
    assert code == 0, err
    assert "'bentoml[grpc,tracing,io-image]==1.4.8'" in json.loads(out)["dockerfile"]
    code, _, err = run(
        capsys, "build", bento, "--backend", "docker", "--dry-run", "--enable-features", "grpcc"
    )
    assert code == 2 and "unknown feature 'grpcc'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--add-host", "nohost"], "malformed --add-host 'nohost': expected HOST:IP"),
        (["--ssh", "two words"], "malformed --ssh 'two words'"),
        (["--network", " "], "--network needs a mode"),
        (
            ["--iidfile", "/no/such/dir/iid"],
            "--iidfile '/no/such/dir/iid': directory '/no/such/dir' does not exist",
        ),
        (["--metadata-file", "/"], "--metadata-file '/' is a directory"),
        (["--opt", "pull=some-day"], "malformed pull policy 'some-day'"),
        (["-q", "--output", "json"], "--quiet and --output json exclude each other"),
    ],
)  # fmt: skip
def test_bad_bentoml_flag_values_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    dry = [] if "-q" in argv else ["--dry-run"]
    code, out, err = run(capsys, "containerize", HELLO, "--backend", "docker", *dry, *argv)
    assert code == 2, err
    assert message in err
    assert out == "" and "Traceback" not in err


def test_matrix_takes_the_flags_that_mean_the_same_for_every_cell(
    capsys: pytest.CaptureFixture[str], requests: list[BuildRequest]
) -> None:
    code, _, err = run(
        capsys, "matrix", HELLO, "--backend", "docker", "--dry-run", "--python", "3.11,3.12",
        "--network", "host", "--pull", "--ssh", "default", "--add-host", "db:10.0.0.2",
        "--run-as-root", "--allow", "network.host",
    )  # fmt: skip
    assert code == 0, err
    assert len(requests) == 2
    for request in requests:
        assert (request.network, request.pull, request.ssh) == ("host", True, ("default",))
        assert request.add_hosts == ("db:10.0.0.2",) and request.run_as_root
        assert request.opts == (("allow", "network.host"),)
    for flag in ("--iidfile", "--metadata-file", "-q"):  # one file / one id for many images
        code, _, err = run(capsys, "matrix", HELLO, "--dry-run", flag, "x")
        assert code == 2 and "unrecognized arguments" in err


def test_containerize_help_says_it_is_build() -> None:
    done = pipeline_cli("containerize", "--help", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "BentoML's spelling of `python -m pipeline build`" in done.stdout
    for flag in (
        "--image-tag", "--docker-image-tag", "--network", "--pull", "--ssh", "--add-host",
        "--iidfile", "--metadata-file", "--quiet", "--enable-features", "--run-as-root",
        "--allow", "--builder", "--shm-size", "--ulimit", "--cgroup-parent", "--opt",
    ):  # fmt: skip
        assert flag in done.stdout, flag
    listing = pipeline_cli("--help", env=dict(os.environ)).stdout
    assert "containerize" in listing and "BentoML's spelling of `build`" in listing


@pytest.mark.docker
def test_quiet_prints_only_the_image_id(tmp_path: Path) -> None:
    """A real docker build with -q: stdout is the image id alone, stderr is empty, and the id is
    the image's."""
    import uuid

    from tests.engines.enginekit import remove_image, sh

    tag = f"localhost/pipeline-test-quiet:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    try:
        done = pipeline_cli("containerize", HELLO, "--backend", "docker", "-t", tag, "-q", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("sha256:"), done.stdout
        image_id = sh("docker", "image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        assert lines[0] == image_id
    finally:
        remove_image("docker", tag)


@pytest.mark.parametrize("command", [*BUILD_COMMANDS, "matrix"])
@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--foo=bar"], "pass engine options with --opt foo=bar"),
        (["--foo", "bar"], "pass engine options with --opt foo=bar"),
        (["--squash"], "pass engine options with --opt squash"),
        (["--platfrom", "linux/amd64"], "--platfrom (did you mean '--platform'?)"),
    ],
)
def test_unknown_flag_shows_the_commands_usage_and_the_opt_form(
    capsys: pytest.CaptureFixture[str], command: str, argv: list[str], hint: str
) -> None:
    code, out, err = run(capsys, command, HELLO, "--dry-run", *argv)
    assert code == 2 and out == ""
    usage, message = err.splitlines()[0], err.splitlines()[-1]
    assert usage == f"usage: python -m pipeline {command} BENTO [options]"
    assert message.startswith(f"python -m pipeline {command}: error: unrecognized arguments: ")
    assert hint in message and f"all options: python -m pipeline {command} --help" in message
    assert "COMMAND ..." not in err  # not the top-level usage


def test_unknown_flag_of_other_commands_shows_their_usage_without_the_opt_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "bento", "build", HELLO, "--zzz=1")
    assert code == 2
    assert err.startswith("usage: python -m pipeline bento build ")
    assert "unrecognized arguments: --zzz=1" in err and "--opt" not in err
    code, _, err = run(capsys, "dockerfile", HELLO, "--zzz")
    assert code == 2 and err.startswith("usage: python -m pipeline dockerfile ")
    assert "--opt" not in err


# `bentoml containerize --help` of BentoML 1.4.40, every flag but its global ones
BENTOML_CONTAINERIZE_FLAGS = (
    "-t", "--image-tag", "--docker-image-tag", "--backend", "--enable-features", "--opt",
    "--run-as-root", "--add-host", "--build-arg", "--cache-from", "--iidfile", "--label",
    "--network", "--no-cache", "--output", "--platform", "--progress", "--pull", "--secret",
    "--ssh", "--target", "--allow", "--attest", "--build-context", "--builder", "--cache-to",
    "--load", "--push", "--provenance", "--quiet", "--cgroup-parent", "--ulimit",
    "--no-cache-filter", "--metadata-file", "--sbom", "--shm-size", "-q",
)  # fmt: skip


def test_every_bentoml_containerize_flag_is_an_option_and_in_the_parity_table() -> None:
    from pipeline.cli import make_parser

    parser = make_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = commands.choices["containerize"]._option_string_actions
    table = (ROOT / "docs" / "build.md").read_text().split("## BentoML containerize parity")[1]
    for flag in BENTOML_CONTAINERIZE_FLAGS:
        assert flag in flags, flag
        assert f"`{flag}`" in table, flag


def test_quiet_silences_warnings_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """As BentoML's -q: a project whose base_image overrides its distro warns, except with -q."""
    project = tmp_path / "warns"
    project.mkdir()
    (project / "service.py").write_text("svc = None\n")
    (project / "bentofile.yaml").write_text(
        'service: "service:svc"\nname: warns\ninclude: ["*.py"]\n'
        "docker:\n  base_image: python:3.11-slim\n  distro: alpine\n"
    )
    code, _, err = run(capsys, "containerize", str(project), "--backend", "docker", "--dry-run")
    assert code == 0 and "warning: " in err and "distro" in err
    code, out, err = run(
        capsys, "containerize", str(project), "--backend", "docker", "--dry-run", "-q"
    )
    assert code == 0 and err == ""
    assert "# Dockerfile" in out  # a dry run still shows what would run
