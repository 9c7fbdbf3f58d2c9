"""The Dagger module: dagger.json, registration and its functions with the contract server."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from dagger_contract import FAKE_DIGEST, ContractServer, Obj

from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
BENTO_WITH_PACKAGES = ROOT / "tests" / "fixtures" / "bento_v1_2"  # apt + pip steps
SECRET_VALUE = "module-secret-value-7731"

# dagger.json keys per Dagger's module config (core/modules/config.go, JSON schema
# docs/static/reference/dagger.schema.json, v0.21).
CONFIG_KEYS = {
    "$schema",
    "name",
    "engineVersion",
    "sdk",
    "source",
    "include",
    "exclude",
    "dependencies",
    "codegen",
    "clients",
    "toolchains",
    "blueprint",
    "disableDefaultFunctionCaching",
}
SDK_KEYS = {"source", "config", "debug", "experimental"}


@pytest.fixture(scope="module")
def module_main() -> Any:
    sys.path.insert(0, str(ROOT / ".dagger" / "src"))
    try:
        return importlib.import_module("bento_pipeline_dagger.main")
    finally:
        sys.path.remove(str(ROOT / ".dagger" / "src"))


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with dagger.connection(dagger.Config(retry=None)):
            return await fn()

    return anyio.run(main)


@pytest.fixture
def engine(
    contract: ContractServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[ContractServer]:
    """The contract server acting a little more like an engine: host directories can be
    exported (copied), and secrets know their name, URI and plaintext."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("HF_TOKEN", SECRET_VALUE)

    def export_directory(obj: Obj, args: dict[str, Any]) -> str:
        source = obj.find("Host", "directory")
        assert source is not None, "only host directories can be exported here"
        shutil.copytree(source.arg("path"), args["path"])
        return str(args["path"])

    def secret_field(name: str) -> Callable[[Obj, dict[str, Any]], str]:
        def answer(obj: Obj, args: dict[str, Any]) -> str:
            named = obj.find("Query", "setSecret")
            by_uri = obj.find("Query", "secret")
            if named is not None:
                return {"name": named.arg("name"), "uri": "", "plaintext": named.arg("plaintext")}[
                    name
                ]
            assert by_uri is not None
            uri = by_uri.arg("uri")
            value = os.environ[uri.removeprefix("env://")]
            return {"name": "", "uri": uri, "plaintext": value}[name]

        return answer

    def export_file(obj: Obj, args: dict[str, Any]) -> str:
        source = obj.find("Host", "file")
        assert source is not None, "only host files can be exported here"
        shutil.copyfile(source.arg("path"), args["path"])
        return str(args["path"])

    contract.override("Directory", "export", export_directory)
    contract.override("File", "export", export_file)
    for name in ("name", "uri", "plaintext"):
        contract.override("Secret", name, secret_field(name))
    yield contract


def test_dagger_json_is_a_valid_module_config() -> None:
    config = json.loads((ROOT / "dagger.json").read_text())
    assert set(config) <= CONFIG_KEYS
    assert isinstance(config["name"], str) and config["name"]
    assert re.fullmatch(r"v0\.21\.\d+", config["engineVersion"])
    assert config["sdk"]["source"] == "python" and set(config["sdk"]) <= SDK_KEYS
    source = ROOT / config["source"]
    assert (source / "pyproject.toml").is_file()
    assert all(isinstance(p, str) for p in config["include"])
    # the module imports the pipeline packages from the repository root
    for package in ("pipeline/**", "render/**"):
        assert package in config["include"]
    pyproject = (source / "pyproject.toml").read_text()
    assert 'main_object = "bento_pipeline_dagger:BentoPipeline"' in pyproject


def test_module_source_finds_the_repository(module_main: Any) -> None:
    assert module_main._repo_root() == ROOT
    assert module_main.BentoPipeline.__name__ == "BentoPipeline"


def test_module_registers_its_functions(
    engine: ContractServer, module_main: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = module_main.BentoPipeline.__dagger_module__
    # what the runtime does from DAGGER_MAIN_OBJECT (the PascalCase module name)
    monkeypatch.setattr(module, "_main_name", "BentoPipeline")
    monkeypatch.setattr(module, "_main", module.get_object("BentoPipeline"))
    run(module._typedefs)

    assert engine.rejected() == []
    functions = [c.args["name"] for c in engine.calls("function")]
    assert sorted(functions) == ["", "build", "dockerfile", "export", "publish"]  # "" = constructor
    args = [c.args["name"] for c in engine.calls("withArg")]
    for name in ("bento", "platforms", "secrets", "secret_ids", "build_args", "target", "address"):
        assert name in args
    # every function documents its shared arguments alike (one Annotated alias each)
    docs: dict[str, set[str]] = {}
    for call in engine.calls("withArg"):
        docs.setdefault(call.args["name"], set()).add(call.args.get("description") or "")
    assert len([c for c in engine.calls("withArg") if c.args["name"] == "bento"]) == 4
    for name in ("bento", "platforms", "secrets", "secret_ids", "build_args", "ca_cert"):
        assert len(docs[name]) == 1 and "" not in docs[name], (name, docs[name])
    assert "bento.yaml" in docs["bento"].pop()


def test_dockerfile_function_renders_like_the_cli(engine: ContractServer, module_main: Any) -> None:
    from pipeline.api import prepare

    async def call() -> str:
        file = await module_main.BentoPipeline().dockerfile(dag.host().directory(str(HELLO)))
        return await file.id()

    run(call)
    [created] = engine.calls("file")
    assert created.args["name"] == "Dockerfile"
    expected = prepare(HELLO, backend="dagger").dockerfile
    assert created.args["contents"] == expected
    assert "FROM python:3.11-slim" in expected


def test_publish_builds_every_platform_with_named_secrets(
    engine: ContractServer, module_main: Any
) -> None:
    async def call() -> str:
        result: str = await module_main.BentoPipeline().publish(
            "registry.test/hello:1",
            dag.host().directory(str(HELLO)),
            platforms=["linux/amd64", "linux/arm64"],
            secrets=[dag.secret("env://HF_TOKEN")],
            build_args=["GREETING=hi"],
        )
        return result

    assert run(call) == f"registry.test/hello:1@{FAKE_DIGEST}"
    assert engine.rejected() == []
    builds = engine.calls("dockerBuild")
    assert sorted(b.args["platform"] for b in builds) == ["linux/amd64", "linux/arm64"]
    for call_ in builds:
        assert call_.args["buildArgs"] == [{"name": "GREETING", "value": "hi"}]
        [secret_ref] = call_.args["secrets"]
        assert engine.origin(secret_ref).find("Query", "setSecret").arg("name") == "HF_TOKEN"  # type: ignore[union-attr]
    # the context was uploaded from a rendered temp dir and loaded before it was removed
    [upload] = [d for d in engine.calls("directory") if "bento-context" in str(d.args.get("path"))]
    assert not Path(upload.args["path"]).exists()
    [publish] = engine.calls("publish")
    [variant] = publish.args["platformVariants"]
    step = engine.origin(variant).find("Directory", "dockerBuild")
    assert step is not None and step.arg("platform") == "linux/arm64"


@pytest.mark.parametrize(("docker", "media"), [(False, None), (True, "DockerMediaTypes")])
def test_export_returns_one_tarball_of_all_platforms(
    engine: ContractServer, module_main: Any, docker: bool, media: str | None
) -> None:
    async def call() -> str:
        tarball = await module_main.BentoPipeline().export(
            dag.host().directory(str(HELLO)),
            platforms=["linux/amd64", "linux/arm64"],
            docker=docker,
        )
        return await tarball.id()

    run(call)
    [as_tarball] = engine.calls("asTarball")
    assert len(as_tarball.args["platformVariants"]) == 1
    assert as_tarball.args.get("mediaTypes") == media


def test_build_returns_the_container(engine: ContractServer, module_main: Any) -> None:
    async def call() -> str:
        container = await module_main.BentoPipeline().build(
            dag.host().directory(str(HELLO)), platforms=["linux/arm64"], target="base-container"
        )
        return await container.id()

    assert run(call).startswith("fake-Container-")
    [build] = engine.calls("dockerBuild")
    assert build.args["platform"] == "linux/arm64"
    assert build.args["target"] == "base-container"


def test_secret_ids_must_match_secrets(engine: ContractServer, module_main: Any) -> None:
    async def call() -> Any:
        return await module_main.BentoPipeline().build(
            dag.host().directory(str(HELLO)),
            secrets=[dag.secret("env://HF_TOKEN")],
            secret_ids=["a", "b"],
        )

    with pytest.raises(ConfigError, match="1 secret\\(s\\) but 2 secret id\\(s\\)"):
        run(call)
    assert engine.calls("dockerBuild") == []


def test_module_invocation_like_the_runtime(
    engine: ContractServer, module_main: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `dagger call publish --bento=... --platforms=... --secrets=env://HF_TOKEN` does in the
    module container: the SDK reads the call from the API, decodes the arguments (IDs into
    Directory/Secret objects), runs the function and returns its value as JSON."""
    module = module_main.BentoPipeline.__dagger_module__
    monkeypatch.setattr(module, "_main_name", "BentoPipeline")
    monkeypatch.setattr(module, "_main", module.get_object("BentoPipeline"))

    async def ids() -> tuple[str, str]:
        return (
            await dag.host().directory(str(HELLO)).id(),
            await dag.secret("env://HF_TOKEN").id(),
        )

    bento_id, secret_id = run(ids)
    inputs = {
        "address": "registry.test/hello:2",
        "bento": bento_id,
        "platforms": ["linux/amd64", "linux/arm64"],
        "secrets": [secret_id],
    }
    returned: list[str] = []
    engine.override("FunctionCall", "parentName", lambda obj, args: "BentoPipeline")
    engine.override("FunctionCall", "name", lambda obj, args: "publish")
    engine.override("FunctionCall", "parent", lambda obj, args: "{}")
    engine.override(
        "FunctionCall",
        "inputArgs",
        lambda obj, args: [
            Obj("FunctionCallArgValue", data={"name": k, "value": json.dumps(v)})
            for k, v in inputs.items()
        ],
    )
    engine.override("FunctionCall", "returnValue", lambda obj, args: returned.append(args["value"]))

    run(module.serve)

    assert engine.rejected() == []
    assert [json.loads(v) for v in returned] == [f"registry.test/hello:2@{FAKE_DIGEST}"]
    builds = engine.calls("dockerBuild")
    assert sorted(b.args["platform"] for b in builds) == ["linux/amd64", "linux/arm64"]
    [secret_ref] = builds[0].args["secrets"]
    assert engine.origin(secret_ref).find("Query", "setSecret").arg("name") == "HF_TOKEN"  # type: ignore[union-attr]


@pytest.mark.filterwarnings("ignore:--ca-cert. the system CA bundle")
def test_ca_cert_is_mounted_as_a_secret_not_uploaded(
    engine: ContractServer, module_main: Any, tmp_path: Path
) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBproxyCA\n-----END CERTIFICATE-----"
    cert = tmp_path / "proxy-ca.pem"
    cert.write_text(pem + "\n")

    async def call() -> str:
        container = await module_main.BentoPipeline().build(
            dag.host().directory(str(BENTO_WITH_PACKAGES)), ca_cert=dag.host().file(str(cert))
        )
        return await container.id()

    run(call)
    [dockerfile] = [c for c in engine.calls("withNewFile") if c.args["path"] == "Dockerfile"]
    assert "/run/secrets/ca_cert" in dockerfile.args["contents"]
    [build] = engine.calls("dockerBuild")
    [secret_ref] = build.args["secrets"]
    step = engine.origin(secret_ref).find("Query", "setSecret")
    assert step is not None and step.arg("name") == "ca_cert"
    assert pem in step.arg("plaintext")
    # the certificate travels only as the secret, never in the uploaded context
    [upload] = [d for d in engine.calls("directory") if "bento-context" in str(d.args.get("path"))]
    [cert_export] = [e for e in engine.calls("export") if e.args["path"].endswith(".pem")]
    assert not Path(cert_export.args["path"]).is_relative_to(upload.args["path"])
