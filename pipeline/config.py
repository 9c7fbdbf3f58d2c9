"""Typed configuration of a bento: the ``docker:``/``image:``, ``python:`` sections and metadata.

These attrs classes are the single model both ``bento.yaml`` shapes map onto (spec 1's
``docker:`` section from BentoML 1.0-1.2 and spec 2's ``image:`` section from 1.3+), and what
``bentofile.yaml`` is validated into. Loading (YAML -> cattrs -> these classes, with errors that
carry the YAML path) lives in :mod:`pipeline.loader`.

Paths inside a :class:`Bento` (``docker.setup_script``, ``docker.dockerfile_template``,
``python.requirements_txt``, ``python.wheels``) are relative to the bento directory
(``Bento.path``); paths inside a :class:`BentofileSpec` are relative to the project directory.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from attrs import evolve, field, frozen

DEFAULT_DISTRO = "debian"

#: ``envs[].stage`` values, as BentoML 1.4: ``all`` is baked (ARG + ENV), ``build`` is a build
#: secret during the install steps only, ``runtime`` is left for the deployment.
ENV_STAGES: tuple[str, ...] = ("all", "build", "runtime")


def _dict_copy(value: Mapping[str, str] | None) -> Mapping[str, str]:
    # A copy, so a caller's dict changing later does not change the model (typed read-only).
    return dict(value or {})


def _args_copy(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@frozen
class EnvVar:
    """One ``envs:`` entry. ``value`` is ``""`` when not given (as BentoML)."""

    name: str
    value: str = ""
    stage: str = "all"


def running_python_version() -> str:
    """The building interpreter's ``major.minor``: BentoML's default ``python_version``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@frozen
class DockerOptions:
    """The ``docker:`` section. ``None`` means "not set" so warnings can name what was set.

    ``cuda_version`` is always the full version (``12.8.1``) once loaded. ``env`` is what is
    baked into the image (ARG + ENV): the top-level ``envs:`` entries of stage ``all`` merged with
    ``docker.env`` (``docker.env`` wins); ``build`` and ``runtime`` entries are never in it.
    """

    distro: str | None = None
    python_version: str | None = None
    cuda_version: str | None = None
    system_packages: tuple[str, ...] = ()
    setup_script: str | None = None
    base_image: str | None = None
    dockerfile_template: str | None = None
    env: Mapping[str, str] = field(factory=dict, converter=_dict_copy)
    # Spec-2 (`image:`) extras: shell commands run as root before / after the python install.
    commands: tuple[str, ...] = ()
    post_commands: tuple[str, ...] = ()
    # Spec-2 `image.build_include`, kept as loaded; rendering does not use it (the build
    # context is the whole bento directory anyway).
    build_include: tuple[str, ...] = ()

    def with_defaults(self) -> DockerOptions:
        """Fill ``distro`` (debian) and ``python_version`` (the running interpreter's) unless a
        ``base_image`` is set - exactly when BentoML fills them."""
        if self.base_image is not None:
            return self
        return evolve(
            self,
            distro=self.distro or DEFAULT_DISTRO,
            python_version=self.python_version or running_python_version(),
        )


@frozen
class PythonOptions:
    """The ``python:`` section."""

    packages: tuple[str, ...] = ()
    requirements_txt: str | None = None
    lock_packages: bool | None = None
    index_url: str | None = None
    no_index: bool | None = None
    trusted_host: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    extra_index_url: tuple[str, ...] = ()
    pip_args: str | None = None
    wheels: tuple[str, ...] = ()
    pack_git_packages: bool | None = None
    # Spec-2 `image.python_requirements`: the requirements text itself (not a path).
    requirements_text: str | None = None
    # BentoML 1.4: the project keeps its code in src/, which becomes the bento's src/ root
    is_src_layout: bool | None = None


@frozen
class CondaOptions:
    """The ``conda:`` section. ``dependencies`` items are package specs (``{"pip": [...]}``
    entries are folded into ``pip``)."""

    environment_yml: str | None = None
    channels: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.environment_yml or self.channels or self.dependencies or self.pip)


@frozen
class Bento:
    """A located, loaded bento: metadata plus typed options and where its files are."""

    name: str
    version: str
    path: Path  # the bento directory (contains bento.yaml, src/, env/)
    service: str = ""
    labels: Mapping[str, str] = field(factory=dict, converter=_dict_copy)
    docker: DockerOptions = DockerOptions()
    python: PythonOptions = PythonOptions()
    models: tuple[str, ...] = ()
    spec: int = 1  # bento.yaml spec: 1 = docker: section, 2 = image: section
    conda: CondaOptions = CondaOptions()
    creation_time: datetime | None = None
    bentoml_version: str | None = None
    # every top-level `envs:` entry with its stage (docker.env holds the baked ones)
    envs: tuple[EnvVar, ...] = ()
    # top-level `args`: the service arguments (`bentoml.use_arguments()`), kept as loaded
    args: Mapping[str, Any] = field(factory=dict, converter=_args_copy)

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def build_envs(self) -> tuple[EnvVar, ...]:
        """``stage: build`` entries: build secrets during the install steps, never baked."""
        return tuple(e for e in self.envs if e.stage == "build")

    @property
    def bento_yaml(self) -> Path:
        return self.path / "bento.yaml"


@frozen
class BentofileSpec:
    """A validated ``bentofile.yaml`` (what ``build_bento`` turns into a bento).

    ``include``/``exclude`` are ``None`` when not set (BentoML's defaults: include everything,
    exclude nothing besides ``.bentoignore``).
    """

    service: str
    path: Path  # the bentofile.yaml itself; relative paths below resolve against its directory
    name: str | None = None
    description: str | None = None
    labels: Mapping[str, str] = field(factory=dict, converter=_dict_copy)
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    docker: DockerOptions = DockerOptions()
    python: PythonOptions = PythonOptions()
    conda: CondaOptions = CondaOptions()
    envs: tuple[EnvVar, ...] = ()
    models: tuple[str, ...] = ()
    args: Mapping[str, Any] = field(factory=dict, converter=_args_copy)

    @property
    def project_dir(self) -> Path:
        return self.path.parent
