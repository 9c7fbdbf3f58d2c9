"""The cells of a matrix build (platform x python x distro x cuda) and their results: expanded
from the options against the distro table, each with its tag; a cell the distro cannot do is
skipped with the reason (:func:`expand_matrix`, :func:`cell_tag`, :class:`MatrixResult`).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Sequence
from typing import Literal

from attrs import evolve, frozen

from pipeline import api
from pipeline.backends.base import native_platform
from pipeline.config import Bento, DockerOptions
from pipeline.errors import ConfigError, PipelineError, allowed, did_you_mean
from pipeline.fieldpaths import Document
from pipeline.request import BuildResult
from pipeline.validation import PYTHON_VERSION, validate_docker
from render.distros import ALL_ARCHITECTURES, ALL_CUDA_VERSIONS, DISTROS

#: the default tag of a cell, e.g. ``hello:1.0-py3.11-debian-amd64`` or
#: ``hello:1.0-py3.11-debian-cuda12.8.1-arm64``
DEFAULT_TAG_TEMPLATE = "{name}:{version}-py{python}-{distro}{cuda}-{arch}"
#: the default for a bento with a custom ``base_image`` (no distro / python axes)
DEFAULT_BASE_IMAGE_TAG_TEMPLATE = "{name}:{version}-{arch}"
#: what a tag template may use
TEMPLATE_FIELDS: tuple[str, ...] = (
    "name",  # the bento name, lowercased
    "version",  # the bento version
    "python",  # 3.11
    "python_nodot",  # 311
    "distro",  # debian
    "cuda",  # "-cuda12.8.1", or "" without CUDA
    "cuda_version",  # "12.8.1", or "" without CUDA
    "arch",  # amd64, arm64, arm-v7
    "os",  # linux
    "platform",  # linux-amd64
)
DEFAULT_CONCURRENCY = 2
#: ``cuda_versions`` value meaning "no CUDA" (so ``none,12.8`` gives CPU and GPU images)
NO_CUDA = "none"

_KNOWN_PYTHONS: tuple[str, ...] = tuple(
    sorted(
        {v for spec in DISTROS.values() for v in spec.python_versions},
        key=lambda v: tuple(int(p) for p in v.split(".")),
    )
)
Status = Literal["ok", "failed", "skipped", "cancelled"]
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped", "cancelled")
# Build options a matrix cannot pass to every cell alike: option -> why
CELL_OWN_OPTIONS = {
    "tags": "each cell's tag comes from tag_template",
    "output": "every cell would write the same destination; use push=True or load=True",
    "iidfile": "every cell would write its image id to the same file; read each cell's result",
    "metadata_file": "every cell would write the same file; read each cell's result",
    "quiet": "a matrix reports one line per cell; use output json for machine-readable results",
}


@frozen
class Cell:
    """One combination. ``python``/``distro`` are None for a bento with its own base image."""

    platform: str
    python: str | None
    distro: str | None
    cuda: str | None = None  # the full CUDA version

    @property
    def arch(self) -> str:
        """``linux/amd64`` -> ``amd64``; ``linux/arm/v7`` -> ``arm-v7``."""
        return self.platform.split("/", 1)[1].replace("/", "-")

    @property
    def key(self) -> str:
        """A short readable id: ``py3.11-debian-cuda12.8.1-amd64``."""
        parts = [f"py{self.python}" if self.python else None, self.distro]
        parts.append(f"cuda{self.cuda}" if self.cuda else None)
        parts.append(self.arch)
        return "-".join(p for p in parts if p)

    def to_json(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "python": self.python,
            "distro": self.distro,
            "cuda": self.cuda,
        }


@frozen
class PlannedCell:
    """A cell with what it builds (the bento with its docker options overridden, the tag), or
    why it is skipped."""

    cell: Cell
    bento: Bento
    tag: str | None = None
    skip_reason: str | None = None

    @property
    def runnable(self) -> bool:
        return self.skip_reason is None


@frozen
class MatrixPlan:
    """The expanded matrix, in product order (python, distro, cuda, platform)."""

    bento: Bento
    cells: tuple[PlannedCell, ...]

    @property
    def runnable(self) -> tuple[PlannedCell, ...]:
        return tuple(c for c in self.cells if c.runnable)


@frozen
class CellResult:
    """One row of a :class:`MatrixResult`."""

    cell: Cell
    status: Status
    tag: str | None = None
    result: BuildResult | None = None
    error: str | None = None  # the error text (failed) or the reason (skipped / cancelled)
    duration: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "cell": self.cell.key,
            **self.cell.to_json(),
            "status": self.status,
            "tag": self.tag,
            "duration": round(self.duration, 3),
            "error": self.error,
            "result": self.result.to_json() if self.result is not None else None,
        }


@frozen
class MatrixResult:
    """One row per cell, in the order the cells were expanded."""

    bento: str  # name:version
    backend: str
    rows: tuple[CellResult, ...]
    duration: float = 0.0

    def by_status(self, status: Status) -> tuple[CellResult, ...]:
        return tuple(row for row in self.rows if row.status == status)

    @property
    def ok(self) -> bool:
        """True when every cell that was not skipped built."""
        return all(row.status in ("ok", "skipped") for row in self.rows)

    def to_json(self) -> dict[str, object]:
        return {
            "bento": self.bento,
            "backend": self.backend,
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "counts": {s: sum(1 for r in self.rows if r.status == s) for s in STATUSES},
            "cells": [row.to_json() for row in self.rows],
        }


def _values(value: str | Sequence[str] | None, option: str) -> tuple[str, ...]:
    """``"a,b"`` or ``["a", "b,c"]`` -> ``("a", "b", "c")``, duplicates dropped."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    result: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                raise ConfigError(f"empty value in {item!r}", field=option)
            if part not in result:
                result.append(part)
    return tuple(result)


def check_tag_template(template: str) -> str:
    """Refuse placeholders the template cannot fill (naming the allowed ones)."""
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise ConfigError(
            f"malformed tag template {template!r}: {exc}", field="--tag-template"
        ) from None
    for name in fields:
        if name not in TEMPLATE_FIELDS:
            raise ConfigError(
                f"unknown placeholder {{{name}}} in tag template {template!r}"
                f"{did_you_mean(name, TEMPLATE_FIELDS)}",
                field="--tag-template",
                hint=f"allowed: {allowed('{' + f + '}' for f in TEMPLATE_FIELDS)}",
            )
    return template


def cell_tag(template: str, bento: Bento, cell: Cell) -> str:
    values = {
        "name": bento.name.lower(),
        "version": bento.version,
        "python": cell.python or "",
        "python_nodot": (cell.python or "").replace(".", ""),
        "distro": cell.distro or "",
        "cuda": f"-cuda{cell.cuda}" if cell.cuda else "",
        "cuda_version": cell.cuda or "",
        "arch": cell.arch,
        "os": cell.platform.split("/", 1)[0],
        "platform": cell.platform.replace("/", "-"),
    }
    return template.format(**values)


def _validate_docker(bento: Bento, docker: DockerOptions) -> DockerOptions:
    """The loader's own check of ``docker:`` options against the distro table (same errors)."""
    return validate_docker(Document(file=bento.bento_yaml, data=None, lines={}), docker)


def _reason(error: PipelineError) -> str:
    return f"{error.message} ({error.hint})" if error.hint else error.message


def _arch_reason(distro: str, cuda: str | None, arch: str) -> str | None:
    spec = DISTROS[distro]
    supported = spec.cuda_architectures if cuda else spec.architectures
    if arch in supported:
        return None
    what = f"{distro} CUDA images" if cuda else distro
    return f"{arch} is not supported by {what} (supported: {allowed(supported)})"


def expand_matrix(
    bento: Bento,
    *,
    platforms: str | Sequence[str] | None = None,
    python_versions: str | Sequence[str] | None = None,
    distros: str | Sequence[str] | None = None,
    cuda_versions: str | Sequence[str] | None = None,
    tag_template: str | None = None,
) -> MatrixPlan:
    """The cells of the matrix, each with its bento (docker options overridden) and tag.

    An axis left out takes the bento's own value (platform: this machine's). Pure.
    """
    own = bento.docker.with_defaults()
    platform_values = api.parse_platforms(_values(platforms, "--platform")) or (native_platform(),)
    python_values = _values(python_versions, "--python")
    distro_values = _values(distros, "--distro")
    cuda_values = _values(cuda_versions, "--cuda")

    if own.base_image is not None:
        given = [
            option
            for option, values in (
                ("--python", python_values),
                ("--distro", distro_values),
                ("--cuda", cuda_values),
            )
            if values
        ]
        if given:
            raise ConfigError(
                f"bento {bento.tag} sets base_image {own.base_image!r}, so {', '.join(given)} "
                "cannot change its image (only --platform can vary)",
                field=given[0],
            )
        template = check_tag_template(tag_template or DEFAULT_BASE_IMAGE_TAG_TEMPLATE)
        cells = [PlannedCell(Cell(p, None, None), bento) for p in platform_values]
        return _tagged(bento, template, cells)

    for name in distro_values:
        if name not in DISTROS:
            raise ConfigError(
                f"unknown distro {name!r}{did_you_mean(name, DISTROS)}",
                field="--distro",
                hint=f"allowed: {allowed(DISTROS)}",
            )
    for platform in platform_values:
        arch = platform.split("/", 1)[1].replace("/", "-")
        if arch not in ALL_ARCHITECTURES:
            raise ConfigError(
                f"no distro has images for {platform}",
                field="--platform",
                hint=f"architectures: {allowed(ALL_ARCHITECTURES)}",
            )
    for value in python_values:
        match = PYTHON_VERSION.match(value)
        if match is None:
            raise ConfigError(
                f"{value!r} is not a Python version (expected MAJOR.MINOR, e.g. '3.11')",
                field="--python",
            )
        if f"{match.group(1)}.{match.group(2)}" not in _KNOWN_PYTHONS:
            raise ConfigError(
                f"no distro has Python {value}",
                field="--python",
                hint=f"allowed: {allowed(_KNOWN_PYTHONS)}",
            )
    for value in cuda_values:
        if value.lower() != NO_CUDA and not any(
            spec.resolve_cuda(value) for spec in DISTROS.values()
        ):
            raise ConfigError(
                f"no distro has CUDA {value}",
                field="--cuda",
                hint=f"allowed: {allowed(ALL_CUDA_VERSIONS)} (or a prefix such as '12.8'), "
                f"or {NO_CUDA!r}",
            )
    distro_values = distro_values or (own.distro or "debian",)
    python_values = python_values or ((own.python_version,) if own.python_version else ())
    cuda_axis: tuple[str | None, ...] = tuple(
        None if value.lower() == NO_CUDA else value for value in cuda_values
    ) or (own.cuda_version,)

    template = check_tag_template(tag_template or DEFAULT_TAG_TEMPLATE)
    planned: list[PlannedCell] = []
    seen: set[Cell] = set()
    for python, distro, cuda in itertools.product(python_values, distro_values, cuda_axis):
        docker = evolve(bento.docker, distro=distro, python_version=python, cuda_version=cuda)
        reason: str | None = None
        try:
            docker = _validate_docker(bento, docker)
        except ConfigError as error:  # known values (checked above) this distro does not have
            reason = _reason(error)
        for platform in platform_values:
            cuda_full = docker.cuda_version
            if reason is not None and cuda is not None:  # not normalized by the loader
                cuda_full = DISTROS[distro].resolve_cuda(cuda) or cuda
            cell = Cell(platform, docker.python_version or python, distro, cuda_full)
            if cell in seen:  # "3.11" and "3.11.4", or "12.8" and "12.8.1"
                continue
            seen.add(cell)
            why = reason or _arch_reason(distro, cell.cuda, cell.arch)
            planned.append(PlannedCell(cell, evolve(bento, docker=docker), skip_reason=why))

    if not any(p.runnable for p in planned):
        reasons = dict.fromkeys(p.skip_reason or "" for p in planned)
        raise ConfigError(
            f"every cell of the matrix is skipped: {'; '.join(reasons)}",
            hint="pick values the distros have (`python -m pipeline matrix --help`)",
        )
    return _tagged(bento, template, planned)


def _tagged(bento: Bento, template: str, cells: Sequence[PlannedCell]) -> MatrixPlan:
    tagged: list[PlannedCell] = []
    owner: dict[str, Cell] = {}
    for planned in cells:
        if not planned.runnable:
            tagged.append(planned)
            continue
        tag = cell_tag(template, bento, planned.cell)
        try:
            api.parse_tags([tag])
        except ConfigError as error:
            raise ConfigError(
                f"tag template {template!r} gives cell {planned.cell.key} the tag: "
                f"{error.message}",
                field="--tag-template",
            ) from None
        if tag in owner:
            raise ConfigError(
                f"tag template {template!r} gives cells {owner[tag].key} and "
                f"{planned.cell.key} the same tag {tag!r}",
                field="--tag-template",
                hint="add the placeholders that differ, e.g. {arch}, {python} or {distro}",
            )
        owner[tag] = planned.cell
        tagged.append(evolve(planned, tag=tag))
    return MatrixPlan(bento, tuple(tagged))
