"""Typed configuration of a bento: the ``docker:``/``image:``, ``python:`` sections and metadata.

These attrs classes are the single model both ``bento.yaml`` shapes map onto (spec 1's
``docker:`` section from BentoML 1.0-1.2 and spec 2's ``image:`` section from 1.3+), and what
``bentofile.yaml`` is validated into. Loading (YAML -> cattrs -> these classes, with errors that
carry the YAML path) lives in :mod:`pipeline.loader`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from attrs import field, frozen


def _frozen_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


@frozen
class DockerOptions:
    """The ``docker:`` section. ``None`` means "not set" so warnings can name what was set."""

    distro: str | None = None
    python_version: str | None = None
    cuda_version: str | None = None
    system_packages: tuple[str, ...] = ()
    setup_script: str | None = None
    base_image: str | None = None
    dockerfile_template: str | None = None
    env: Mapping[str, str] = field(factory=dict, converter=_frozen_map)
    # Spec-2 (`image:`) extras: shell commands run as root before / after the python install.
    commands: tuple[str, ...] = ()
    post_commands: tuple[str, ...] = ()


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


@frozen
class Bento:
    """A located, loaded bento: metadata plus typed options and where its files are."""

    name: str
    version: str
    path: Path  # the bento directory (contains bento.yaml, src/, env/)
    service: str = ""
    labels: Mapping[str, str] = field(factory=dict, converter=_frozen_map)
    docker: DockerOptions = DockerOptions()
    python: PythonOptions = PythonOptions()
    models: tuple[str, ...] = ()
    spec: int = 1  # bento.yaml spec: 1 = docker: section, 2 = image: section

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def bento_yaml(self) -> Path:
        return self.path / "bento.yaml"
