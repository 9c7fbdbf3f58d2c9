"""The raw sections of a bentofile or ``bento.yaml`` (:mod:`pipeline.schema`) as the option
models of :mod:`pipeline.config` (``docker``, ``python``, ``conda``, ``envs``), after the loose
forms BentoML accepts are normalized (:func:`prepare_sections`, before the converter runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.config import ENV_STAGES, CondaOptions, DockerOptions, EnvVar, PythonOptions
from pipeline.dotenv import ENV_NAME, normalize_env
from pipeline.errors import allowed, describe_value, did_you_mean
from pipeline.fieldpaths import Document, FieldPath
from pipeline.schema import CondaSection, DockerSection, EnvItem, PythonSection, structure_str
from pipeline.validation import check_single_line

#: what BentoML 1.4.40 makes of ``cuda_version: default``
BENTOML_DEFAULT_CUDA_VERSION = "12.8.1"


def _normalize_python_version(doc: Document, raw: Any, path: FieldPath) -> Any:
    if isinstance(raw, float):
        raise doc.error(
            path,
            f"expected a string like '3.11', got the number {raw!r}",
            hint=f'quote it: python_version: "{raw}" (YAML reads 3.10 as the number 3.1)',
        )
    return raw


def prepare_sections(doc: Document, base_dir: Path) -> dict[str, Any]:
    """Pre-cattrs normalization of the forms BentoML accepts loosely."""
    data = dict(doc.data)
    docker = data.get("docker")
    if isinstance(docker, Mapping):
        docker = dict(docker)
        if "env" in docker and docker["env"] is not None:
            docker["env"] = normalize_env(doc, docker["env"], ("docker", "env"), base_dir)
        if "python_version" in docker:
            docker["python_version"] = _normalize_python_version(
                doc, docker["python_version"], ("docker", "python_version")
            )
        if isinstance(docker.get("cuda_version"), float):
            docker["cuda_version"] = str(docker["cuda_version"])
        if docker.get("cuda_version") in ("", "None"):  # BentoML: no CUDA
            docker["cuda_version"] = None
        elif docker.get("cuda_version") == "default":  # BentoML's DEFAULT_CUDA_VERSION
            docker["cuda_version"] = BENTOML_DEFAULT_CUDA_VERSION
        data["docker"] = docker
    python = data.get("python")
    if isinstance(python, Mapping):
        python = dict(python)
        for key in ("trusted_host", "find_links", "extra_index_url"):
            if isinstance(python.get(key), str):
                python[key] = [python[key]]
        data["python"] = python
    return data


def _tuple(items: list[str] | None) -> tuple[str, ...]:
    return tuple(items or ())


def docker_from_section(raw: DockerSection | None) -> DockerOptions:
    if raw is None:
        return DockerOptions()
    return DockerOptions(
        distro=raw.distro,
        python_version=raw.python_version,
        cuda_version=raw.cuda_version,
        system_packages=_tuple(raw.system_packages),
        setup_script=raw.setup_script,
        base_image=raw.base_image,
        dockerfile_template=raw.dockerfile_template,
        env=raw.env or {},
    )


def python_from_section(raw: PythonSection | None) -> PythonOptions:
    if raw is None:
        return PythonOptions()
    return PythonOptions(
        packages=_tuple(raw.packages),
        requirements_txt=raw.requirements_txt,
        lock_packages=raw.lock_packages,
        index_url=raw.index_url,
        no_index=raw.no_index,
        trusted_host=_tuple(raw.trusted_host),
        find_links=_tuple(raw.find_links),
        extra_index_url=_tuple(raw.extra_index_url),
        pip_args=raw.pip_args,
        wheels=_tuple(raw.wheels),
        pack_git_packages=raw.pack_git_packages,
        is_src_layout=raw.is_src_layout,
    )


def conda_from_section(doc: Document, raw: CondaSection | None) -> CondaOptions:
    if raw is None:
        return CondaOptions()
    deps: list[str] = []
    pip = list(raw.pip or ())
    for index, item in enumerate(raw.dependencies or ()):
        path: FieldPath = ("conda", "dependencies", index)
        if isinstance(item, Mapping) and set(item) == {"pip"} and isinstance(item["pip"], list):
            pip.extend(structure_str(p, str) for p in item["pip"])
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            deps.append(str(item))
        else:
            raise doc.error(
                path, f"expected a package spec or {{pip: [...]}}, got {describe_value(item)}"
            )
    return CondaOptions(
        environment_yml=raw.environment_yml,
        channels=_tuple(raw.channels),
        dependencies=tuple(deps),
        pip=tuple(pip),
    )


def env_vars(doc: Document, items: list[EnvItem] | None) -> tuple[EnvVar, ...]:
    """The ``envs:`` entries (a later entry of the same name replaces an earlier one, as the
    environment would), names and values checked, ``stage`` one of :data:`ENV_STAGES`."""
    found: dict[str, EnvVar] = {}
    for index, item in enumerate(items or ()):
        path: FieldPath = ("envs", index)
        if not ENV_NAME.match(item.name):
            raise doc.error(
                (*path, "name"),
                f"{item.name!r} is not a valid environment variable name "
                "(letters, digits and '_', not starting with a digit)",
            )
        if item.stage not in ENV_STAGES:
            raise doc.error(
                (*path, "stage"),
                f"unknown stage {item.stage!r}{did_you_mean(item.stage, ENV_STAGES)}",
                hint=f"allowed: {allowed(ENV_STAGES)} (all: baked into the image; build: a "
                "build secret during the install steps only; runtime: set by the deployment)",
            )
        check_single_line(doc, {"value": item.value}, path)
        found.pop(item.name, None)
        found[item.name] = EnvVar(name=item.name, value=item.value, stage=item.stage)
    return tuple(found.values())


def baked_env(envs: tuple[EnvVar, ...]) -> dict[str, str]:
    """The ``stage: all`` entries as a mapping: what becomes ARG + ENV in the image."""
    return {e.name: e.value for e in envs if e.stage == "all"}
