"""Checks of loaded options against what a build can use, each reported at the field of the
user's file: ``docker:`` against the distro table of :mod:`render.distros`
(:func:`validate_docker`), environment variable names, values that must fit on one Dockerfile
line, and template paths.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from pipeline.config import DockerOptions, running_python_version
from pipeline.dotenv import ENV_NAME
from pipeline.errors import ConfigError, PipelineWarning, allowed, did_you_mean
from pipeline.fieldpaths import Document, FieldPath
from render.distros import DISTROS, cuda_distros
from render.quoting import control_character

TEMPLATE_EXTENSIONS: tuple[str, ...] = (".j2", ".template", ".jinja")


PYTHON_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\w+)?$")


def validate_docker(
    doc: Document,
    docker: DockerOptions,
    section: FieldPath = ("docker",),
    *,
    check_default_python: bool = False,
) -> DockerOptions:
    """Check distro / python / CUDA against :data:`render.distros.DISTROS`; normalize versions
    (``python_version`` to ``major.minor``, ``cuda_version`` to the full version). With
    ``base_image`` set, warn once naming every ignored option and skip their checks.
    ``check_default_python``: an unset ``python_version`` is checked as the default it will
    become (the running interpreter's), so a bentofile is refused before its bento is written."""
    if docker.base_image is not None:
        ignored = [
            name
            for name, value in (
                ("distro", docker.distro),
                ("python_version", docker.python_version),
                ("cuda_version", docker.cuda_version),
                ("system_packages", docker.system_packages or None),
            )
            if value is not None
        ]
        if ignored:
            where = f"{doc.file}: {doc.where(section)}"
            warnings.warn(
                f"{where}: base_image {docker.base_image!r} is set, so "
                f"{', '.join(ignored)} {'is' if len(ignored) == 1 else 'are'} ignored",
                PipelineWarning,
                stacklevel=2,
            )
        return docker

    distro_name = docker.distro or "debian"
    spec = DISTROS.get(distro_name)
    if spec is None:
        raise doc.error(
            (*section, "distro"),
            f"unknown distro {distro_name!r}{did_you_mean(distro_name, DISTROS)}",
            hint=f"allowed: {allowed(DISTROS)}",
        )

    python_version = docker.python_version
    default = running_python_version()
    if python_version is None and check_default_python and default not in spec.python_versions:
        path = (*section, "distro") if docker.distro is not None else section
        raise ConfigError(
            f"Python {default} (the default python_version: the running interpreter's) is not "
            f"supported on {spec.name}",
            file=doc.file,
            field=doc.where((*section, "python_version")),
            line=doc.line(path),
            hint=f"set {doc.where((*section, 'python_version'))} to "
            f"{allowed(spec.python_versions)}",
        )
    if python_version is not None:
        match = PYTHON_VERSION.match(python_version)
        if match is None:
            raise doc.error(
                (*section, "python_version"),
                f"{python_version!r} is not a Python version (expected MAJOR.MINOR, e.g. '3.11')",
            )
        python_version = f"{match.group(1)}.{match.group(2)}"
        if python_version not in spec.python_versions:
            raise _unsupported(
                doc,
                (*section, "python_version"),
                f"Python {python_version}",
                spec.name,
                spec.python_versions,
            )

    cuda_version = docker.cuda_version
    if cuda_version is not None:
        if not spec.supports_cuda:
            raise doc.error(
                (*section, "cuda_version"),
                f"distro {distro_name!r} has no CUDA images",
                hint=f"distros with CUDA: {allowed(cuda_distros())}",
            )
        full = spec.resolve_cuda(cuda_version)
        if full is None:
            raise _unsupported(
                doc,
                (*section, "cuda_version"),
                f"CUDA {cuda_version}",
                spec.name,
                spec.cuda_versions,
            )
        cuda_version = full
        cuda_python = spec.cuda_python(full)
        wanted = python_version or running_python_version()
        if wanted not in cuda_python.versions:
            raise doc.error(
                (*section, "python_version") if python_version else (*section, "cuda_version"),
                f"Python {wanted} cannot be installed on the CUDA {full} image "
                f"({cuda_python.os}){'' if python_version else ' (the default python_version)'}",
                hint=f"python_version on it: {allowed(cuda_python.versions)}",
            )
    return attrs.evolve(docker, python_version=python_version, cuda_version=cuda_version)


def _unsupported(
    doc: Document, path: FieldPath, what: str, distro: str, supported: Iterable[str]
) -> ConfigError:
    """``what`` (e.g. ``Python 3.5``) is not among the ``distro``'s ``supported`` versions."""
    return doc.error(
        path,
        f"{what} is not supported on {distro}",
        hint=f"supported on {distro}: {allowed(supported)}",
    )


def check_template_path(doc: Document, value: str, path: FieldPath, resolved: Path) -> None:
    if resolved.suffix not in TEMPLATE_EXTENSIONS:
        raise doc.error(
            path,
            f"{value!r} has extension {resolved.suffix or '(none)'!r}; a dockerfile_template "
            f"must end in {allowed(TEMPLATE_EXTENSIONS)}",
        )
    if not resolved.is_file():
        raise doc.error(path, f"template {value!r} does not exist (looked at {resolved})")


def check_env_names(doc: Document, env: Mapping[str, str], path: FieldPath) -> None:
    """Names must be shell identifiers; values must fit on one Dockerfile line."""
    for key in env:
        if not ENV_NAME.match(key):
            raise doc.error(
                (*path, key),
                f"{key!r} is not a valid environment variable name "
                "(letters, digits and '_', not starting with a digit)",
            )
    check_single_line(doc, env, path)


def check_single_line(doc: Document, values: Mapping[str, str], path: FieldPath) -> None:
    """Reject control characters (a newline would start a new Dockerfile instruction).

    Checked here, at the edge, so a bad value is reported against the user's file before
    anything is written to the store, not later by the renderer against the stored copy.
    """
    for key, value in values.items():
        what = control_character(value) if isinstance(value, str) else None
        if what:
            raise doc.error(
                (*path, key),
                f"value {value!r} contains {what}; values must fit on one line "
                "(a newline would start a new Dockerfile instruction)",
            )


# every value in these reaches the Dockerfile, a requirements file or an engine's argv, one
# line each; the rest of a document (description, models, apis, services, schema) may be prose
_ONE_LINE_SECTIONS = frozenset(
    {"name", "version", "service", "labels", "include", "exclude", "docker", "image", "python",
     "conda", "envs", "args", "bentoml_version", "creation_time", "spec"}
)  # fmt: skip


# a spec-2 bento's requirements text, one requirement per line (written to a file, never inlined)
_MULTI_LINE_FIELDS = frozenset({("image", "python_requirements")})


def check_one_line(doc: Document, data: Mapping[str, Any]) -> None:
    """No control character, newline or Unicode line separator in any key or value of the
    sections that reach the build (a newline in a package name would add requirement lines, in
    a command a new ``RUN``); reported against the user's file before anything is written."""
    stack: list[tuple[Any, FieldPath]] = [
        (value, (key,)) for key, value in reversed(list(data.items())) if key in _ONE_LINE_SECTIONS
    ]
    while stack:  # depth first, in file order: the first bad value is the one reported
        value, path = stack.pop()
        if path in _MULTI_LINE_FIELDS:
            continue
        if isinstance(value, str):
            what = control_character(value)
            if what:
                raise doc.error(
                    path,
                    f"value {value!r} contains {what}; values must fit on one line (a new line "
                    "would start a new Dockerfile instruction or requirement)",
                )
        elif isinstance(value, Mapping):
            for key in value:
                what = control_character(key) if isinstance(key, str) else None
                if what:
                    raise doc.error((*path, key), f"key {key!r} contains {what}")
            stack.extend((value[key], (*path, key)) for key in reversed(list(value)))
        elif isinstance(value, list):
            stack.extend((value[i], (*path, i)) for i in reversed(range(len(value))))
