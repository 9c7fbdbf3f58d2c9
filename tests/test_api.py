"""pipeline.api: option validation (shared by the CLI), the CA bundle secret, dry runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline
from pipeline import api, cacert
from pipeline.config import Bento
from pipeline.errors import BackendError, ConfigError, PipelineError
from pipeline.graph import default_graph
from pipeline.request import SecretSpec

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello"
PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


@pytest.fixture(autouse=True)
def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    for var in ("PIPELINE_BACKEND", "BENTOML_CONTAINERIZE_BACKEND", "DOCKER_BUILDKIT"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("network=host", ("network", "host")),
        ("network:host", ("network", "host")),
        ("pull", ("pull", None)),
        ("--pull", ("pull", None)),
        ("build-arg=A=1", ("build-arg", "A=1")),
        ("label=a:b", ("label", "a:b")),
        ("add-host:h:1.2.3.4", ("add-host", "h:1.2.3.4")),
    ],
)
def test_parse_opt(text: str, expected: tuple[str, str | None]) -> None:
    assert api.parse_opt(text) == expected


@pytest.mark.parametrize("text", ["=x", "", "bad key=1", ":v", "9lives=1"])
def test_malformed_opt_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="malformed --opt") as info:
        api.parse_opt(text)
    assert info.value.field == "--opt"


def test_opts_for_first_class_options_are_folded_in() -> None:
    options = api.parse_options(
        opts=[
            "platform=linux/arm64",
            "build-arg=A=1",
            "label=team=ml",
            "no-cache",
            "target:base",
            "network=host",
            "shm-size=1g",
        ]
    )
    assert options.platforms == ("linux/arm64",)
    assert options.build_args == {"A": "1"}
    assert options.labels == {"team": "ml"}
    assert options.no_cache is True
    assert options.target == "base"
    assert options.network == "host"
    assert options.opts == (("shm-size", "1g"),)
    more = api.parse_options(
        tags=["a:1"],
        target="cli-target",
        opts=[
            "tag=b:2",
            "cache-from=r/app:cache",
            "cache_to=type=inline",
            "progress=plain",
            "output=type=local,dest=out",
            "target=from-opt",
        ],
    )
    assert more.tags == ("a:1", "b:2")
    assert more.cache_from == ("r/app:cache",) and more.cache_to == ("type=inline",)
    assert more.progress == "plain" and more.output == "type=local,dest=out"
    assert more.target == "from-opt"
    assert more.opts == ()
    flags = api.parse_options(opts=["push=true", "load=0", "no_cache=no"])
    assert (flags.push, flags.load, flags.no_cache) == (True, False, False)
    with pytest.raises(ConfigError, match="--opt tag needs a value"):
        api.parse_options(opts=["tag"])


@pytest.mark.parametrize("arg", ["NOEQUALS", "1BAD=x", "has space=x", "=v"])
def test_malformed_build_arg(arg: str) -> None:
    with pytest.raises(ConfigError, match="--build-arg"):
        api.parse_options(build_args=[arg])


def test_build_args_mapping_and_strings() -> None:
    options = api.parse_options(build_args=["A=1", "B=x=y", "C="])
    assert options.build_args == {"A": "1", "B": "x=y", "C": ""}
    assert api.parse_options(build_args={"K": "V"}).build_args == {"K": "V"}


def test_platforms_are_normalized_and_validated() -> None:
    options = api.parse_options(platforms=["linux/amd64,arm64", "linux/arm64/v8"])
    assert options.platforms == ("linux/amd64", "linux/arm64")
    with pytest.raises(ConfigError, match="malformed platform"):
        api.parse_options(platforms="linux/amd64/x/y")
    with pytest.raises(ConfigError, match="empty platform"):
        api.parse_options(platforms="linux/amd64,")


def test_tags_must_be_valid_references() -> None:
    assert api.parse_tags(["127.0.0.1:5000/a/b:1.0", "x"]) == ("127.0.0.1:5000/a/b:1.0", "x")
    with pytest.raises(ConfigError, match="did you mean 'hello:v1'"):
        api.parse_tags("Hello:v1")
    with pytest.raises(ConfigError, match="invalid image tag"):
        api.parse_tags("bad tag")


def test_secret_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        api.parse_options(secrets=[f"id=aws,src={tmp_path / 'nope'}"])
    assert info.value.field == "--secret" and info.value.exit_code == 2


def test_secret_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE is not set"):
        api.parse_options(secrets=["id=x,env=NOT_SET_ANYWHERE"])


def test_duplicate_secret_ids(tmp_path: Path) -> None:
    f = tmp_path / "s"
    f.write_text("x")
    with pytest.raises(ConfigError, match="given twice"):
        api.parse_options(secrets=[f"id=a,src={f}", SecretSpec(id="a", src=f)])


def test_exclusive_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--push and --output"):
        api.parse_options(push=True, output="type=local,dest=x")
    with pytest.raises(ConfigError, match="unknown progress mode 'fancy'"):
        api.parse_options(progress="fancy")


def test_ca_cert_must_be_a_pem_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        api.parse_options(ca_cert=tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        api.parse_options(ca_cert=junk)


def test_ca_bundle_is_system_bundle_plus_cert_and_removed(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text(PEM)
    with cacert.ca_bundle_secret(cert) as secret:
        assert secret.id == "ca_cert" and secret.src is not None
        bundle = secret.src
        text = bundle.read_text()
        assert text.rstrip().endswith(PEM.rstrip())
        system = cacert.system_ca_bundle()
        if system is not None:
            assert text.startswith(system.read_text()[:200])
        assert (bundle.stat().st_mode & 0o777) == 0o600
    assert not bundle.exists() and not bundle.parent.exists()


def test_ca_secret_id_is_reserved(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text(PEM)
    with pytest.raises(ConfigError, match="reserved for --ca-cert"):
        api.parse_options(ca_cert=cert, secrets=[f"id=ca_cert,src={cert}"])


def test_default_tag_is_lowercased_bento_tag() -> None:
    from pipeline.config import Bento

    bento = Bento(name="My_Service", version="ABC123", path=Path("/x"))
    assert api.default_tag(bento) == "my_service:abc123"


def test_dry_run_renders_and_shows_the_exact_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_FOR_TEST", "plaintext-token-value")
    plan = api.dry_run(
        HELLO,
        backend="buildx",
        tags=["hello:test"],
        secrets=["id=tok,env=TOKEN_FOR_TEST"],
        build_args=["A=1"],
    )
    assert plan.backend == "buildx"
    # the context is made at build time: the plan names it <context>, never a temp path
    assert plan.command.startswith("docker buildx build --file <context>/Dockerfile ")
    assert "/tmp" not in plan.command
    assert "--secret id=tok,env=TOKEN_FOR_TEST" in plan.command
    assert "plaintext-token-value" not in plan.command + plan.dockerfile
    assert plan.dockerfile.startswith("FROM ")
    # the temporary context used for the argv is gone afterwards
    context = plan.command.split()[-1]
    assert not Path(context).exists()


def test_dry_run_with_ca_cert_mounts_the_bundle_as_a_secret(tmp_path: Path) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text(PEM)
    plan = api.dry_run(HELLO, backend="docker", ca_cert=cert)
    assert "--secret id=ca_cert,src=" in plan.command
    bundle = plan.command.split("id=ca_cert,src=")[1].split()[0]
    assert not Path(bundle).exists()  # removed after the (dry) run


def test_classic_docker_refuses_ca_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert = tmp_path / "corp.pem"
    cert.write_text(PEM)
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    with pytest.raises(PipelineError, match="BuildKit"):
        api.dry_run(HELLO, backend="docker", ca_cert=cert)


def test_unknown_backend_via_api() -> None:
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        pipeline.build(HELLO, backend="nope")


def test_build_validates_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--opt"):
        pipeline.build(HELLO, backend="docker", opts=["=oops"])


def test_step_origin_without_instructions_guesses_from_the_text(tmp_path: Path) -> None:
    from pipeline.config import Bento, DockerOptions

    template = tmp_path / "Dockerfile.template"
    template.write_text("{% block X %}\nRUN echo   custom-step\n{% endblock %}\n")
    bento = Bento(
        name="b",
        version="1",
        path=tmp_path,
        docker=DockerOptions(dockerfile_template="Dockerfile.template"),
    )
    assert api.step_origin("[base 3/7] RUN echo custom-step", bento) == (
        f"{template} (docker: dockerfile_template)"
    )
    assert api.step_origin("[base 2/7] RUN apt-get install -y foo", bento) == (
        "docker: system_packages"
    )
    assert "requirements_txt" in str(
        api.step_origin("STEP 5/9: RUN /app/.venv/bin/pip install -r x", bento)
    )
    assert api.step_origin("[base 1/7] FROM python:3.11-slim", bento) is not None
    assert api.step_origin("[base 4/7] COPY . .", bento) is None


def _origin_bento(root: Path) -> tuple[Bento, Path]:
    """debian/3.11 with curl, one package and a template adding `RUN exit 3` to two blocks."""
    from pipeline.config import Bento, DockerOptions, PythonOptions

    root.mkdir()
    template = root / "Dockerfile.template"
    template.write_text(
        "{% extends bento_base_template %}\n"
        "{% block SETUP_BENTO_USER %}\n"
        "{{ super() }}\n"
        "RUN exit 3\n"
        "{% endblock %}\n"
        "{% block SETUP_BENTO_COMPONENTS %}\n"
        "{{ super() }}\n"
        "RUN exit 3\n"
        "{% endblock %}\n"
    )
    bento = Bento(
        name="b",
        version="1",
        path=root,
        docker=DockerOptions(
            distro="debian",
            python_version="3.11",
            system_packages=("curl",),
            dockerfile_template="Dockerfile.template",
        ),
        python=PythonOptions(packages=("requests==2.32.3",)),
    )
    return bento, template


# The failing steps as each engine names them, for _origin_bento's Dockerfile:
# (BuildKit, classic docker builder, buildah/podman) -> what produced it. The RUN exit 3 of the
# components block is BuildKit's step 9 of 10 and instruction 11 of 16.
_APT = (
    "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked     "
    "--mount=type=cache,target=/var/lib/apt,sharing=locked     export "
    "DEBIAN_FRONTEND=noninteractive && apt-get update -q && apt-get install -q -y "
    "--no-install-recommends curl"
)
_PIP = (
    "RUN --mount=type=cache,target=/root/.cache/pip     --mount=type=cache,target=/root/.cache/uv"
    "     cd /home/bentoml/bento && python3 -m venv --without-pip /app/.venv && python3 -m venv "
    "/tmp/uv && /tmp/uv/bin/pip install -q uv==0.13.9 && export UV_COMPILE_BYTECODE=1 && "
    "/tmp/uv/bin/uv pip install --python /app/.venv/bin/python -r "
    "/home/bentoml/bento/env/python/requirements.txt && rm -rf /tmp/uv"
)
STEPS = {
    "components exit": (
        "#14 [9/10] RUN exit 3", "STEP 11/16: RUN exit 3", "STEP 11/16: RUN exit 3",
        "block SETUP_BENTO_COMPONENTS in template {template}:8 (docker.dockerfile_template)",
    ),
    "user exit": (
        "#9 [4/10] RUN exit 3", "STEP 5/16: RUN exit 3", "STEP 5/16: RUN exit 3",
        "block SETUP_BENTO_USER in template {template}:4 (docker.dockerfile_template)",
    ),
    "pip install": (
        f"[7/10] {_PIP}", f"STEP 9/16: {_PIP}", f"STEP 9/16: {_PIP}",
        "block SETUP_BENTO_COMPONENTS in built-in stage components "
        "(python.packages / python.requirements_txt)",
    ),
    "system packages": (
        f"[2/10] {_APT}", f"STEP 3/16: {_APT}", f"STEP 3/16: {_APT}",
        "block SETUP_BENTO_BASE_IMAGE in built-in stage base (docker.system_packages)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("engine", [0, 1, 2], ids=["buildkit", "classic", "buildah"])
@pytest.mark.parametrize("case", list(STEPS))
def test_step_origin_names_the_block_and_field_or_template_line(
    tmp_path: Path, engine: int, case: str
) -> None:
    from pipeline.origins import instruction_origins

    bento, template = _origin_bento(tmp_path / "b")
    # the step numbers below are the single-stage layout's (the default one is covered by
    # tests/test_plan.py and the engine tests)
    instructions = instruction_origins(bento, graph=default_graph(buildstage=False))
    step, expected = STEPS[case][engine], STEPS[case][3]
    assert api.step_origin(step, bento, instructions) == expected.format(template=template)


def test_a_project_that_fails_to_render_stores_nothing(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "service.py").write_text("svc = None\n")
    (project / "bentofile.yaml").write_text(
        'service: "service:svc"\ndocker:\n  dockerfile_template: Dockerfile.j2\n'
    )
    (project / "Dockerfile.j2").write_text(
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_USER %}\n"
        "RUN echo {{ no_such_variable }}\n{% endblock %}\n"
    )
    with pytest.raises(PipelineError) as caught:
        api.dry_run(project, backend="docker")
    # the user's template (not the store's copy of it), and nothing stored
    assert (caught.value.file, caught.value.line) == (str(project / "Dockerfile.j2"), 3)
    assert not (tmp_path / "store").exists()
    plan = api.dry_run(HELLO, backend="docker")  # a good project is not stored either
    assert not (tmp_path / "store").exists()
    assert plan.dockerfile.startswith("FROM ")


def test_a_graph_with_a_user_stage_is_rendered_and_built_on() -> None:
    from pipeline.graph import Stage, default_graph

    graph = default_graph().add(
        Stage("marker", instructions=["RUN echo built-by-graph > /etc/graph-marker"]),
        after="components",
    )
    plan = api.dry_run(HELLO, backend="docker", graph=graph)
    lines = plan.dockerfile.splitlines()
    assert "RUN echo built-by-graph > /etc/graph-marker" in lines
    marker = lines.index("RUN echo built-by-graph > /etc/graph-marker")
    assert lines.index("COPY --chown=1034:1034 . ./") < marker < lines.index("EXPOSE 3000")
    assert api.dry_run(HELLO, backend="docker").dockerfile.count("graph-marker") == 0


# ---------------------------------------------------------------------------------------------
# bentoml.container.build's keyword names


def test_bentoml_keyword_names_are_aliases(tmp_path: Path) -> None:
    """``bentoml.container.build(bento_tag, backend, image_tag=..., build_arg=..., ...)`` as a
    BentoML user writes it: every name lands in our option of the same meaning."""
    (tmp_path / "creds").write_text("s3cr3t")
    prepared = api.prepare(
        bento_tag=str(ROOT / "tests" / "fixtures" / "bento_v1_4"),  # pins bentoml: features
        backend="docker",
        image_tag=("svc:1",),
        build_arg={"A": "1"},
        label={"team": "ml"},
        secret=f"id=aws,src={tmp_path / 'creds'}",
        platform="linux/amd64",
        add_host={"db": "10.0.0.2"},
        cache_from={"type": "local", "src": str(tmp_path)},
        cache_to="type=inline",
        iidfile=tmp_path / "iid",
        metadata_file=str(tmp_path / "meta.json"),
        network="host",
        no_cache=True,
        output="type=local,dest=out",
        progress="plain",
        pull=True,
        quiet=True,
        ssh="default",
        target="base-container",
        features=["grpc"],
    )
    options = prepared.options
    assert prepared.tags == ("svc:1",) and prepared.selection.name == "docker"
    assert options.build_args == {"A": "1"} and options.labels["team"] == "ml"
    assert options.labels["org.opencontainers.image.title"] == prepared.bento.name
    assert [s.id for s in options.secrets] == ["aws"]
    assert options.platforms == ("linux/amd64",) and options.add_hosts == ("db:10.0.0.2",)
    assert options.cache_from == (f"type=local,src={tmp_path}",)
    assert options.cache_to == ("type=inline",)
    assert options.iidfile == tmp_path / "iid" and options.metadata_file == tmp_path / "meta.json"
    assert (options.network, options.no_cache, options.pull, options.quiet) == (
        "host", True, True, True,
    )  # fmt: skip
    assert options.output == "type=local,dest=out" and options.progress == "plain"
    assert options.ssh == ("default",) and options.target == "base-container"
    assert options.features == ("grpc",) and options.opts == ()
    with api.build_request(prepared) as request:
        assert (request.network, request.pull, request.quiet) == ("host", True, True)
        assert request.add_hosts == ("db:10.0.0.2",) and request.iidfile == tmp_path / "iid"


def test_bentoml_backend_is_the_second_positional_argument() -> None:
    plan = api.dry_run(str(HELLO), "buildah", tag="svc:2", enable_features=None)
    assert plan.backend == "buildah" and plan.tags == ("svc:2",)


def test_bentoml_engine_flags_become_opts() -> None:
    """BentoML's per-engine kwargs we have no keyword for are passed to the engine, converted as
    BentoML converts them (True a flag, False nothing, lists repeated, dicts k=v)."""
    options = api.parse_options(
        opts=["a=1"],
        allow="network.host",
        shm_size="1g",
        ulimit={"nofile": (1024, 2048)},
        cap_add=["NET_ADMIN", "SYS_PTRACE"],
        squash=True,
        rm=False,
        pull_never=None,
    )
    assert options.opts == (
        ("a", "1"),
        ("allow", "network.host"),
        ("shm-size", "1g"),
        ("ulimit", "nofile=1024:2048"),
        ("cap-add", "NET_ADMIN"),
        ("cap-add", "SYS_PTRACE"),
        ("squash", None),
    )


@pytest.mark.parametrize(
    ("pull", "expected", "opts"),
    [
        (True, True, ()),
        ("always", True, ()),
        ("true", True, ()),
        (False, False, ()),
        ("missing", False, ()),
        ("never", False, (("pull", "never"),)),
        ("newer", False, (("pull", "newer"),)),
    ],
)
def test_pull_takes_podmans_policies(
    pull: bool | str, expected: bool, opts: tuple[tuple[str, str], ...]
) -> None:
    options = api.parse_options(pull=pull)
    assert (options.pull, options.opts) == (expected, opts)


@pytest.mark.parametrize(
    ("keywords", "message", "field"),
    [
        ({"colour": "red"}, "unknown keyword colour=; allowed: 'bento', 'bento_tag'", "colour"),
        ({"graf": None}, "unknown keyword graf= (did you mean 'graph'?)", "graf"),
        ({"image_tags": "x:1"}, "unknown keyword image_tags= (did you mean 'image_tag'?)", None),
        ({"file": "Dockerfile"}, "file= is not supported: the Dockerfile is rendered", "file"),
        ({"context_path": "."}, "context_path= is not supported", "context_path"),
        ({"tags": ["a:1"], "image_tag": ["b:1"]}, "tags= and image_tag= are the same", None),
        ({"secret": "id=a,env=HOME", "secrets": []}, "secret= and secrets= are the same", None),
    ],
)
def test_unknown_or_refused_keywords_are_config_errors(
    keywords: dict[str, object], message: str, field: str | None
) -> None:
    with pytest.raises(ConfigError) as info:
        pipeline.build(HELLO, backend="docker", **keywords)  # type: ignore[arg-type]
    assert message in str(info.value)
    if field:
        assert info.value.field == field


def test_unknown_keyword_lists_bentomls_names_too() -> None:
    with pytest.raises(ConfigError) as info:
        api.dry_run(HELLO, backend="docker", bogus=1)
    text = str(info.value)
    assert "'image_tag'" in text and "'build_arg'" in text and "'add_hosts'" in text
    assert "passed as opts" in text


def test_bento_given_twice_or_not_at_all() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        api.dry_run(HELLO, backend="docker", bento_tag="hello:latest")
    with pytest.raises(ConfigError, match="no bento given") as info:
        pipeline.build(backend="docker")
    assert info.value.field == "bento"


def test_a_build_error_gets_its_origin_as_a_new_error() -> None:
    from pipeline.errors import BuildError, RegistryAuthError

    raised = RegistryAuthError("refused", registry="127.0.0.1:5001", backend="podman", step="push")
    named = raised.with_origin("block SETUP_BENTO_X in built-in stage x")
    assert isinstance(named, RegistryAuthError) and named.registry == "127.0.0.1:5001"
    assert named.origin == "block SETUP_BENTO_X in built-in stage x" and raised.origin is None
    assert "produced by: block SETUP_BENTO_X" in str(named)
    assert isinstance(BuildError("x").with_origin(None), BuildError)
