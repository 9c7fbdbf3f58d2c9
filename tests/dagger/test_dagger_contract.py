"""The real DaggerExecutor driven through the contract session server (schema-validated)."""

from __future__ import annotations

import io
import json
import logging
import socket
import tarfile
import time
from pathlib import Path
from typing import Any

import anyio
import fakeregistry
import graphql
import httpx
import pytest
from dagger_contract import FAKE_DIGEST, ContractServer, ExecFailure, Obj
from fakeregistry import REGISTRY

from pipeline.dagger.executor import DaggerExecutor
from pipeline.errors import BackendError, BuildError, ConfigError, PipelineError
from pipeline.request import BuildRequest, SecretSpec

SECRET_VALUE = "hf_s3cr3t-plaintext-0451"
DOCKERFILE = (
    "# syntax=docker/dockerfile:1\n"
    "FROM python:3.11-slim AS base\n"
    "ARG GREETING\n"
    "RUN --mount=type=secret,id=hf_token test -s /run/secrets/hf_token\n"
    "FROM base AS final\n"
)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "src" / "service.py").write_text("print('hi')\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / ".dockerignore").write_text("# caches\n.git\n**/__pycache__\n!keep.pyc\n")
    return ctx


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> SecretSpec:
    monkeypatch.setenv("HF_TOKEN", SECRET_VALUE)
    return SecretSpec(id="hf_token", env="HF_TOKEN")


def request_for(context: Path, secret: SecretSpec, **kwargs: Any) -> BuildRequest:
    return BuildRequest(
        context=context,
        platforms=("linux/amd64", "linux/arm64"),
        build_args={"GREETING": "hello", "PY": "3.11"},
        target="final",
        secrets=(secret,),
        **kwargs,
    )


def build(request: BuildRequest, lines: list[str] | None = None) -> Any:
    executor = DaggerExecutor(log_output=None)
    sink = lines.append if lines is not None else None
    return anyio.run(lambda: executor.run(request, on_output=sink))


def made_by(server: ContractServer, ids: list[str], parent: str, field: str, arg: str) -> list[Any]:
    """For objects passed by id: the ``arg`` of the ``parent.field`` call that made each one."""
    values = []
    for ident in ids:
        step = server.origin(ident).find(parent, field)
        assert step is not None, f"{ident} was not made by {parent}.{field}"
        values.append(step.arg(arg))
    return values


def secret_names(server: ContractServer, ids: list[str]) -> list[str]:
    return made_by(server, ids, "Query", "setSecret", "name")


def variant_platforms(server: ContractServer, ids: list[str]) -> list[str]:
    return made_by(server, ids, "Directory", "dockerBuild", "platform")


def test_two_platform_publish_sends_two_docker_builds(
    contract: ContractServer, context: Path, secret_env: SecretSpec
) -> None:
    result = build(request_for(context, secret_env, tags=(f"{REGISTRY}/app:1",), push=True))

    assert contract.rejected() == []
    builds = contract.calls("dockerBuild")
    assert sorted({b.args["platform"] for b in builds}) == ["linux/amd64", "linux/arm64"]
    for call in builds:
        assert call.args["buildArgs"] == [
            {"name": "GREETING", "value": "hello"},
            {"name": "PY", "value": "3.11"},
        ]
        assert call.args["target"] == "final"
        assert secret_names(contract, call.args["secrets"]) == ["hf_token"]
    [publish] = contract.calls("publish")
    assert publish.args["address"] == f"{REGISTRY}/app:1"
    # the receiver is one platform, platformVariants carries the other
    assert variant_platforms(contract, publish.args["platformVariants"]) == ["linux/arm64"]
    assert result.digest == FAKE_DIGEST
    assert result.platforms == ("linux/amd64", "linux/arm64")
    # read back from the registry: one entry per platform, each of its architecture
    assert result.verified == "registry"


def test_a_published_image_of_the_wrong_architecture_is_an_error(
    contract: ContractServer, context: Path, secret_env: SecretSpec
) -> None:
    # what buildah once pushed: one entry, labelled arm64, whose binaries are x86_64
    wrong = fakeregistry.STORE.index([("arm64", "arm64", "amd64")])
    fakeregistry.STORE.tag("wrong", "1", wrong)
    contract.override("Container", "publish", lambda obj, args: f"{args['address']}@{wrong}")

    with pytest.raises(BuildError) as caught:
        build(request_for(context, secret_env, tags=(f"{REGISTRY}/wrong:1",), push=True))

    message = str(caught.value)
    assert "not what was asked for" in message
    assert "no entry for linux/amd64" in message
    assert "the linux/arm64 entry's binaries are linux/amd64" in message


def test_a_digest_other_than_the_registry_s_is_an_error(
    contract: ContractServer, context: Path, secret_env: SecretSpec
) -> None:
    other = "sha256:" + "cd" * 32
    contract.override("Container", "publish", lambda obj, args: f"{args['address']}@{other}")

    with pytest.raises(BuildError, match=f"the registry has {FAKE_DIGEST}.*reported {other}"):
        build(request_for(context, secret_env, tags=(f"{REGISTRY}/app:7",), push=True))


def test_context_upload_honours_dockerignore_and_adds_rendered_dockerfile(
    contract: ContractServer, context: Path, secret_env: SecretSpec
) -> None:
    build(request_for(context, secret_env))

    dirs = contract.calls("directory")
    uploads = [d for d in dirs if d.args.get("path") == str(context)]
    assert uploads, [d.args for d in dirs]
    assert uploads[0].args["exclude"] == [".git", "**/__pycache__", "!keep.pyc"]
    [written, *_] = contract.calls("withNewFile")
    assert written.args == {"path": "Dockerfile", "contents": DOCKERFILE}
    assert len(contract.calls("sync")) == 2  # no output requested: both variants built


@pytest.mark.parametrize(
    ("kind", "media"),
    [("oci", None), ("docker", "DockerMediaTypes")],
)
def test_export_writes_all_variants_to_dest(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    tmp_path: Path,
    kind: str,
    media: str | None,
) -> None:
    def engine_export(obj: Obj, args: dict[str, Any]) -> str:
        Path(args["path"]).write_bytes(b"tarball from the engine")
        return str(args["path"])

    contract.override("Container", "export", engine_export)
    dest = tmp_path / "image.tar"
    build(request_for(context, secret_env, output=f"type={kind},dest={dest}"))

    [export] = contract.calls("export")
    assert variant_platforms(contract, export.args["platformVariants"]) == ["linux/arm64"]
    assert export.args.get("mediaTypes") == media  # OCI is the default, so left out
    assert dest.read_bytes() == b"tarball from the engine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx", "image.tar"]  # no partial


def test_export_that_writes_nothing_fails_without_leaving_a_file(
    contract: ContractServer, context: Path, secret_env: SecretSpec, tmp_path: Path
) -> None:
    dest = tmp_path / "image.tar"
    with pytest.raises(BackendError, match="wrote no"):
        build(request_for(context, secret_env, output=f"type=oci,dest={dest}"))
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctx"]


def test_load_exports_docker_tarball_then_docker_load(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a stand-in docker CLI that checks it was handed a tarball and records its argv
    calls = tmp_path / "docker-calls"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'if [ "$1" = load ]; then test -s "$3" || exit 3; echo "Loaded image ID: sha256:feed"; fi\n'
    )
    fake.chmod(0o755)

    def engine_export(obj: Obj, args: dict[str, Any]) -> str:
        with tarfile.open(args["path"], "w") as tar:
            tar.addfile(tarfile.TarInfo("index.json"))
        return str(args["path"])

    contract.override("Container", "export", engine_export)
    executor = DaggerExecutor(log_output=None, docker=str(fake))
    request = request_for(context, secret_env, tags=("app:dev",), load=True)
    result = anyio.run(executor.run, request)

    [export] = contract.calls("export")
    assert export.args["mediaTypes"] == "DockerMediaTypes"
    assert result.image_id == "sha256:feed"
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("load -i ")
    assert lines[1] == "tag sha256:feed app:dev"


def test_exec_failure_names_the_step_and_hides_the_secret(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing_publish(obj: Obj, args: dict[str, Any]) -> str:
        raise ExecFailure(
            ["/bin/sh", "-c", f"echo {SECRET_VALUE} | login"],
            exit_code=7,
            stdout="step 1/3\n",
            stderr=f"token {SECRET_VALUE} rejected\nlogin: permission denied\n",
        )

    contract.override("Container", "publish", failing_publish)
    caplog.set_level(logging.DEBUG)
    lines: list[str] = []
    with pytest.raises(BuildError) as info:
        build(request_for(context, secret_env, tags=(f"{REGISTRY}/app:1",), push=True), lines)

    text = str(info.value)
    assert "exit code 7" in text
    assert info.value.step == "/bin/sh -c echo *** | login"
    assert info.value.output_tail[-2:] == ("token *** rejected", "login: permission denied")
    assert "query" not in text and "setSecret" not in text  # not a GraphQL dump
    assert info.value.__cause__ is None and info.value.__suppress_context__
    captured = capsys.readouterr()
    for where in (text, captured.out, captured.err, caplog.text, "\n".join(lines)):
        assert SECRET_VALUE not in where
    # the plaintext did travel to the session (that is the only place it goes)
    assert SECRET_VALUE in contract.all_text()


def test_secret_never_appears_in_successful_output(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    lines: list[str] = []
    result = build(request_for(context, secret_env, tags=(f"{REGISTRY}/a:1",), push=True), lines)
    dry = DaggerExecutor().dry_run(request_for(context, secret_env, push=True, tags=("r/a:1",)))
    captured = capsys.readouterr()
    assert lines, "the executor reports progress"
    for where in (
        repr(result),
        "\n".join(lines),
        caplog.text,
        captured.out,
        captured.err,
        dry,
    ):
        assert SECRET_VALUE not in where
    assert "hf_token" in dry and "env=HF_TOKEN" in dry


@pytest.fixture
def corrupt_wire(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Rewrite the query text on the wire, after the SDK built it (so only the server can tell)."""
    from gql.transport import httpx as gql_httpx

    def install(old: str, new: str) -> None:
        original = gql_httpx._HTTPXTransport._prepare_request

        def prepare(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            post_args = original(self, request, *args, **kwargs)
            payload = post_args.get("json")
            if isinstance(payload, dict) and "__schema" not in payload.get("query", ""):
                payload["query"] = payload["query"].replace(old, new)
            return post_args

        monkeypatch.setattr(gql_httpx._HTTPXTransport, "_prepare_request", prepare)

    return install


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("dockerBuild(", "dockerBuilds(", "Cannot query field 'dockerBuilds' on type 'Directory'"),
        ("target:", "stage:", "Unknown argument 'stage' on field 'Directory.dockerBuild'"),
    ],
)
def test_query_outside_the_schema_is_rejected(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    corrupt_wire: Any,
    old: str,
    new: str,
    complaint: str,
) -> None:
    corrupt_wire(old, new)
    with pytest.raises(BuildError) as info:
        build(request_for(context, secret_env, tags=(f"{REGISTRY}/a:1",), push=True))
    assert complaint in str(info.value)
    [rejected, *_] = contract.rejected()
    assert any(complaint in e for e in rejected.errors)
    assert SECRET_VALUE not in str(info.value)


def test_server_validates_with_the_full_rule_set(contract: ContractServer) -> None:
    # an unused fragment is only caught by NoUnusedFragmentsRule, an extra rule beyond parsing
    query = "{ version } fragment F on Query { version }"
    auth = (contract.token, "")
    url = f"http://127.0.0.1:{contract.port}/query"
    answer = httpx.post(url, json={"query": query}, auth=auth).json()
    assert answer["errors"][0]["message"] == "Fragment 'F' is never used."
    assert httpx.post(url, json={"query": "{ version }"}, auth=("wrong", "")).status_code == 401
    assert httpx.post(url, json={"query": "{ version }"}, auth=auth).json() == {
        "data": {"version": "v0.21.11"}
    }
    assert graphql.parse(query)  # the query itself is well-formed


def test_wrong_session_token_is_a_backend_error(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAGGER_SESSION_TOKEN", "not-the-token")
    with pytest.raises(BackendError, match="cannot connect to the session at 127.0.0.1") as info:
        build(request_for(context, secret_env))
    assert "docker" in str(info.value)  # names the other backends
    assert contract.unauthorized >= 1
    assert contract.api_requests() == []


def test_bad_requests_fail_before_any_session(
    contract: ContractServer, context: Path, secret_env: SecretSpec, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="one of --push, --load or --output"):
        build(request_for(context, secret_env, push=True, tags=("a:1",), output="dest=x.tar"))
    with pytest.raises(ConfigError, match="type 'registry' is not supported"):
        build(request_for(context, secret_env, output="type=registry,dest=x"))
    missing = SecretSpec(id="other", src=tmp_path / "absent")
    with pytest.raises(ConfigError, match="does not exist"):
        build(request_for(context, missing))
    (context / "Dockerfile").unlink()
    with pytest.raises(PipelineError, match="no Dockerfile 'Dockerfile'"):
        build(request_for(context, secret_env))
    assert contract.requests == []


def test_a_failed_connection_does_not_poison_the_next_build(
    contract: ContractServer,
    context: Path,
    secret_env: SecretSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the SDK's process-wide connection would keep the failed one; each build has its own
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    monkeypatch.setenv("DAGGER_SESSION_PORT", str(dead_port))
    with pytest.raises(BackendError, match=f"127.0.0.1:{dead_port}"):
        build(request_for(context, secret_env))
    monkeypatch.setenv("DAGGER_SESSION_PORT", str(contract.port))
    build(request_for(context, secret_env))
    assert len(contract.calls("dockerBuild")) == 2


def test_object_arguments_must_be_ids_of_the_expected_type(contract: ContractServer) -> None:
    auth = (contract.token, "")
    url = f"http://127.0.0.1:{contract.port}/query"

    def query(text: str) -> Any:
        return httpx.post(url, json={"query": text}, auth=auth).json()

    secret = query('{ setSecret(name: "s", plaintext: "v") { id } }')["data"]["setSecret"]["id"]
    container = query("{ container { id } }")["data"]["container"]["id"]
    good = query(f'{{ directory {{ dockerBuild(secrets: ["{secret}"]) {{ id }} }} }}')
    assert "errors" not in good
    wrong = query(f'{{ directory {{ dockerBuild(secrets: ["{container}"]) {{ id }} }} }}')
    assert wrong["errors"][0]["message"] == (
        "dockerBuild.secrets: expected a Secret id, got a Container"
    )
    unknown = query('{ directory { dockerBuild(secrets: ["made-up"]) { id } } }')
    assert "unknown id 'made-up'" in unknown["errors"][0]["message"]


def test_required_secret_missing_fails_before_any_session(
    contract: ContractServer, context: Path
) -> None:
    (context / "Dockerfile").write_text(
        "FROM python:3.11-slim\nRUN --mount=type=secret,id=hf_token,required=true true\n"
    )
    with pytest.raises(ConfigError, match="mounts secret 'hf_token' \\(required=true\\)"):
        build(BuildRequest(context=context))
    assert contract.requests == []


def test_export_reports_the_digest_from_the_oci_index(
    contract: ContractServer, context: Path, secret_env: SecretSpec, tmp_path: Path
) -> None:
    index_digest = "sha256:" + "cd" * 32

    def engine_export(obj: Obj, args: dict[str, Any]) -> str:
        index = json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": index_digest,
                    }
                ],
            }
        ).encode()
        with tarfile.open(args["path"], "w") as tar:
            info = tarfile.TarInfo("index.json")
            info.size = len(index)
            tar.addfile(info, io.BytesIO(index))
        return str(args["path"])

    contract.override("Container", "export", engine_export)
    dest = tmp_path / "image.tar"
    result = build(request_for(context, secret_env, output=f"type=oci,dest={dest}"))
    assert result.digest == index_digest


def test_dockerfile_outside_the_context_is_written_into_it(
    contract: ContractServer, context: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM python:3.11-slim\n")
    build(BuildRequest(context=context, dockerfile=str(outside)))
    [written] = contract.calls("withNewFile")
    assert written.args == {"path": "Dockerfile.pipeline", "contents": "FROM python:3.11-slim\n"}
    [docker_build] = contract.calls("dockerBuild")
    assert docker_build.args["dockerfile"] == "Dockerfile.pipeline"


def test_concurrent_builds_in_one_process_do_not_share_a_session(
    contract: ContractServer, context: Path, secret_env: SecretSpec
) -> None:
    # a matrix runs cells concurrently: the fast build ending must not close the slow one's
    def slow_publish(obj: Obj, args: dict[str, Any]) -> str:
        if args["address"].endswith(":slow"):
            time.sleep(0.5)
        return f"{args['address']}@{FAKE_DIGEST}"

    contract.override("Container", "publish", slow_publish)
    executor = DaggerExecutor(log_output=None)
    results: dict[str, Any] = {}

    async def one(tag: str) -> None:
        request = request_for(context, secret_env, tags=(f"{REGISTRY}/app:{tag}",), push=True)
        results[tag] = await executor.run(request)

    async def both() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(one, "slow")
            await anyio.sleep(0.1)
            group.start_soon(one, "fast")

    anyio.run(both)
    assert {tag: r.digest for tag, r in results.items()} == {
        "slow": FAKE_DIGEST,
        "fast": FAKE_DIGEST,
    }
    assert len(contract.calls("publish")) == 2
