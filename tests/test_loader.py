"""bento.yaml (both shapes) and bentofile.yaml -> models, and every bad input's message."""

from __future__ import annotations

import textwrap
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.config import EnvVar, running_python_version
from pipeline.errors import ConfigError, PipelineWarning
from pipeline.fieldpaths import format_path, parse_path
from pipeline.loader import (
    load_bento_yaml,
    load_bentofile,
    load_pyproject,
    parse_dotenv,
)

FIXTURES = Path(__file__).parent / "fixtures"


def write_bentofile(directory: Path, text: str) -> Path:
    path = directory / "bentofile.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_bentofile(path)
    return info.value


# --- bento.yaml: the shapes real BentoML writes ------------------------------------------------


def test_spec1_bentoml_1_2() -> None:
    bento = load_bento_yaml(FIXTURES / "bento_v1_2" / "bento.yaml")
    assert bento.tag == "summarization:5vsa3ywqqoefgatx"
    assert bento.spec == 1
    assert bento.path == (FIXTURES / "bento_v1_2").absolute()
    assert bento.service == "service:Summarization"
    assert bento.bentoml_version == "1.2.16"
    assert bento.creation_time == datetime(2024, 5, 27, 7, 24, 42, 349433, tzinfo=timezone.utc)
    assert dict(bento.labels) == {"owner": "bentoml-team", "project": "gallery"}
    assert bento.models == ("summarization-model:mt5x7bbl4sfnqaav",)
    docker = bento.docker
    assert (docker.distro, docker.python_version, docker.cuda_version) == ("debian", "3.11", None)
    assert docker.system_packages == ("ffmpeg",)
    # top-level envs and docker.env merge; docker.env wins on conflicts
    assert dict(docker.env) == {"HF_HOME": "/home/bentoml/hf", "TRANSFORMERS_OFFLINE": "1"}
    # BentoML records the user's path; the file lives at a fixed place in the bento
    assert docker.setup_script == "env/docker/setup_script"
    assert docker.dockerfile_template == "env/docker/Dockerfile.template"
    assert bento.python.packages == ("torch", "transformers")
    assert bento.python.lock_packages is True
    assert bento.python.pack_git_packages is True


def test_spec2_bentoml_1_4_image_section() -> None:
    bento = load_bento_yaml(FIXTURES / "bento_v1_4")
    assert bento.spec == 2
    assert bento.tag == "whisperx:vcynnjbtxsqwmhkh"
    docker = bento.docker
    assert docker.base_image == "python:3.11-slim"
    assert docker.python_version == "3.11"
    assert docker.distro is None  # spec 2 resolves the distro into base_image
    assert docker.commands[0].startswith("apt-get update && apt-get install")
    assert docker.post_commands == ('python -c "import torch; print(torch.__version__)"',)
    assert dict(docker.env) == {"HF_TOKEN": "", "LOG_LEVEL": "info"}
    assert bento.python.requirements_text is not None
    assert "torch==2.5.1" in bento.python.requirements_text.splitlines()
    assert bento.models == ("openai--whisper-large-v3:06f233fe06e710322aca913c1bc4249a0d71fce1",)


def test_spec1_bentoml_1_0_with_runners_and_apis() -> None:
    bento = load_bento_yaml(FIXTURES / "bento_v1_0" / "bento.yaml")
    assert bento.tag == "iris_classifier:4u5vd7ccv6ykvhqa"
    assert bento.docker.python_version == "3.10"
    assert bento.python.requirements_txt == "env/python/requirements.txt"
    assert bento.models == ("iris_clf:rdi5hvduzgt3kfei",)


def test_spec1_without_docker_section_gets_bentoml_defaults(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text("service: svc:Svc\nname: svc\nversion: v1\n")
    bento = load_bento_yaml(tmp_path / "bento.yaml")
    assert bento.docker.distro == "debian"
    assert bento.docker.python_version == running_python_version()


def test_pre_1_0_model_list_of_strings(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text("name: a\nversion: b\nmodels: [m:1, n:2]\n")
    assert load_bento_yaml(tmp_path / "bento.yaml").models == ("m:1", "n:2")


def test_unknown_top_level_key_in_bento_yaml_is_tolerated(tmp_path: Path) -> None:
    # BentoML itself ignores extra top-level keys for forward compatibility.
    (tmp_path / "bento.yaml").write_text("name: a\nversion: b\nfuture_field: {x: 1}\n")
    assert load_bento_yaml(tmp_path / "bento.yaml").name == "a"


def test_unknown_key_in_bento_yaml_docker_section_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text("name: a\nversion: b\ndocker:\n  distroo: debian\n")
    with pytest.raises(ConfigError) as info:
        load_bento_yaml(tmp_path / "bento.yaml")
    assert info.value.field == "docker.distroo"
    assert info.value.line == 4
    assert "did you mean 'distro'?" in str(info.value)


def test_bento_yaml_missing_name(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text("version: b\n")
    with pytest.raises(ConfigError) as info:
        load_bento_yaml(tmp_path / "bento.yaml")
    assert info.value.field == "name"
    assert "required key is missing" in str(info.value)


def test_bento_yaml_unknown_spec(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text("name: a\nversion: b\nspec: 3\n")
    with pytest.raises(ConfigError, match="unsupported bento.yaml spec 3"):
        load_bento_yaml(tmp_path / "bento.yaml")


# --- bentofile.yaml --------------------------------------------------------------------------


def test_full_bentofile() -> None:
    spec = load_bentofile(FIXTURES / "project_summarize" / "bentofile.yaml")
    assert spec.service == "service:Summarization"
    assert spec.name == "summarize"
    assert spec.include == ("*.py", "src/", "data/*.csv", "templates/")
    assert spec.exclude == ("tests/", "*.secret")
    assert spec.python.trusted_host == ("pypi.org",)  # a single string becomes a list
    assert spec.python.requirements_txt == "./requirements.txt"
    assert dict(spec.docker.env) == {"LOG_LEVEL": "info", "WORKERS": "2"}
    assert spec.envs == (EnvVar("HF_HOME", "/home/bentoml/hf"),)
    assert spec.models == ("summarization-model:latest", "embedder:v2")
    assert spec.project_dir == FIXTURES / "project_summarize"


def test_minimal_bentofile_has_unset_options(tmp_path: Path) -> None:
    spec = load_bentofile(write_bentofile(tmp_path, "service: service:Svc\n"))
    assert spec.include is None and spec.exclude is None
    assert spec.docker.distro is None and spec.docker.python_version is None


def test_docker_env_forms(tmp_path: Path) -> None:
    as_dict = load_bentofile(write_bentofile(tmp_path, "service: s\ndocker:\n  env: {A: 1}\n"))
    assert dict(as_dict.docker.env) == {"A": "1"}  # numbers are fine as values
    as_list = load_bentofile(
        write_bentofile(tmp_path, "service: s\ndocker:\n  env: ['A=1', 'B=x=y']\n")
    )
    assert dict(as_list.docker.env) == {"A": "1", "B": "x=y"}
    (tmp_path / "prod.env").write_text(
        "# comment\nexport A=1\nB='two words'\nC=\"q\"\nD=plain # trailing\n\n"
    )
    as_file = load_bentofile(write_bentofile(tmp_path, "service: s\ndocker:\n  env: prod.env\n"))
    assert dict(as_file.docker.env) == {"A": "1", "B": "two words", "C": "q", "D": "plain"}


def test_parse_dotenv_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dotenv("A=1\nnot a pair\n", file=tmp_path / ".env")
    assert info.value.line == 2
    assert str(info.value).startswith(f"{tmp_path / '.env'}:2: ")


def test_python_version_is_normalized_to_major_minor(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\ndocker:\n  python_version: '3.11.4'\n")
    assert load_bentofile(path).docker.python_version == "3.11"


@pytest.mark.parametrize(
    ("given", "full"), [("12", "12.8.1"), ("11.8", "11.8.0"), (12.4, "12.4.1")]
)
def test_cuda_version_is_mapped_to_full(tmp_path: Path, given: object, full: str) -> None:
    path = write_bentofile(tmp_path, f"service: s\ndocker:\n  cuda_version: {given}\n")
    assert load_bentofile(path).docker.cuda_version == full


def test_base_image_warns_once_naming_every_ignored_option(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path,
        """\
        service: s
        docker:
          base_image: my/image:1
          distro: alpine
          python_version: "3.12"
          system_packages: [curl]
        """,
    )
    with pytest.warns(PipelineWarning) as record:
        spec = load_bentofile(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "distro, python_version, system_packages are ignored" in message
    assert "cuda_version" not in message
    assert "bentofile.yaml" in message
    assert spec.docker.base_image == "my/image:1"


def test_base_image_alone_does_not_warn(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\ndocker:\n  base_image: my/image:1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        spec = load_bentofile(path)
    assert spec.docker.base_image == "my/image:1"


def test_base_image_skips_checks_of_ignored_options(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path, "service: s\ndocker:\n  base_image: x\n  distro: alpine\n  cuda_version: '12'\n"
    )
    with pytest.warns(PipelineWarning, match="distro, cuda_version are ignored"):
        load_bentofile(path)


# --- bad input: each names file, line and field ------------------------------------------------


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\ndocker:\n  distro: [debian\n  env: {}\n")
    error = load_error(path)
    assert error.file == str(path)
    assert error.line is not None and error.line >= 3
    assert "malformed YAML" in error.message


def test_tab_indentation_is_malformed(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\ndocker:\n\tdistro: debian\n")
    error = load_error(path)
    assert error.line == 3
    assert str(error).startswith(f"{path}:3: malformed YAML")


def test_empty_file(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, ""))
    assert "expected a mapping" in error.message


def test_missing_service_is_left_to_discovery_but_empty_is_an_error(tmp_path: Path) -> None:
    # BentoML: no service: means the service defined in service.py (found at bento build)
    assert load_bentofile(write_bentofile(tmp_path, "name: x\n")).service == ""
    error = load_error(write_bentofile(tmp_path, "service: ''\n"))
    assert error.field == "service"
    assert "must name the service" in error.message


def test_unknown_top_level_key_did_you_mean(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndokcer:\n  distro: debian\n"))
    assert error.field == "dokcer"
    assert error.line == 2
    assert "unknown key 'dokcer' in the top level (did you mean 'docker'?)" in str(error)
    assert error.hint is not None and "service, name, description" in error.hint


def test_unknown_nested_key_names_section(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\npython:\n  pakages: [x]\n"))
    assert str(error).startswith(
        f"{tmp_path / 'bentofile.yaml'}:3: python.pakages: unknown key 'pakages' in the python "
        "section (did you mean 'packages'?)"
    )


def test_wrong_type_message_has_the_yaml_path(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\ndocker:\n  env:\n    FOO: [a, b]\n")
    error = load_error(path)
    assert str(error) == f"{path}:4: docker.env.FOO: expected a string, got a list"


def test_list_item_type_error_has_index(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\npython:\n  packages: [a, {b: 1}]\n"))
    assert error.field == "python.packages[1]"
    assert error.message == "expected a string, got a mapping"


def test_string_where_list_expected_is_not_split_into_characters(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  system_packages: curl\n"))
    assert error.field == "docker.system_packages"
    assert error.message == "expected a list, got a string"


def test_boolean_is_strict(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\npython:\n  lock_packages: 'no'\n"))
    assert error.field == "python.lock_packages"
    assert "expected true or false" in error.message


def test_section_of_wrong_type(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker: [debian]\n"))
    assert error.field == "docker"
    assert error.message == "expected a mapping, got a list"


def test_more_problems_are_summarized_in_the_hint(tmp_path: Path) -> None:
    error = load_error(
        write_bentofile(tmp_path, "service: s\ndocker:\n  distroo: x\npython:\n  packages: 3\n")
    )
    assert error.field == "docker.distroo"
    assert error.hint is not None and "python.packages: expected a list" in error.hint


def test_env_list_item_not_key_value(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  env: ['A=1', 'B']\n"))
    assert error.field == "docker.env[1]"
    assert "expected KEY=VALUE, got 'B'" in error.message


def test_env_bad_name(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  env: {'A B': x}\n"))
    assert error.field == "docker.env.A B"
    assert "not a valid environment variable name" in error.message


def test_env_dotenv_path_missing(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  env: nope.env\n"))
    assert error.field == "docker.env"
    assert "'nope.env' is not a dotenv file" in error.message


def test_unknown_distro_lists_allowed(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  distro: debain\n"))
    assert error.field == "docker.distro"
    assert error.line == 3
    assert "unknown distro 'debain' (did you mean 'debian'?)" in error.message
    assert error.hint == "allowed: 'debian', 'alpine', 'ubi8', 'amazonlinux' or 'miniconda'"


def test_python_version_unsupported_for_distro_lists_supported(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path, "service: s\ndocker:\n  distro: amazonlinux\n  python_version: '3.11'\n"
    )
    error = load_error(path)
    assert error.field == "docker.python_version"
    assert error.message == "Python 3.11 is not supported on amazonlinux"
    assert error.hint == "supported on amazonlinux: '3.8'"


def test_python_version_as_float_asks_for_quotes(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  python_version: 3.10\n"))
    assert error.field == "docker.python_version"
    assert "got the number 3.1" in error.message
    assert error.hint is not None and 'python_version: "3.1"' in error.hint


def test_python_version_garbage(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  python_version: three\n"))
    assert "is not a Python version" in error.message


def test_cuda_on_distro_without_cuda_names_distros_with_it(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path, "service: s\ndocker:\n  distro: alpine\n  cuda_version: '12'\n"
    )
    error = load_error(path)
    assert error.field == "docker.cuda_version"
    assert error.message == "distro 'alpine' has no CUDA images"
    assert error.hint == "distros with CUDA: 'debian' or 'ubi8'"


def test_cuda_version_unsupported_lists_supported(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  cuda_version: '10.2'\n"))
    assert error.field == "docker.cuda_version"
    assert error.message == "CUDA 10.2 is not supported on debian"
    assert error.hint is not None and "'12.8.1'" in error.hint and "'11'" in error.hint


def test_dockerfile_template_missing(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\ndocker:\n  dockerfile_template: Dockerfile.j2\n")
    error = load_error(path)
    assert error.field == "docker.dockerfile_template"
    assert "template 'Dockerfile.j2' does not exist" in error.message


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.txt", "template.jinja2"])
def test_dockerfile_template_bad_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("{% extends bento_base_template %}\n")
    path = write_bentofile(tmp_path, f"service: s\ndocker:\n  dockerfile_template: {name}\n")
    error = load_error(path)
    assert error.field == "docker.dockerfile_template"
    assert "must end in '.j2', '.template' or '.jinja'" in error.message


@pytest.mark.parametrize("name", ["Dockerfile.j2", "Dockerfile.template", "x.jinja"])
def test_dockerfile_template_good_extensions(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("{% extends bento_base_template %}\n")
    path = write_bentofile(tmp_path, f"service: s\ndocker:\n  dockerfile_template: {name}\n")
    assert load_bentofile(path).docker.dockerfile_template == name


def test_setup_script_missing(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  setup_script: setup.sh\n"))
    assert error.field == "docker.setup_script"
    assert "setup script 'setup.sh' does not exist" in error.message


def test_setup_script_not_executable(tmp_path: Path) -> None:
    (tmp_path / "setup.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "setup.sh").chmod(0o644)
    error = load_error(write_bentofile(tmp_path, "service: s\ndocker:\n  setup_script: setup.sh\n"))
    assert error.field == "docker.setup_script"
    assert "is not executable" in error.message
    assert error.hint is not None and "chmod +x" in error.hint


@pytest.mark.parametrize("pattern", ["../outside.py", "src/../../x", "!../y", "./../z"])
def test_include_pattern_escaping_root(tmp_path: Path, pattern: str) -> None:
    error = load_error(write_bentofile(tmp_path, f"service: s\ninclude: ['*.py', '{pattern}']\n"))
    assert error.field == "include[1]"
    assert "points outside the project directory" in error.message


@pytest.mark.parametrize("pattern", ["/anchored.py", "src/../ok.py", "**/*.py", "..hidden"])
def test_include_patterns_inside_root_are_fine(tmp_path: Path, pattern: str) -> None:
    spec = load_bentofile(write_bentofile(tmp_path, f"service: s\ninclude: ['{pattern}']\n"))
    assert spec.include == (pattern,)


def test_missing_requirements_and_wheel(tmp_path: Path) -> None:
    error = load_error(
        write_bentofile(tmp_path, "service: s\npython:\n  requirements_txt: req.txt\n")
    )
    assert error.field == "python.requirements_txt"
    error = load_error(write_bentofile(tmp_path, "service: s\npython:\n  wheels: [a.whl]\n"))
    assert error.field == "python.wheels[0]"


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "bentofile.yaml")
    assert error.message == "file does not exist"


def test_format_path() -> None:
    assert format_path(("docker", "env", "FOO")) == "docker.env.FOO"
    assert format_path(("python", "packages", 2)) == "python.packages[2]"
    assert format_path(()) == ""


def test_models_from_services_are_included(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text(
        textwrap.dedent(
            """\
            name: a
            version: b
            models: [{tag: 'm:1'}]
            services:
            - name: A
              service: ''
              models: [{tag: 'n:2', module: ''}, {tag: 'm:1'}]
            """
        )
    )
    assert load_bento_yaml(tmp_path / "bento.yaml").models == ("m:1", "n:2")


# --- BentoML 1.4 keys: args, envs[].stage ------------------------------------------------------


def test_bentofile_args_mapping(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path,
        """\
        service: service:Svc
        args:
          model: small
          n: 2
          tags: [a, b]
          nested: {x: 1}
        """,
    )
    spec = load_bentofile(path)
    assert dict(spec.args) == {"model": "small", "n": 2, "tags": ["a", "b"], "nested": {"x": 1}}


def test_bentofile_args_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\nargs: [a, b]\n"))
    assert (error.field, error.line) == ("args", 2)
    assert "expected a mapping, got a list" in str(error)


def test_bento_yaml_args_are_kept(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text("name: a\nversion: b\nargs: {model: large, n: 3}\n")
    assert dict(load_bento_yaml(tmp_path / "bento.yaml").args) == {"model": "large", "n": 3}
    assert dict(load_bento_yaml(FIXTURES / "bento_v1_4").args) == {}


def test_envs_stages(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path,
        """\
        service: service:Svc
        envs:
          - name: ALL_ONE
            value: a
          - {name: TOKEN, stage: build}
          - {name: RT, value: r, stage: runtime}
        """,
    )
    spec = load_bentofile(path)
    assert spec.envs == (
        EnvVar("ALL_ONE", "a", "all"),
        EnvVar("TOKEN", "", "build"),
        EnvVar("RT", "r", "runtime"),
    )


def test_envs_unknown_stage_names_field_and_allowed(tmp_path: Path) -> None:
    error = load_error(
        write_bentofile(tmp_path, "service: s\nenvs:\n  - name: A\n    stage: buld\n")
    )
    assert (error.field, error.line) == ("envs[0].stage", 4)
    assert "did you mean 'build'?" in str(error)
    assert "'all', 'build' or 'runtime'" in str(error)


def test_envs_bad_name_is_an_error(tmp_path: Path) -> None:
    error = load_error(write_bentofile(tmp_path, "service: s\nenvs:\n  - name: 1A\n"))
    assert error.field == "envs[0].name"


def test_envs_stage_conflicting_with_docker_env(tmp_path: Path) -> None:
    error = load_error(
        write_bentofile(
            tmp_path,
            "service: s\nenvs:\n  - {name: T, stage: build}\ndocker:\n  env: {T: x}\n",
        )
    )
    assert error.field == "docker.env.T"
    assert "stage 'build'" in str(error)


def test_bento_yaml_only_all_stage_envs_are_baked(tmp_path: Path) -> None:
    # BentoML 1.4 writes a spec-1 bento's docker.env from every envs entry; the stage decides
    (tmp_path / "bento.yaml").write_text(
        textwrap.dedent(
            """\
            name: a
            version: b
            envs:
              - {name: A, value: '1', stage: all}
              - {name: TOKEN, value: secret, stage: build}
              - {name: RT, value: r, stage: runtime}
            docker:
              env: {A: '1', TOKEN: secret, RT: r, OWN: o}
            """
        )
    )
    bento = load_bento_yaml(tmp_path / "bento.yaml")
    assert dict(bento.docker.env) == {"A": "1", "OWN": "o"}
    assert bento.build_envs == (EnvVar("TOKEN", "secret", "build"),)
    assert [e.name for e in bento.envs] == ["A", "TOKEN", "RT"]


def test_spec2_envs_stages(tmp_path: Path) -> None:
    (tmp_path / "bento.yaml").write_text(
        textwrap.dedent(
            """\
            name: a
            version: b
            spec: 2
            envs:
              - {name: A, value: '1'}
              - {name: TOKEN, stage: build}
              - {name: RT, value: r, stage: runtime}
            image: {base_image: 'python:3.11-slim', python_version: '3.11'}
            """
        )
    )
    bento = load_bento_yaml(tmp_path / "bento.yaml")
    assert dict(bento.docker.env) == {"A": "1"}
    assert [e.name for e in bento.build_envs] == ["TOKEN"]


# --- [tool.bentoml.build] in pyproject.toml ----------------------------------------------------


def write_pyproject(directory: Path, text: str) -> Path:
    path = directory / "pyproject.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_pyproject_build_table_like_bentoml(tmp_path: Path) -> None:
    path = write_pyproject(
        tmp_path,
        """\
        [project]
        name = "my-project"
        dependencies = ["six>=1.16"]

        [tool.bentoml.build]
        service = "service:Svc"
        labels = {team = "ml"}
        args = {model = "small"}

        [tool.bentoml.build.python]
        packages = ["requests"]

        [tool.bentoml.build.docker]
        distro = "debian"
        python_version = "3.11"

        [[tool.bentoml.build.envs]]
        name = "TOKEN"
        stage = "build"
        """,
    )
    spec = load_bentofile(path)  # load_bentofile takes either file
    assert spec.path == path and spec.project_dir == tmp_path
    assert spec.service == "service:Svc"
    assert spec.name == "my-project"  # from [project]
    assert spec.python.packages == ("requests", "six>=1.16")  # project.dependencies added
    assert spec.python.is_src_layout is None  # no src/ next to it
    assert (spec.docker.distro, spec.docker.python_version) == ("debian", "3.11")
    assert dict(spec.labels) == {"team": "ml"} and dict(spec.args) == {"model": "small"}
    assert spec.envs == (EnvVar("TOKEN", "", "build"),)


def test_pyproject_src_directory_means_src_layout(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = write_pyproject(tmp_path, '[tool.bentoml.build]\nservice = "service:Svc"\n')
    assert load_pyproject(path).python.is_src_layout is True
    explicit = write_pyproject(
        tmp_path,
        '[tool.bentoml.build]\nservice = "s"\n[tool.bentoml.build.python]\nis_src_layout = false\n',
    )
    assert load_pyproject(explicit).python.is_src_layout is False


def test_pyproject_errors_name_the_file_and_dotted_path(tmp_path: Path) -> None:
    path = write_pyproject(
        tmp_path,
        """\
        [project]
        name = "p"

        [tool.bentoml.build]
        service = "service:Svc"

        [tool.bentoml.build.docker]
        distro = "debain"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_pyproject(path)
    error = info.value
    assert error.file == str(path)
    assert error.field == "tool.bentoml.build.docker.distro"
    assert error.line == 8
    assert "did you mean 'debian'?" in str(error)
    assert str(error).startswith(f"{path}:8: tool.bentoml.build.docker.distro: ")


def test_pyproject_unknown_key_names_the_table(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, '[tool.bentoml.build]\nservice = "s"\nservce = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_pyproject(path)
    assert info.value.field == "tool.bentoml.build.servce"
    assert info.value.line == 3
    assert "in the tool.bentoml.build table" in str(info.value)


def test_pyproject_type_error_in_an_array_of_tables(tmp_path: Path) -> None:
    path = write_pyproject(
        tmp_path,
        '[tool.bentoml.build]\nservice = "s"\n\n[[tool.bentoml.build.envs]]\nname = "A"\n\n'
        '[[tool.bentoml.build.envs]]\nname = "B"\nstage = "later"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_pyproject(path)
    assert info.value.field == "tool.bentoml.build.envs[1].stage"
    assert info.value.line == 9


def test_pyproject_without_the_table_or_malformed(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, '[project]\nname = "p"\n')
    with pytest.raises(ConfigError, match=r"no \[tool.bentoml.build\] table"):
        load_pyproject(path)
    write_pyproject(tmp_path, '[tool.bentoml.build]\nservice = "s\n')
    with pytest.raises(ConfigError) as info:
        load_pyproject(path)
    assert "malformed TOML" in str(info.value) and info.value.line == 2


def test_parse_path_inverts_format_path() -> None:
    for path in [("docker", "env", "FOO"), ("envs", 1, "value"), ("python", "wheels", 0), ()]:
        assert parse_path(format_path(path)) == path


# --- field-by-field parity with BentoML 1.4.40 (docs/bentos.md has the table) ------------------


def test_spec1_bento_yaml_written_by_bentoml_1_4() -> None:
    # `bentoml build` (1.4.40) of a project with a dockerfile_template falls back to spec 1 and
    # writes envs with their stage, args and python.is_src_layout
    bento = load_bento_yaml(FIXTURES / "bento_v1_4_spec1")
    assert (bento.spec, bento.bentoml_version) == (1, "1.4.40")
    assert dict(bento.args) == {"model": "small"}
    assert bento.build_envs == (EnvVar("TOKEN", "tok", "build"),)
    assert dict(bento.docker.env) == {"ALL": "a1", "DOCK": "d1"}
    assert bento.python.is_src_layout is False
    assert bento.python.trusted_host == ("pypi.org",)
    assert dict(bento.labels) == {"n": "3"}
    assert bento.docker.setup_script == "env/docker/setup_script"
    assert bento.docker.dockerfile_template == "env/docker/Dockerfile.template"


@pytest.mark.parametrize(
    ("given", "loaded"),
    [("default", "12.8.1"), ("''", None), ("None", None), ("12", "12.8.1")],
)
def test_cuda_version_forms_bentoml_accepts(tmp_path: Path, given: str, loaded: str | None) -> None:
    path = write_bentofile(tmp_path, f"service: s\ndocker:\n  cuda_version: {given}\n")
    assert load_bentofile(path).docker.cuda_version == loaded


def test_conda_environment_yml_ignores_the_other_conda_keys_with_a_warning(
    tmp_path: Path,
) -> None:
    (tmp_path / "environment.yml").write_text("dependencies: [numpy]\n")
    path = write_bentofile(
        tmp_path,
        "service: s\nconda:\n  environment_yml: environment.yml\n  channels: [x]\n  pip: [a]\n",
    )
    with pytest.warns(PipelineWarning, match="channels, pip are ignored"):
        conda = load_bentofile(path).conda
    assert (conda.environment_yml, conda.channels, conda.pip) == ("environment.yml", (), ())


def test_python_is_src_layout_in_bentofile(tmp_path: Path) -> None:
    path = write_bentofile(tmp_path, "service: s\npython:\n  is_src_layout: true\n")
    assert load_bentofile(path).python.is_src_layout is True


def test_models_forms(tmp_path: Path) -> None:
    path = write_bentofile(
        tmp_path,
        "service: s\nmodels:\n  - iris:v1\n  - {tag: 'bert:latest', alias: bert, filter: 'x'}\n",
    )
    assert load_bentofile(path).models == ("iris:v1", "bert:latest")
