"""YAML -> cattrs -> :mod:`pipeline.config` models, with errors that name file, line and field.

One :data:`CONVERTER` (forbidden extra keys, strict scalars: a list is never silently turned into
the string ``"['a']"``) structures the raw YAML into private schema classes that mirror what
BentoML writes; those are then mapped onto the one public model (:class:`pipeline.config.Bento`
for both ``bento.yaml`` shapes, :class:`pipeline.config.BentofileSpec` for ``bentofile.yaml``)
and validated against the distro table in :mod:`render.distros`.

cattrs' structured errors become :class:`pipeline.errors.ConfigError` with the YAML path
(``docker.env.FOO: expected a string, got a list``) and, where the YAML node is known, its line.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, get_origin

import attrs
import cattrs
import cattrs.cols
from attrs import define, field
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn

from pipeline import documents
from pipeline.config import (
    ENV_STAGES,
    Bento,
    BentofileSpec,
    CondaOptions,
    DockerOptions,
    EnvVar,
    PythonOptions,
    running_python_version,
)
from pipeline.errors import ConfigError, PipelineWarning, allowed, did_you_mean
from render.distros import DISTROS, cuda_distros
from render.quoting import control_character

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 backport
    import tomli as tomllib

T = TypeVar("T")
FieldPath = documents.FieldPath

TEMPLATE_EXTENSIONS: tuple[str, ...] = (".j2", ".template", ".jinja")
BENTO_DOCKER_DIR = "env/docker"
BENTO_SETUP_SCRIPT = f"{BENTO_DOCKER_DIR}/setup_script"
BENTO_DOCKERFILE_TEMPLATE = f"{BENTO_DOCKER_DIR}/Dockerfile.template"
BENTO_WHEELS_DIR = "env/python/wheels"
BENTO_REQUIREMENTS_TXT = "env/python/requirements.txt"

#: what BentoML 1.4.40 makes of ``cuda_version: default``
BENTOML_DEFAULT_CUDA_VERSION = "12.8.1"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\w+)?$")


# --- raw schema: what the YAML files contain --------------------------------------------------


@define
class _DockerSection:
    distro: str | None = None
    python_version: str | None = None
    cuda_version: str | None = None
    env: dict[str, str] | None = None
    system_packages: list[str] | None = None
    setup_script: str | None = None
    base_image: str | None = None
    dockerfile_template: str | None = None


@define
class _PythonSection:
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
class _CondaSection:
    environment_yml: str | None = None
    channels: list[str] | None = None
    dependencies: list[Any] | None = None
    pip: list[str] | None = None


@define
class _EnvItem:
    name: str
    value: str = ""
    stage: str = "all"


@define
class _ModelSpec:
    tag: str
    filter: str | None = None
    alias: str | None = None


@define
class _Bentofile:
    service: str = ""  # BentoML: empty means the service defined in service.py
    name: str | None = None
    description: str | None = None
    labels: dict[str, str] | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    docker: _DockerSection | None = None
    python: _PythonSection | None = None
    conda: _CondaSection | None = None
    models: list[_ModelSpec] | None = None
    envs: list[_EnvItem] | None = None
    args: dict[str, Any] | None = None


@define
class _ImageSection:
    base_image: str = ""
    python_version: str = ""
    commands: list[str] = field(factory=list)
    python_requirements: str = ""
    post_commands: list[str] = field(factory=list)
    build_include: list[str] = field(factory=list)


@define
class _BentoModelInfo:
    tag: str
    module: str | None = None
    creation_time: Any = None
    alias: str | None = None
    registry: str | None = None
    metadata: Any = None


@define
class _BentoYaml:
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
    models: list[_BentoModelInfo] | None = None
    runners: list[Any] | None = None
    entry_service: str | None = None
    services: list[Any] | None = None
    envs: list[_EnvItem] | None = None
    schema: Any = None
    args: dict[str, Any] | None = None
    apis: list[Any] | None = None
    docker: _DockerSection | None = None
    python: _PythonSection | None = None
    conda: _CondaSection | None = None
    image: _ImageSection | None = None


_SECTION_NAMES: Mapping[type, str] = {
    _DockerSection: "docker",
    _PythonSection: "python",
    _CondaSection: "conda",
    _EnvItem: "envs",
    _ModelSpec: "models",
    _ImageSection: "image",
    _BentoModelInfo: "models",
}


# --- the converter ----------------------------------------------------------------------------


def describe_value(value: object) -> str:
    """YAML-flavoured name of a value's type, for messages: ``a list``, ``a mapping``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, datetime):
        return "a timestamp"
    return f"a {type(value).__name__}"


def _structure_str(value: object, _: type) -> str:
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
    conv.register_structure_hook(str, _structure_str)
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
            if isinstance(value, str) and cl is _ModelSpec:
                value = {"tag": value}  # `models: [name:version]` shorthand
            if isinstance(value, str) and cl is _BentoModelInfo:
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


# --- reading YAML with line numbers -----------------------------------------------------------


@define
class _Document:
    file: Path
    data: Any
    lines: dict[FieldPath, int]  # field path -> 1-based line of its key (or item)
    # where `data` sits in the file: () for YAML, ("tool", "bentoml", "build") in pyproject.toml
    prefix: FieldPath = ()

    def line(self, path: FieldPath) -> int | None:
        """Line of the longest known prefix of ``path`` (relative to ``data``)."""
        return documents.line_of(self.lines, (*self.prefix, *path))

    def where(self, path: FieldPath) -> str:
        """The dotted path of ``path`` in the file (``tool.bentoml.build.docker.distro``)."""
        return format_path((*self.prefix, *path))

    @property
    def top(self) -> str:
        return f"the {format_path(self.prefix)} table" if self.prefix else "the top level"

    def error(self, path: FieldPath, message: str, *, hint: str | None = None) -> ConfigError:
        return ConfigError(
            message,
            file=self.file,
            field=self.where(path) or None,
            line=self.line(path),
            hint=hint,
        )


format_path = documents.format_path


def _read_yaml(file: Path) -> _Document:
    data, lines = documents.read_yaml(file)  # bounded: size, depth, aliases, keys, text
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys (service:, docker:, ...), got {describe_value(data)}",
            file=file,
            line=1,
        )
    return _Document(file=file, data=data, lines=lines)


# --- cattrs errors -> ConfigError -------------------------------------------------------------


def _attr_names(cl: type) -> list[str]:
    return [a.name for a in attrs.fields(cl)]


_Problem = tuple[FieldPath, str, str | None]


def _problems(exc: BaseException, path: FieldPath, top: str = "the top level") -> list[_Problem]:
    """Flatten a cattrs error tree into ``(path, message, hint)`` triples, in document order."""
    if isinstance(exc, ForbiddenExtraKeysError):
        names = _attr_names(exc.cl)
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


def _structure(doc: _Document, data: Any, cl: type[T], base: FieldPath = ()) -> T:
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


# --- docker.env: dict, list of K=V, or a dotenv file ------------------------------------------


def parse_dotenv(text: str, *, file: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefix, ``#`` comments, single/double quotes allowed)."""
    result: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_NAME.match(key):
            # never the line itself: a dotenv file holds values that may be secrets
            found = f"the key is {key[:40]!a}" if sep else "the line has no '='"
            raise ConfigError(
                f"expected KEY=VALUE with KEY made of letters, digits and '_' ({found}; "
                "values are not shown)",
                file=file,
                line=number,
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        result[key] = value
    return result


def _normalize_env(doc: _Document, raw: Any, path: FieldPath, base_dir: Path) -> Any:
    """Turn the list and dotenv forms of ``docker.env`` into a mapping; leave others to cattrs."""
    if isinstance(raw, str):
        try:
            env_file = Path(os.path.expandvars(raw)).expanduser()
        except RuntimeError:
            raise doc.error(path, f"cannot expand {raw.split('/', 1)[0]!r}: no such user") from None
        if not env_file.is_absolute():
            env_file = base_dir / env_file
        if not env_file.is_file():
            raise doc.error(
                path,
                f"{raw!r} is not a dotenv file (expected a mapping, a list of KEY=VALUE or the "
                "path of a .env file)",
            )
        try:
            text = env_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise doc.error(path, f"cannot read dotenv file {str(env_file)!r}: {exc}") from None
        return parse_dotenv(text, file=env_file)
    if isinstance(raw, list):
        env: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if not isinstance(item, str):
                raise doc.error(
                    (*path, index), f"expected a KEY=VALUE string, got {describe_value(item)}"
                )
            if "=" not in item:
                raise doc.error((*path, index), f"expected KEY=VALUE, got {item!r}")
            key, _, value = item.partition("=")
            env[key.strip()] = value
        return env
    return raw


def _check_env_names(doc: _Document, env: Mapping[str, str], path: FieldPath) -> None:
    """Names must be shell identifiers; values must fit on one Dockerfile line."""
    for key in env:
        if not _ENV_NAME.match(key):
            raise doc.error(
                (*path, key),
                f"{key!r} is not a valid environment variable name "
                "(letters, digits and '_', not starting with a digit)",
            )
    _check_single_line(doc, env, path)


def _check_single_line(doc: _Document, values: Mapping[str, str], path: FieldPath) -> None:
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


def _check_one_line(doc: _Document, data: Mapping[str, Any]) -> None:
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


# --- validation against the distro table ------------------------------------------------------


def _normalize_python_version(doc: _Document, raw: Any, path: FieldPath) -> Any:
    if isinstance(raw, float):
        raise doc.error(
            path,
            f"expected a string like '3.11', got the number {raw!r}",
            hint=f'quote it: python_version: "{raw}" (YAML reads 3.10 as the number 3.1)',
        )
    return raw


def validate_docker(
    doc: _Document,
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
        match = _PYTHON_VERSION.match(python_version)
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
    doc: _Document, path: FieldPath, what: str, distro: str, supported: Iterable[str]
) -> ConfigError:
    """``what`` (e.g. ``Python 3.5``) is not among the ``distro``'s ``supported`` versions."""
    return doc.error(
        path,
        f"{what} is not supported on {distro}",
        hint=f"supported on {distro}: {allowed(supported)}",
    )


def _check_template_path(doc: _Document, value: str, path: FieldPath, resolved: Path) -> None:
    if resolved.suffix not in TEMPLATE_EXTENSIONS:
        raise doc.error(
            path,
            f"{value!r} has extension {resolved.suffix or '(none)'!r}; a dockerfile_template "
            f"must end in {allowed(TEMPLATE_EXTENSIONS)}",
        )
    if not resolved.is_file():
        raise doc.error(path, f"template {value!r} does not exist (looked at {resolved})")


# --- raw -> model -----------------------------------------------------------------------------


def _tuple(items: list[str] | None) -> tuple[str, ...]:
    return tuple(items or ())


def _docker_from_section(raw: _DockerSection | None) -> DockerOptions:
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


def _python_from_section(raw: _PythonSection | None) -> PythonOptions:
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


def _conda_from_section(doc: _Document, raw: _CondaSection | None) -> CondaOptions:
    if raw is None:
        return CondaOptions()
    deps: list[str] = []
    pip = list(raw.pip or ())
    for index, item in enumerate(raw.dependencies or ()):
        path: FieldPath = ("conda", "dependencies", index)
        if isinstance(item, Mapping) and set(item) == {"pip"} and isinstance(item["pip"], list):
            pip.extend(_structure_str(p, str) for p in item["pip"])
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


def _prepare_sections(doc: _Document, base_dir: Path) -> dict[str, Any]:
    """Pre-cattrs normalization of the forms BentoML accepts loosely."""
    data = dict(doc.data)
    docker = data.get("docker")
    if isinstance(docker, Mapping):
        docker = dict(docker)
        if "env" in docker and docker["env"] is not None:
            docker["env"] = _normalize_env(doc, docker["env"], ("docker", "env"), base_dir)
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


def _envs(doc: _Document, items: list[_EnvItem] | None) -> tuple[EnvVar, ...]:
    """The ``envs:`` entries (a later entry of the same name replaces an earlier one, as the
    environment would), names and values checked, ``stage`` one of :data:`ENV_STAGES`."""
    found: dict[str, EnvVar] = {}
    for index, item in enumerate(items or ()):
        path: FieldPath = ("envs", index)
        if not _ENV_NAME.match(item.name):
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
        _check_single_line(doc, {"value": item.value}, path)
        found.pop(item.name, None)
        found[item.name] = EnvVar(name=item.name, value=item.value, stage=item.stage)
    return tuple(found.values())


def _baked(envs: tuple[EnvVar, ...]) -> dict[str, str]:
    """The ``stage: all`` entries as a mapping: what becomes ARG + ENV in the image."""
    return {e.name: e.value for e in envs if e.stage == "all"}


def load_bentofile(path: str | os.PathLike[str]) -> BentofileSpec:
    """Load and validate a ``bentofile.yaml`` (or a ``pyproject.toml``: see
    :func:`load_pyproject`). Relative paths are checked against its directory."""
    file = Path(path)
    if file.name == PYPROJECT:
        return load_pyproject(file)
    return _bentofile_spec(_read_yaml(file))


PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE: FieldPath = ("tool", "bentoml", "build")


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
    lines = _toml_lines(text)
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
    doc = _Document(file=file, data=config, lines=lines, prefix=PYPROJECT_TABLE)
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


_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"' -]+?)\s*=")


def _toml_key(text: str) -> FieldPath:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def _toml_lines(text: str) -> dict[FieldPath, int]:
    """Field path -> line for table headers and ``key = value`` lines (what the errors need;
    keys inside multi-line arrays or inline tables get the line of their outer key)."""
    lines: dict[FieldPath, int] = {}
    table: FieldPath = ()
    arrays: dict[FieldPath, int] = {}
    depth = 0  # open brackets of a multi-line value
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0] if '"' not in raw and "'" not in raw else raw
        if depth == 0 and (header := _TOML_HEADER.match(line)):
            path = _toml_key(header.group(2))
            if header.group(1) == "[[":
                arrays[path] = arrays.get(path, -1) + 1
                lines.setdefault(path, number)
                path = (*path, arrays[path])
            table = path
            lines.setdefault(table, number)
            continue
        if depth == 0 and (key := _TOML_KEY.match(line)):
            lines.setdefault((*table, *_toml_key(key.group(1))), number)
        depth = max(
            0, depth + line.count("[") + line.count("{") - line.count("]") - line.count("}")
        )
    return lines


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(field: str) -> FieldPath:
    """``docker.env.FOO`` / ``envs[1].value`` -> ``("docker", "env", "FOO")`` / ``("envs", 1,
    "value")`` (the inverse of :func:`format_path`)."""
    return tuple(int(index) if index else name for name, index in _PATH_PART.findall(field))


def locate_field(file: Path, field: str | None) -> tuple[str | None, int | None]:
    """Where ``field`` (a path in bentofile terms, e.g. ``docker.python_version``) is in the
    user's ``file`` (``bentofile.yaml`` or ``pyproject.toml``): the field as that file spells it
    (``tool.bentoml.build.docker.python_version`` in pyproject.toml) and the line of its longest
    prefix that the file has; ``(field, None)`` when the file cannot be read."""
    try:
        if file.name == PYPROJECT:
            doc = _Document(
                file=file,
                data=None,
                lines=_toml_lines(file.read_text(encoding="utf-8")),
                prefix=PYPROJECT_TABLE,
            )
        else:
            doc = _read_yaml(file)
    except (OSError, UnicodeDecodeError, ConfigError):
        return field, None
    path = parse_path(field) if field else ()
    return (doc.where(path) or None), doc.line(path)


def _bentofile_spec(doc: _Document) -> BentofileSpec:
    file = doc.file
    base_dir = file.parent
    data = _prepare_sections(doc, base_dir)
    _check_one_line(doc, data)
    raw = _structure(doc, data, _Bentofile)

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

    docker = _docker_from_section(raw.docker)
    _check_env_names(doc, docker.env, ("docker", "env"))
    envs = _envs(doc, raw.envs)
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
        _check_template_path(
            doc,
            docker.dockerfile_template,
            ("docker", "dockerfile_template"),
            base_dir / docker.dockerfile_template,
        )

    python = _python_from_section(raw.python)
    if python.requirements_txt is not None and not (base_dir / python.requirements_txt).is_file():
        raise doc.error(
            ("python", "requirements_txt"),
            f"requirements file {python.requirements_txt!r} does not exist",
        )
    for index, wheel in enumerate(python.wheels):
        if not (base_dir / wheel).is_file():
            raise doc.error(("python", "wheels", index), f"wheel {wheel!r} does not exist")

    conda = _conda_from_section(doc, raw.conda)
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

    _check_single_line(doc, raw.labels or {}, ("labels",))
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


def _in_bento(doc: _Document, bento_dir: Path, value: str, fallback: str) -> str:
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


def _all_model_tags(raw: _BentoYaml) -> tuple[str, ...]:
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
    doc = _read_yaml(file)
    bento_dir = file.parent.absolute()
    known = set(_attr_names(_BentoYaml))
    data = {k: v for k, v in _prepare_sections(doc, bento_dir).items() if k in known}
    _check_one_line(doc, data)
    raw = _structure(doc, data, _BentoYaml)
    if raw.spec not in (1, 2):
        raise doc.error(
            ("spec",), f"unsupported bento.yaml spec {raw.spec}", hint="allowed: 1 or 2"
        )

    envs = _envs(doc, raw.envs)
    python = _python_from_section(raw.python)
    if raw.spec == 2 or raw.image is not None:
        if raw.docker is not None:
            raise doc.error(("docker",), "a spec 2 bento.yaml has an image: section, not docker:")
        image = raw.image or _ImageSection()
        docker = DockerOptions(
            base_image=image.base_image or None,
            python_version=image.python_version or None,
            commands=tuple(image.commands),
            post_commands=tuple(image.post_commands),
            build_include=tuple(image.build_include),
            env=_baked(envs),
        )
        python = attrs.evolve(python, requirements_text=image.python_requirements or None)
    else:
        docker = _docker_from_section(raw.docker)
        _check_env_names(doc, docker.env, ("docker", "env"))
        # BentoML 1.4 copies every `envs` entry into a spec-1 docker.env; the stage decides
        unbaked = {e.name for e in envs if e.stage != "all"}
        env = {k: v for k, v in docker.env.items() if k not in unbaked}
        docker = attrs.evolve(docker, env={**_baked(envs), **env})
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
            _check_template_path(
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

    _check_single_line(doc, raw.labels or {}, ("labels",))
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
        conda=_conda_from_section(doc, raw.conda),
        creation_time=creation_time,
        bentoml_version=raw.bentoml_version,
        envs=envs,
        args=raw.args or {},
    )
