"""YAML -> cattrs -> :mod:`pipeline.config` models, with errors that name file, line and field:
:func:`load_bentofile` (or :func:`load_pyproject`) for a project, :func:`load_bento_yaml` for a
built bento.

The raw YAML is structured into the schema classes of :mod:`pipeline.schema` (which mirror what
BentoML writes); those are then mapped onto the one public model (:class:`pipeline.config.Bento`
for both ``bento.yaml`` shapes, :class:`pipeline.config.BentofileSpec` for ``bentofile.yaml``) by
:mod:`pipeline.sections`, and validated (:mod:`pipeline.validation`, against the distro table in
:mod:`render.distros`). Errors are made at a field of a :class:`pipeline.fieldpaths.Document`.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from pipeline import documents
from pipeline.config import Bento, BentofileSpec, CondaOptions, DockerOptions
from pipeline.dotenv import parse_dotenv as parse_dotenv
from pipeline.errors import ConfigError, PipelineWarning, describe_value
from pipeline.fieldpaths import (
    PYPROJECT,
    PYPROJECT_TABLE,
    Document,
    format_path,
    read_yaml,
    toml_lines,
)
from pipeline.fieldpaths import locate_field as locate_field
from pipeline.schema import BentofileSchema, BentoYamlSchema, ImageSection, attr_names, structure
from pipeline.sections import (
    baked_env,
    conda_from_section,
    docker_from_section,
    env_vars,
    prepare_sections,
    python_from_section,
)
from pipeline.validation import (
    check_env_names,
    check_one_line,
    check_single_line,
    check_template_path,
)
from pipeline.validation import validate_docker as validate_docker

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 backport
    import tomli as tomllib

BENTO_DOCKER_DIR = "env/docker"
BENTO_SETUP_SCRIPT = f"{BENTO_DOCKER_DIR}/setup_script"
BENTO_DOCKERFILE_TEMPLATE = f"{BENTO_DOCKER_DIR}/Dockerfile.template"
BENTO_WHEELS_DIR = "env/python/wheels"
BENTO_REQUIREMENTS_TXT = "env/python/requirements.txt"


def load_bentofile(path: str | os.PathLike[str]) -> BentofileSpec:
    """Load and validate a ``bentofile.yaml`` (or a ``pyproject.toml``: see
    :func:`load_pyproject`). Relative paths are checked against its directory."""
    file = Path(path)
    if file.name == PYPROJECT:
        return load_pyproject(file)
    return _bentofile_spec(read_yaml(file))


def pyproject_build_table(file: Path) -> bool:
    """Whether ``file`` (a ``pyproject.toml``) has a ``[tool.bentoml.build]`` table; an
    unreadable or malformed file counts as having one, so loading it reports the problem."""
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    table: Any = data
    for key in PYPROJECT_TABLE:
        table = table.get(key) if isinstance(table, dict) else None
    return table is not None


def load_pyproject(path: str | os.PathLike[str]) -> BentofileSpec:
    """``[tool.bentoml.build]`` of a ``pyproject.toml``: the same fields as ``bentofile.yaml``,
    errors naming ``tool.bentoml.build.<field>``. As BentoML: ``name`` defaults to
    ``project.name``, ``project.dependencies`` are added to ``python.packages``, and
    ``python.is_src_layout`` defaults to whether a ``src/`` directory sits next to the file."""
    file = Path(path)
    text = documents.read_text(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise ConfigError(
            f"malformed TOML: {exc}", file=file, line=int(match.group(1)) if match else None
        ) from None
    except RecursionError:
        deep = f"nested more than {documents.MAX_DEPTH} levels deep"
        raise ConfigError(deep, file=file) from None
    lines = toml_lines(text)
    documents.check_data(data, file, lines)
    table: Any = data
    for depth, key in enumerate(PYPROJECT_TABLE):
        table = table.get(key) if isinstance(table, dict) else None
        if table is None:
            raise ConfigError(
                "no [tool.bentoml.build] table",
                file=file,
                hint="put the bentofile.yaml keys under [tool.bentoml.build] (service = ...)",
            )
        if not isinstance(table, dict):
            where = format_path(PYPROJECT_TABLE[: depth + 1])
            raise ConfigError(
                f"expected a table, got {describe_value(table)}",
                file=file,
                field=where,
                line=lines.get(PYPROJECT_TABLE[: depth + 1]),
            )
    config = dict(table)
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    doc = Document(file=file, data=config, lines=lines, prefix=PYPROJECT_TABLE)
    if "name" not in config and isinstance(project.get("name"), str):
        config["name"] = project["name"]
    dependencies = project.get("dependencies") or []
    python = config.get("python")
    if dependencies and isinstance(dependencies, list):
        python = dict(python) if isinstance(python, Mapping) else {}
        packages = python.get("packages") or []
        if isinstance(packages, list):
            python["packages"] = [*packages, *dependencies]
        config["python"] = python
    python = config.get("python", {})
    src_layout = (file.parent / "src").is_dir()
    if src_layout and isinstance(python, Mapping) and "is_src_layout" not in python:
        config["python"] = {**python, "is_src_layout": True}
    return _bentofile_spec(doc)


def _bentofile_spec(doc: Document) -> BentofileSpec:
    file = doc.file
    base_dir = file.parent
    data = prepare_sections(doc, base_dir)
    check_one_line(doc, data)
    raw = structure(doc, data, BentofileSchema)

    if "service" in data and not raw.service.strip():
        raise doc.error(
            ("service",),
            "must name the service, e.g. 'service:MyService' (or be left out: the service "
            "defined in service.py, as BentoML)",
        )
    for index, pattern in enumerate(raw.include or ()):
        if _escapes_root(pattern):
            raise doc.error(
                ("include", index),
                f"pattern {pattern!r} points outside the project directory {base_dir}",
                hint="only files inside the project can be included; copy or move them in",
            )

    docker = docker_from_section(raw.docker)
    check_env_names(doc, docker.env, ("docker", "env"))
    envs = env_vars(doc, raw.envs)
    for index, item in enumerate(raw.envs or ()):
        if item.stage != "all" and item.name in docker.env:
            raise doc.error(
                ("docker", "env", item.name),
                f"{item.name!r} is baked into the image by docker.env, but envs[{index}] gives "
                f"it stage {item.stage!r} (not baked)",
                hint=f"keep {item.name} in one place: docker.env (baked) or envs with a stage",
            )
    docker = validate_docker(doc, docker, check_default_python=True)
    if docker.setup_script is not None:
        script = base_dir / docker.setup_script
        if not script.is_file():
            raise doc.error(
                ("docker", "setup_script"),
                f"setup script {docker.setup_script!r} does not exist (looked at {script})",
            )
        if not os.access(script, os.X_OK):
            raise doc.error(
                ("docker", "setup_script"),
                f"setup script {docker.setup_script!r} is not executable",
                hint=f"add a shebang line and run: chmod +x {script}",
            )
    if docker.dockerfile_template is not None:
        check_template_path(
            doc,
            docker.dockerfile_template,
            ("docker", "dockerfile_template"),
            base_dir / docker.dockerfile_template,
        )

    python = python_from_section(raw.python)
    if python.requirements_txt is not None and not (base_dir / python.requirements_txt).is_file():
        raise doc.error(
            ("python", "requirements_txt"),
            f"requirements file {python.requirements_txt!r} does not exist",
        )
    for index, wheel in enumerate(python.wheels):
        if not (base_dir / wheel).is_file():
            raise doc.error(("python", "wheels", index), f"wheel {wheel!r} does not exist")

    conda = conda_from_section(doc, raw.conda)
    if conda.environment_yml is not None and not (base_dir / conda.environment_yml).is_file():
        raise doc.error(
            ("conda", "environment_yml"), f"file {conda.environment_yml!r} does not exist"
        )
    if conda.environment_yml is not None:
        ignored = [k for k in ("channels", "dependencies", "pip") if getattr(raw.conda, k)]
        if ignored:
            warnings.warn(
                f"{doc.file}: {doc.where(('conda',))}: environment_yml is set, so "
                f"{', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} ignored (as BentoML)",
                PipelineWarning,
                stacklevel=2,
            )
            conda = CondaOptions(environment_yml=conda.environment_yml)

    check_single_line(doc, raw.labels or {}, ("labels",))
    return BentofileSpec(
        service=raw.service,
        path=file,
        name=raw.name,
        description=raw.description,
        labels=raw.labels or {},
        include=tuple(raw.include) if raw.include is not None else None,
        exclude=tuple(raw.exclude) if raw.exclude is not None else None,
        docker=docker,
        python=python,
        conda=conda,
        envs=envs,
        models=tuple(m.tag for m in raw.models or ()),
        args=raw.args or {},
    )


def _escapes_root(pattern: str) -> bool:
    """Whether a gitignore-style include pattern reaches outside the directory it is rooted in."""
    body = pattern.lstrip("!").strip()
    if os.path.isabs(body) and not body.startswith("/"):  # e.g. C:\ on Windows
        return True
    parts = [p for p in body.replace("\\", "/").split("/") if p]
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part != ".":
            depth += 1
    return False


def _in_bento(doc: Document, bento_dir: Path, value: str, fallback: str) -> str:
    """Where a file the bento.yaml names lives inside the bento, relative to the bento dir.

    Our builder records in-bento paths; BentoML records the user's original path and copies
    the file to a fixed place (``env/docker/setup_script``, ``env/docker/Dockerfile.template``).
    """
    candidate = Path(value)
    if not candidate.is_absolute() and (bento_dir / candidate).is_file():
        return candidate.as_posix()
    if (bento_dir / fallback).is_file():
        return fallback
    return value


def _all_model_tags(raw: BentoYamlSchema) -> tuple[str, ...]:
    """Top-level models plus those BentoML 1.2+ records per service, first mention first."""
    tags = [m.tag for m in raw.models or ()]
    for service in raw.services or ():
        if isinstance(service, Mapping):
            for model in service.get("models") or ():
                tag = model.get("tag") if isinstance(model, Mapping) else model
                if isinstance(tag, str):
                    tags.append(tag)
    return tuple(dict.fromkeys(tags))


def load_bento_yaml(path: str | os.PathLike[str]) -> Bento:
    """Load a bento's ``bento.yaml`` (spec 1 ``docker:`` or spec 2 ``image:`` shape)."""
    file = Path(path)
    if file.is_dir():
        file = file / "bento.yaml"
    doc = read_yaml(file)
    bento_dir = file.parent.absolute()
    known = set(attr_names(BentoYamlSchema))
    data = {k: v for k, v in prepare_sections(doc, bento_dir).items() if k in known}
    check_one_line(doc, data)
    raw = structure(doc, data, BentoYamlSchema)
    if raw.spec not in (1, 2):
        raise doc.error(
            ("spec",), f"unsupported bento.yaml spec {raw.spec}", hint="allowed: 1 or 2"
        )

    envs = env_vars(doc, raw.envs)
    python = python_from_section(raw.python)
    if raw.spec == 2 or raw.image is not None:
        if raw.docker is not None:
            raise doc.error(("docker",), "a spec 2 bento.yaml has an image: section, not docker:")
        image = raw.image or ImageSection()
        docker = DockerOptions(
            base_image=image.base_image or None,
            python_version=image.python_version or None,
            commands=tuple(image.commands),
            post_commands=tuple(image.post_commands),
            build_include=tuple(image.build_include),
            env=baked_env(envs),
        )
        python = attrs.evolve(python, requirements_text=image.python_requirements or None)
    else:
        docker = docker_from_section(raw.docker)
        check_env_names(doc, docker.env, ("docker", "env"))
        # BentoML 1.4 copies every `envs` entry into a spec-1 docker.env; the stage decides
        unbaked = {e.name for e in envs if e.stage != "all"}
        env = {k: v for k, v in docker.env.items() if k not in unbaked}
        docker = attrs.evolve(docker, env={**baked_env(envs), **env})
        docker = validate_docker(doc, docker).with_defaults()
        if docker.setup_script is not None:
            docker = attrs.evolve(
                docker,
                setup_script=_in_bento(doc, bento_dir, docker.setup_script, BENTO_SETUP_SCRIPT),
            )
        if docker.dockerfile_template is not None:
            template = _in_bento(
                doc, bento_dir, docker.dockerfile_template, BENTO_DOCKERFILE_TEMPLATE
            )
            check_template_path(
                doc, template, ("docker", "dockerfile_template"), bento_dir / template
            )
            docker = attrs.evolve(docker, dockerfile_template=template)
    if python.requirements_txt is not None:
        python = attrs.evolve(
            python,
            requirements_txt=_in_bento(
                doc, bento_dir, python.requirements_txt, BENTO_REQUIREMENTS_TXT
            ),
        )
    if python.wheels:
        python = attrs.evolve(
            python,
            wheels=tuple(
                _in_bento(doc, bento_dir, w, f"{BENTO_WHEELS_DIR}/{Path(w).name}")
                for w in python.wheels
            ),
        )

    creation_time = raw.creation_time
    if isinstance(creation_time, str):
        try:
            creation_time = datetime.fromisoformat(creation_time)
        except ValueError:
            raise doc.error(
                ("creation_time",), f"{creation_time!r} is not an ISO 8601 timestamp"
            ) from None
    elif creation_time is not None and not isinstance(creation_time, datetime):
        raise doc.error(
            ("creation_time",), f"expected a timestamp, got {describe_value(creation_time)}"
        )

    check_single_line(doc, raw.labels or {}, ("labels",))
    return Bento(
        name=raw.name,
        version=raw.version,
        path=bento_dir,
        service=raw.service,
        labels=raw.labels or {},
        docker=docker,
        python=python,
        models=_all_model_tags(raw),
        spec=raw.spec,
        conda=conda_from_section(doc, raw.conda),
        creation_time=creation_time,
        bentoml_version=raw.bentoml_version,
        envs=envs,
        args=raw.args or {},
    )
