"""The raw shapes of ``bentofile.yaml`` and ``bento.yaml`` (what BentoML writes, section by
section) and the one strict :data:`CONVERTER` that structures YAML data into them.

The converter forbids extra keys and keeps scalars strict: a list is never silently turned into
the string ``"['a']"``. :func:`structure` turns cattrs' structured errors into a
:class:`pipeline.errors.ConfigError` with the YAML path (``docker.env.FOO: expected a string, got
a list``) and, where the YAML node is known, its line. Mapping these shapes onto the models of
:mod:`pipeline.config` is :mod:`pipeline.sections` and :mod:`pipeline.loader`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_origin

import attrs
import cattrs
import cattrs.cols
from attrs import define, field
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn

from pipeline.errors import describe_value, did_you_mean
from pipeline.fieldpaths import Document, FieldPath, format_path

T = TypeVar("T")


@define
class DockerSection:
    distro: str | None = None
    python_version: str | None = None
    cuda_version: str | None = None
    env: dict[str, str] | None = None
    system_packages: list[str] | None = None
    setup_script: str | None = None
    base_image: str | None = None
    dockerfile_template: str | None = None


@define
class PythonSection:
    requirements_txt: str | None = None
    packages: list[str] | None = None
    lock_packages: bool | None = None
    pack_git_packages: bool | None = None
    index_url: str | None = None
    no_index: bool | None = None
    trusted_host: list[str] | None = None
    find_links: list[str] | None = None
    extra_index_url: list[str] | None = None
    pip_args: str | None = None
    wheels: list[str] | None = None
    is_src_layout: bool | None = None


@define
class CondaSection:
    environment_yml: str | None = None
    channels: list[str] | None = None
    dependencies: list[Any] | None = None
    pip: list[str] | None = None


@define
class EnvItem:
    name: str
    value: str = ""
    stage: str = "all"


@define
class ModelSpec:
    tag: str
    filter: str | None = None
    alias: str | None = None


@define
class BentofileSchema:
    service: str = ""  # BentoML: empty means the service defined in service.py
    name: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    docker: DockerSection | None = None
    python: PythonSection | None = None
    conda: CondaSection | None = None
    models: list[ModelSpec] | None = None
    envs: list[EnvItem] | None = None
    args: dict[str, Any] | None = None


@define
class ImageSection:
    base_image: str = ""
    python_version: str = ""
    commands: list[str] = field(factory=list)
    python_requirements: str = ""
    post_commands: list[str] = field(factory=list)
    build_include: list[str] = field(factory=list)


@define
class BentoModelInfo:
    tag: str
    module: str | None = None
    creation_time: Any = None
    alias: str | None = None
    registry: str | None = None
    metadata: Any = None


@define
class BentoYamlSchema:
    """Every top-level key BentoML 1.0-1.4 writes. Unknown top-level keys are dropped before
    structuring (BentoML itself tolerates them there, for forward compatibility); the option
    sections stay strict."""

    name: str
    version: str
    service: str = ""
    spec: int = 1
    bentoml_version: str | None = None
    creation_time: Any = None
    labels: dict[str, str] | None = None
    models: list[BentoModelInfo] | None = None
    runners: list[Any] | None = None
    entry_service: str | None = None
    services: list[Any] | None = None
    envs: list[EnvItem] | None = None
    schema: Any = None
    args: dict[str, Any] | None = None
    apis: list[Any] | None = None
    docker: DockerSection | None = None
    python: PythonSection | None = None
    conda: CondaSection | None = None
    image: ImageSection | None = None


_SECTION_NAMES: Mapping[type, str] = {
    DockerSection: "docker",
    PythonSection: "python",
    CondaSection: "conda",
    EnvItem: "envs",
    ModelSpec: "models",
    ImageSection: "image",
    BentoModelInfo: "models",
}


def structure_str(value: object, _: type) -> str:
    # Numbers are fine where a string is expected (`PORT: 3000`), containers are not.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(f"expected a string, got {describe_value(value)}")


def _structure_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {describe_value(value)}")


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected a whole number, got {describe_value(value)}")


def _structure_any(value: object, _: type) -> object:
    return value


def _is_list(tp: Any) -> bool:
    return get_origin(tp) is list


def _is_dict(tp: Any) -> bool:
    return get_origin(tp) is dict


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(str, structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(Any, _structure_any)

    def list_factory(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
        inner = cattrs.cols.list_structure_factory(tp, converter)

        def hook(value: Any, t: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected a list, got {describe_value(value)}")
            return inner(value, t)

        return hook

    def dict_factory(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
        inner = cattrs.cols.mapping_structure_factory(tp, converter)

        def hook(value: Any, t: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected a mapping, got {describe_value(value)}")
            return inner(value, t)

        return hook

    def attrs_factory(cl: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
        inner = make_dict_structure_fn(cl, converter, _cattrs_forbid_extra_keys=True)

        def hook(value: Any, t: Any) -> Any:
            if isinstance(value, str) and cl is ModelSpec:
                value = {"tag": value}  # `models: [name:version]` shorthand
            if isinstance(value, str) and cl is BentoModelInfo:
                value = {"tag": value}  # pre-1.0 bentos list model tags as strings
            if not isinstance(value, Mapping):
                raise TypeError(f"expected a mapping, got {describe_value(value)}")
            return inner(value, t)

        return hook

    conv.register_structure_hook_factory(_is_list, list_factory)
    conv.register_structure_hook_factory(_is_dict, dict_factory)
    conv.register_structure_hook_factory(attrs.has, attrs_factory)
    return conv


CONVERTER = _make_converter()


def attr_names(cl: type) -> list[str]:
    return [a.name for a in attrs.fields(cl)]


_Problem = tuple[FieldPath, str, str | None]


def _problems(exc: BaseException, path: FieldPath, top: str = "the top level") -> list[_Problem]:
    """Flatten a cattrs error tree into ``(path, message, hint)`` triples, in document order."""
    if isinstance(exc, ForbiddenExtraKeysError):
        names = attr_names(exc.cl)
        section = format_path(path)
        out: list[_Problem] = []
        for key in sorted(exc.extra_fields):
            where = f"the {section} section" if path else top
            message = f"unknown key {key!r} in {where}{did_you_mean(key, names)}"
            out.append(((*path, key), message, f"allowed keys: {', '.join(names)}"))
        return out
    if isinstance(exc, cattrs.BaseValidationError):
        found: list[_Problem] = []
        for sub in exc.exceptions:
            step: FieldPath = ()
            for note in getattr(sub, "__notes__", ()):
                if isinstance(note, cattrs.AttributeValidationNote):
                    step = (note.name,)
                elif isinstance(note, cattrs.IterableValidationNote):
                    step = (note.index,)
            found.extend(_problems(sub, (*path, *step), top))
        return found
    if isinstance(exc, KeyError):
        return [(path, "required key is missing", None)]
    if isinstance(exc, TypeError | ValueError):
        return [(path, str(exc), None)]
    return [(path, f"invalid value ({type(exc).__name__}: {exc})", None)]


def structure(doc: Document, data: Any, cl: type[T], base: FieldPath = ()) -> T:
    try:
        return CONVERTER.structure(data, cl)
    except (cattrs.BaseValidationError, ForbiddenExtraKeysError) as exc:
        problems = sorted(
            _problems(exc, base, doc.top), key=lambda p: (doc.line(p[0]) or 0, format_path(p[0]))
        )
        if not problems:  # pragma: no cover - cattrs always reports at least one
            raise doc.error(base, str(exc)) from None
        path, message, hint = problems[0]
        if len(problems) > 1:
            others = "; ".join(f"{doc.where(p) or '(top)'}: {m}" for p, m, _ in problems[1:4])
            more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
            hint = f"{hint}; also: {others}{more}" if hint else f"also: {others}{more}"
        raise doc.error(path, message, hint=hint) from None
