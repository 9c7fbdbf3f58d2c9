"""Where a field is in a user's file: a document read with the line of every field path
(:class:`Document`, whose :meth:`~Document.error` names file, field and line), a field path as
text and back (:func:`format_path`, :func:`parse_path`), the line map of a ``pyproject.toml``
(:func:`toml_lines`), and :func:`locate_field` for a field named in bentofile terms.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from attrs import define

from pipeline import documents
from pipeline.errors import ConfigError, describe_value

FieldPath = documents.FieldPath
format_path = documents.format_path

PYPROJECT = "pyproject.toml"
PYPROJECT_TABLE: FieldPath = ("tool", "bentoml", "build")


@define
class Document:
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


def read_yaml(file: Path) -> Document:
    data, lines = documents.read_yaml(file)  # bounded: size, depth, aliases, keys, text
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys (service:, docker:, ...), got {describe_value(data)}",
            file=file,
            line=1,
        )
    return Document(file=file, data=data, lines=lines)


_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_.\"' -]+?)\s*=")


def _toml_key(text: str) -> FieldPath:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def toml_lines(text: str) -> dict[FieldPath, int]:
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
            doc = Document(
                file=file,
                data=None,
                lines=toml_lines(file.read_text(encoding="utf-8")),
                prefix=PYPROJECT_TABLE,
            )
        else:
            doc = read_yaml(file)
    except (OSError, UnicodeDecodeError, ConfigError):
        return field, None
    path = parse_path(field) if field else ()
    return (doc.where(path) or None), doc.line(path)
