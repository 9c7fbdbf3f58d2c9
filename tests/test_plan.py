"""Build contexts (write_context / temporary_context), the entrypoint script, and where each
Dockerfile instruction comes from (instruction_origins / find_step)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from attrs import evolve

from pipeline.config import Bento, DockerOptions, PythonOptions
from pipeline.context import temporary_context, write_context
from pipeline.dockerfile import Instruction, Origin, parse_dockerfile
from pipeline.errors import ConfigError
from pipeline.graph import Stage, default_graph
from pipeline.origins import find_step, instruction_origins
from pipeline.rendering import (
    CA_CERT_SECRET_ID,
    RenderOptions,
    entrypoint_script,
    render_dockerfile,
)


def make_bento(root: Path, **docker: object) -> Bento:
    (root / "src").mkdir(parents=True)
    (root / "bento.yaml").write_text("service: service:svc\n", encoding="utf-8")
    (root / "src" / "service.py").write_text("print('hi')\n", encoding="utf-8")
    options = {"python_version": "3.11", **docker}
    return Bento(
        name="demo",
        version="v1",
        path=root,
        docker=DockerOptions(**options),  # type: ignore[arg-type]
    )


def test_ca_cert_secret_id() -> None:
    assert CA_CERT_SECRET_ID == "ca_cert"
    assert RenderOptions() == RenderOptions(
        template=None, buildkit=True, ca_cert=False, strict=False
    )


def test_write_context_contents(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    dockerfile = render_dockerfile(bento)
    dest = write_context(bento, tmp_path / "ctx", dockerfile)
    assert dest == tmp_path / "ctx"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [
        "Dockerfile",
        "bento.yaml",
        "env/docker/entrypoint.sh",
        "env/python/requirements.txt",
        "src/service.py",
    ]
    assert (dest / "Dockerfile").read_text(encoding="utf-8") == dockerfile
    entrypoint = dest / "env/docker/entrypoint.sh"
    assert entrypoint.stat().st_mode & stat.S_IXUSR
    assert entrypoint.read_text(encoding="utf-8") == entrypoint_script()
    assert (dest / "env/python/requirements.txt").read_text(encoding="utf-8") == ""
    # nothing left next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento", "ctx"]


def test_write_context_into_an_empty_directory(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (tmp_path / "ctx").mkdir()
    write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert (tmp_path / "ctx" / "Dockerfile").read_text(encoding="utf-8") == "FROM scratch\n"


def test_write_context_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    dest = tmp_path / "ctx"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty"):
        write_context(bento, dest, "FROM scratch\n")
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_write_context_is_all_or_nothing(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    outside = tmp_path / "secret.txt"
    outside.write_text("s3cr3t", encoding="utf-8")
    (bento.path / "src" / "zz-link").symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink points outside the bento"):
        write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento", "secret.txt"]


def test_write_context_failure_removes_the_parents_it_created(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (bento.path / "src" / "zz-link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="symlink points outside the bento"):
        write_context(bento, tmp_path / "new" / "deeper" / "ctx", "FROM scratch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento"]


def test_symlink_inside_the_bento_is_copied_as_a_file(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (bento.path / "src" / "alias.py").symlink_to(bento.path / "src" / "service.py")
    dest = write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    copied = dest / "src" / "alias.py"
    assert not copied.is_symlink() and copied.read_text(encoding="utf-8") == "print('hi')\n"


def test_symlink_outside_inside_a_linked_directory_is_refused(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    inner = bento.path / "data"
    inner.mkdir()
    (inner / "leak").symlink_to(tmp_path)
    (bento.path / "src" / "data-link").symlink_to(inner)
    with pytest.raises(ConfigError, match="outside the bento"):
        write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert not (tmp_path / "ctx").exists()


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (bento.path / "src" / "loop").symlink_to(bento.path / "src")
    with pytest.raises(ConfigError, match="symlink loop"):
        write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento"]


def test_setup_script_lands_at_its_fixed_place(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento", setup_script="scripts/setup.sh")
    script = bento.path / "scripts" / "setup.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho setup\n", encoding="utf-8")
    dest = write_context(bento, tmp_path / "ctx", render_dockerfile(bento))
    copied = dest / "env/docker/setup_script"
    assert copied.read_text(encoding="utf-8") == "#!/bin/sh\necho setup\n"
    assert copied.stat().st_mode & stat.S_IXUSR


def test_requirements_from_config_are_written(tmp_path: Path) -> None:
    root = tmp_path / "bento"
    bento = make_bento(root)
    from attrs import evolve

    from pipeline.config import PythonOptions

    bento = evolve(bento, python=PythonOptions(packages=("six==1.16.0",), requirements_text="a\n"))
    dest = write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert (dest / "env/python/requirements.txt").read_text(encoding="utf-8") == "a\nsix==1.16.0\n"


def test_temporary_context_is_removed(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    with temporary_context(bento, "FROM scratch\n") as ctx:
        assert (ctx / "Dockerfile").is_file()
        holder = ctx.parent
    assert not holder.exists()


def test_temporary_context_is_removed_on_error(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    with pytest.raises(RuntimeError), temporary_context(bento, "FROM scratch\n") as ctx:
        raise RuntimeError("boom")
    assert not ctx.exists()


def test_render_is_pure(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento", system_packages=("curl",))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert render_dockerfile(bento) == render_dockerfile(bento)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# -- the entrypoint script, run for real with a stand-in `bentoml` ---------------------------------


@pytest.fixture
def run_entrypoint(tmp_path: Path):  # type: ignore[no-untyped-def]
    script = tmp_path / "entrypoint.sh"
    script.write_text(entrypoint_script(), encoding="utf-8")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bentoml"
    fake.write_text('#!/bin/sh\necho "bentoml $*"\n', encoding="utf-8")
    fake.chmod(0o755)

    def run(*args: str, port: str | None = None) -> str:
        env = {"PATH": f"{bindir}:{os.environ['PATH']}", "BENTO_PATH": "/b"}
        if port is not None:
            env["PORT"] = port
        done = subprocess.run(
            ["sh", str(script), *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    return run


def test_entrypoint_serves_without_arguments(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert run_entrypoint() == "bentoml serve /b"


def test_entrypoint_serves_with_only_flags(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert (
        run_entrypoint("--production", "--workers", "2")
        == "bentoml serve /b --production --workers 2"
    )


def test_entrypoint_honours_port(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert run_entrypoint(port="8080") == "bentoml serve /b --port 8080"
    assert run_entrypoint("--port", "1", port="8080") == "bentoml serve /b --port 1"
    assert (
        run_entrypoint("bentoml", "serve", "/b", "--production", port="9")
        == "bentoml serve /b --production --port 9"
    )


def test_entrypoint_runs_other_commands(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert run_entrypoint("echo", "hello world") == "hello world"
    assert run_entrypoint("echo", "x", port="1") == "x"


@pytest.mark.parametrize("args", [(), ("bentoml", "serve", "/b", "--production")])
def test_entrypoint_explains_a_missing_bentoml(tmp_path: Path, args: tuple[str, ...]) -> None:
    script = tmp_path / "entrypoint.sh"
    script.write_text(entrypoint_script(), encoding="utf-8")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        ["/bin/sh", str(script), *args],
        env={"PATH": str(empty), "BENTO_PATH": "/b"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 127
    assert "'bentoml' is not installed in this image" in done.stderr
    assert "python.packages" in done.stderr and "docker run IMAGE" in done.stderr


# -- instruction_origins / find_step ---------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def with_template(root: Path, template: str, **docker: object) -> Bento:
    bento = make_bento(root, dockerfile_template="Dockerfile.template", **docker)
    (root / "Dockerfile.template").write_text(template, encoding="utf-8")
    return bento


def origins_by_text(instructions: list[Instruction]) -> dict[str, Origin | None]:
    return {i.text: i.origin for i in instructions}


def test_instruction_origins_name_user_template_lines_and_blocks(tmp_path: Path) -> None:
    bento = with_template(
        tmp_path / "b",
        "{% extends bento_base_template %}\n"  # 1
        "{% block SETUP_BENTO_COMPONENTS %}\n"  # 2
        "{{ super() }}\n"  # 3
        "RUN echo same\n"  # 4
        "RUN echo {{ bento__user }} \\\n"  # 5
        "    && true\n"  # 6
        "RUN echo same\n"  # 7
        "{% endblock %}\n",
    )
    instructions = instruction_origins(bento)
    assert "\n".join(i.text for i in instructions) == "\n".join(
        i.text for i in parse_dockerfile(render_dockerfile(bento))
    )
    template = tmp_path / "b" / "Dockerfile.template"
    mine = [i for i in instructions if i.origin and i.origin.source.startswith("template")]
    assert [(i.text, i.origin) for i in mine] == [
        (
            "RUN echo same",
            Origin("SETUP_BENTO_COMPONENTS", "components", f"template {template}:4",
                   "docker.dockerfile_template"),
        ),
        (
            "RUN echo bentoml \\\n    && true",
            Origin("SETUP_BENTO_COMPONENTS", "components", f"template {template}:5",
                   "docker.dockerfile_template"),
        ),
        (
            "RUN echo same",
            Origin("SETUP_BENTO_COMPONENTS", "components", f"template {template}:7",
                   "docker.dockerfile_template"),
        ),
    ]  # fmt: skip
    # what super() rendered is the built-in stage's, not the template's
    copy = origins_by_text(instructions)["COPY --chown=1034:1034 . ./"]
    assert copy == Origin("SETUP_BENTO_COMPONENTS", "components", "built-in stage components")
    assert str(mine[0].origin) == (
        f"block SETUP_BENTO_COMPONENTS in template {template}:4 (docker.dockerfile_template)"
    )


def test_instruction_origins_name_the_bentofile_field(tmp_path: Path) -> None:
    bento = make_bento(
        tmp_path / "b",
        system_packages=["curl"],
        env={"GREETING": "hi"},
        commands=["echo pre-step"],
    )
    bento = evolve(bento, python=PythonOptions(packages=("requests==2.32.3",)))
    by_keyword: dict[str, list[Origin]] = {}
    for instruction in instruction_origins(bento):
        assert instruction.origin is not None, instruction
        by_keyword.setdefault(instruction.text.split()[0], []).append(instruction.origin)
    base = Origin(
        "SETUP_BENTO_BASE_IMAGE",
        "base",
        "built-in stage base",
        "docker.base_image / docker.distro / docker.python_version / docker.cuda_version",
    )
    buildstage = Origin("SETUP_BENTO_BUILDSTAGE", "buildstage", "built-in stage buildstage")
    runtime = Origin("SETUP_BENTO_RUNTIME", "runtime", "built-in stage runtime")
    assert by_keyword["FROM"] == [base, buildstage, runtime]
    runs = by_keyword["RUN"]
    assert runs[0] == evolve(base, field="docker.system_packages")
    assert runs[1] == evolve(base, field="docker.commands[0]")
    # the uv bootstrap (its own layer), then the requirements
    assert runs[2:4] == [evolve(buildstage, field="python.packages / python.requirements_txt")] * 2
    assert runs[4] == Origin("SETUP_BENTO_USER", "user", "built-in stage user")
    assert runs[5].block == "SETUP_BENTO_ENTRYPOINT"
    envars = Origin("SETUP_BENTO_ENVARS", "envars", "built-in stage envars")
    # the bento's env is set in the build stage too (its install sees it, as in BentoML)
    assert by_keyword["ENV"][1:] == [
        evolve(buildstage, field="docker.env"),
        envars,
        evolve(envars, field="docker.env"),
    ]


def test_instruction_origins_of_a_template_outside_the_stage_it_extends(tmp_path: Path) -> None:
    """examples/aws-env-vars: ARGs before the FROM of the base block, the same ARG twice."""
    shutil.copytree(EXAMPLES / "aws-env-vars", tmp_path / "b")
    template = tmp_path / "b" / "Dockerfile.template"
    bento = make_bento(tmp_path / "b2", python_version="3.11")
    bento = evolve(bento, docker=evolve(bento.docker, dockerfile_template=str(template)))
    instructions = instruction_origins(bento)
    args = [i for i in instructions if i.text == "ARG AWS_SECRET_ACCESS_KEY"]
    assert [(i.build_stage, i.origin and i.origin.source) for i in args] == [
        (None, f"template {template}:3"),
        ("base-container", f"template {template}:7"),
    ]
    assert all(i.origin and i.origin.block == "SETUP_BENTO_BASE_IMAGE" for i in args)
    aws = [i for i in instructions if "aws s3 cp" in i.text]
    assert [i.origin and (i.origin.block, i.origin.source) for i in aws] == [
        ("SETUP_BENTO_COMPONENTS", f"template {template}:16")
    ]


def test_instruction_origins_of_graph_stages(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "b")
    graph = default_graph(buildstage=True).add(
        Stage("marker", instructions=["RUN echo marker"]), before="entrypoint"
    )
    instructions = instruction_origins(bento, graph=graph)
    froms = [(i.build_stage, i.origin and i.origin.block) for i in instructions if i.index == 1]
    assert froms == [
        ("base-container", "SETUP_BENTO_BASE_IMAGE"),
        ("buildstage", "SETUP_BENTO_BUILDSTAGE"),
        ("runtime", "SETUP_BENTO_RUNTIME"),
    ]
    marker = origins_by_text(instructions)["RUN echo marker"]
    assert marker == Origin("SETUP_BENTO_MARKER", "marker", "graph stage marker")


@pytest.mark.parametrize("reshaped", ["(super() | string)[:12]", "super() | trim"])
def test_instruction_origins_without_a_trace_when_a_template_reshapes_a_block(
    tmp_path: Path, reshaped: str
) -> None:
    """A block's output used as a string (cut, trimmed) cannot be traced line by line: the
    instructions come without origins, the Dockerfile is the same."""
    bento = with_template(
        tmp_path / "b",
        "{% extends bento_base_template %}\n"
        "{% block SETUP_BENTO_ENTRYPOINT %}\n"
        f"{{{{ {reshaped} }}}}\n"
        "{% endblock %}\n",
    )
    instructions = instruction_origins(bento)
    assert [i.text for i in instructions] == [
        i.text for i in parse_dockerfile(render_dockerfile(bento))
    ]
    assert instructions and all(i.origin is None for i in instructions)


# Step headers as docker 28 (BuildKit and DOCKER_BUILDKIT=0) and buildah 1.28 printed them for
# this Dockerfile on the test machine; RUN echo two fails.
OBSERVED = (
    "ARG X=1\n"
    "FROM python:3.11-slim AS base-container\n"
    "ENV A=1\n"
    "LABEL x=y\n"
    "WORKDIR /x\n"
    "RUN echo one\n"
    "EXPOSE 3000\n"
    "USER root\n"
    "RUN echo two && \\\n"
    "    exit 3\n"
    'CMD ["x"]\n'
)


@pytest.mark.parametrize(
    "step",
    [
        "[4/4] RUN echo two &&     exit 3",  # BuildKit, one build stage: no stage name
        "#7 [4/4] RUN echo two &&     exit 3",
        "STEP 9/10: RUN echo two &&     exit 3",  # classic docker: every instruction counts
        "STEP 8/10: RUN echo two &&     exit 3",  # buildah: instructions of the build stage
        "RUN echo two &&     exit 3",  # buildah's 'building at STEP "..."'
        "sh -c echo two &&     exit 3",  # Dagger: the command
        "/bin/sh -c echo two &&     exit 3",
        "[4/4] RUN echo two &&...",  # cut short
    ],
)
def test_find_step_in_each_engines_format(step: str) -> None:
    found = find_step(step, parse_dockerfile(OBSERVED))
    assert found is not None and found.line == 9


def test_find_step_tells_apart_the_same_text_by_its_number() -> None:
    text = (
        "FROM python:3.11-slim AS base\n"
        "RUN --mount=type=cache,target=/root/.cache/pip exit 3\n"
        "COPY . .\n"
        "RUN --mount=type=cache,target=/root/.cache/pip exit 3\n"
        "FROM base AS second\n"
        "RUN --mount=type=cache,target=/root/.cache/pip exit 3\n"
    )
    instructions = parse_dockerfile(text)
    same = "RUN --mount=type=cache,target=/root/.cache/pip exit 3"

    def line(step: str) -> int | None:
        found = find_step(step, instructions)
        return found.line if found else None

    assert line(f"[base 2/4] {same}") == 2
    assert line(f"[base 4/4] {same}") == 4
    assert line(f"[second 2/2] {same}") == 6
    assert line(f"STEP 4/6: {same}") == 4  # classic: the whole file
    assert line(f"STEP 2/2: {same}") == 6  # buildah: the second build stage
    assert line("[base 1/4] FROM docker.io/library/python:3.11-slim") == 1
    assert line("[second 1/2] FROM docker.io/library/base") == 5
    assert line("[base 3/4] RUN something else") is None
    assert line("RUN exit 3") == 2  # no number: the first of them


def test_instruction_origins_of_a_loop_and_an_explicit_template(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "b")
    template = tmp_path / "loop.j2"
    template.write_text(
        "{% extends bento_base_template %}\n"
        "{% block SETUP_BENTO_ENTRYPOINT %}\n"
        "{% for word in ['a', 'b'] %}\n"
        "RUN echo {{ word }}\n"
        "{% endfor %}\n"
        "{{ super() }}\n"
        "{% endblock %}\n",
        encoding="utf-8",
    )
    instructions = instruction_origins(bento, RenderOptions(template=template))
    by_text = origins_by_text(instructions)
    for word in "ab":
        assert by_text[f"RUN echo {word}"] == Origin(
            "SETUP_BENTO_ENTRYPOINT", "entrypoint", f"template {template}:4", "--template"
        )
    assert by_text["EXPOSE 3000"] == Origin(
        "SETUP_BENTO_ENTRYPOINT", "entrypoint", "built-in stage entrypoint"
    )


def test_instruction_origins_through_a_template_extending_a_template(tmp_path: Path) -> None:
    """A user template may extend another one (by path); each line names the file it is in."""
    middle = tmp_path / "middle.j2"
    middle.write_text(
        "{% extends bento_base_template %}\n"
        "{% block SETUP_BENTO_USER %}\n"
        "{{ super() }}\n"
        "RUN echo from-middle\n"
        "{% endblock %}\n",
        encoding="utf-8",
    )
    top = tmp_path / "top.j2"
    top.write_text(
        f'{{% extends "{middle}" %}}\n'
        "{% block SETUP_BENTO_USER %}\n"
        "{{ super() }}\n"
        "RUN echo from-top\n"
        "{% endblock %}\n",
        encoding="utf-8",
    )
    bento = make_bento(tmp_path / "b")
    by_text = origins_by_text(instruction_origins(bento, RenderOptions(template=top)))
    user = ("SETUP_BENTO_USER", "user")
    assert by_text["RUN echo from-top"] == Origin(*user, f"template {top}:4", "--template")
    assert by_text["RUN echo from-middle"] == Origin(*user, f"template {middle}:4", "--template")
    assert by_text["RUN echo from-top"] != by_text["RUN echo from-middle"]


@pytest.mark.parametrize(
    "example", sorted(p.parent.name for p in EXAMPLES.glob("*/Dockerfile.template"))
)
@pytest.mark.parametrize("distro", ["debian", "alpine", "ubi8", "amazonlinux", "miniconda"])
def test_every_instruction_of_the_examples_has_an_origin(example: str, distro: str) -> None:
    """Each instruction of each example template, on each distro: traced to a block; a template
    line is the one that holds the instruction's keyword and literal text."""
    template = EXAMPLES / example / "Dockerfile.template"
    bento = Bento(
        name="ex",
        version="v1",
        path=EXAMPLES / example,
        docker=DockerOptions(distro=distro, dockerfile_template="Dockerfile.template"),
    )
    lines = template.read_text(encoding="utf-8").splitlines()
    instructions = instruction_origins(bento)
    assert instructions
    for instruction in instructions:
        origin = instruction.origin
        assert origin is not None and origin.block is not None, instruction
        if origin.source.startswith("template "):
            line = int(origin.source.rsplit(":", 1)[1])
            first = instruction.text.split("\n", 1)[0].split()
            assert lines[line - 1].split()[0] == first[0], (instruction, line)
        else:
            assert origin.source == f"built-in stage {origin.stage}"
