"""Reading configuration documents (``bentofile.yaml``, ``bento.yaml``, ``pyproject.toml``)
within bounds: whatever the input, a clear :class:`~pipeline.errors.ConfigError` (exit 2) or
plain data, never a traceback, a hang or unbounded work.

The checks run before anything else walks the data, in this order:

1. **size**: at most :data:`MAX_BYTES` bytes;
2. **structure**, on the composed YAML node graph, where an alias is still a shared node: nesting
   at most :data:`MAX_DEPTH` deep, no alias that contains itself, at most :data:`MAX_ITEMS`
   items in one list or mapping, and at most :data:`MAX_VALUES` values once every alias is
   expanded (a "billion laughs" document stops here after :data:`MAX_VALUES` steps);
3. **values**: every tagged scalar the safe loader would turn into an exception (``!!int c``,
   ``!!float``, an impossible ``!!timestamp``) is a YAML error at its line; every mapping key is a
   string; every string can be written as UTF-8 (no lone surrogates such as ``"\\ud800"``).

The same value checks (2, 3) apply to TOML data (:func:`check_data`). Each error names the file,
the field and the line when known, and the limit that was hit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipeline.errors import ConfigError

FieldPath = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 40
MAX_ITEMS = 5_000
MAX_VALUES = 50_000


def format_path(path: FieldPath) -> str:
    """``("docker", "env", "FOO")`` -> ``docker.env.FOO``; list indices as ``[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text


def _where(path: FieldPath) -> str | None:
    return format_path(path) or None


def line_of(lines: dict[FieldPath, int], path: FieldPath) -> int | None:
    """The line of the longest prefix of ``path`` that ``lines`` knows."""
    for end in range(len(path), -1, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None


class _Walk:
    """One pass over the node graph: limits, alias cycles and the line of every field."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.values = 0
        self.lines: dict[FieldPath, int] = {}
        self._open: set[int] = set()  # ids of the nodes being walked (the current path)

    def error(self, message: str, node: Node, path: FieldPath, hint: str | None = None) -> None:
        raise ConfigError(
            message, file=self.file, field=_where(path), line=node.start_mark.line + 1, hint=hint
        )

    def visit(self, node: Node, path: FieldPath) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            self.error(
                f"the document has more than {MAX_VALUES:,} values once its aliases are expanded",
                node,
                path,
                hint="a bentofile or bento.yaml is a few hundred values; write it without "
                "aliases that multiply (a `&anchor` used many times inside another)",
            )
        if len(path) > MAX_DEPTH:
            self.error(f"nested more than {MAX_DEPTH} levels deep", node, path)
        if isinstance(node, ScalarNode):
            return
        if id(node) in self._open:
            self.error("an alias refers to a value that contains it (recursive alias)", node, path)
        items = node.value
        if len(items) > MAX_ITEMS:
            kind = "mapping" if isinstance(node, MappingNode) else "list"
            self.error(f"a {kind} of {len(items):,} items (the limit is {MAX_ITEMS:,})", node, path)
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                for key_node, value_node in items:
                    if not isinstance(key_node, ScalarNode) or key_node.tag not in _KEY_TAGS:
                        self.error(
                            f"a key must be a string, got {_describe_key(key_node)}",
                            key_node,
                            path,
                            hint="quote it: '1': ... instead of 1: ...",
                        )
                    sub = (*path, key_node.value)
                    self.lines.setdefault(sub, key_node.start_mark.line + 1)
                    self.visit(value_node, sub)
            elif isinstance(node, SequenceNode):
                for index, item in enumerate(items):
                    sub = (*path, index)
                    self.lines.setdefault(sub, item.start_mark.line + 1)
                    self.visit(item, sub)
        finally:
            self._open.discard(id(node))


# keys are strings; `<<: *base` (a merge key) is YAML's own and merged by the loader
_KEY_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"})


def _describe_key(node: Node) -> str:
    if isinstance(node, ScalarNode):
        kind = node.tag.rsplit(":", 1)[-1]
        return f"{node.value!r} (read as {kind})" if node.value else f"an empty key ({kind})"
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


# libyaml's parser when PyYAML has it (ten times faster on a large file), else PyYAML's own
_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Constructor(_SafeLoader):
    """The safe loader, remembering which node it was building when a value failed."""

    current: Node | None = None

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        self.current = node
        return super().construct_object(node, deep=deep)


def read_yaml(file: Path) -> tuple[Any, dict[FieldPath, int]]:
    """The data of a YAML document and the 1-based line of each field path's key or item."""
    text = read_text(file)
    _check_flow_depth(text, file)
    loader = _Constructor(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=file) from None
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(file, exc) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"malformed YAML: {exc}", file=file) from None
        if node is None:
            return None, {}
        walk = _Walk(file)
        walk.visit(node, ())
        try:
            data = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            raise _yaml_error(file, exc) from None
        except Exception as exc:  # the constructor's own errors for bad tagged scalars
            failed = loader.current
            tag = failed.tag.rsplit(":", 1)[-1] if failed is not None else "value"
            shown = f"{_preview(failed.value)!r} " if isinstance(failed, ScalarNode) else ""
            raise ConfigError(
                f"malformed YAML: cannot read {tag} value {shown}"
                f"({type(exc).__name__}: {_preview(str(exc))})",
                file=file,
                line=failed.start_mark.line + 1 if failed is not None else None,
            ) from None
    finally:
        loader.dispose()
    _check_strings(data, file, (), walk.lines)
    return data, walk.lines


def _check_flow_depth(text: str, file: Path) -> None:
    """Flow collections (``[[[...]]]``) nested too deep, found before PyYAML's scanner, which is
    quadratic in that depth. Brackets inside quotes and comments do not count."""
    depth = line = 0
    quote = ""
    comment = False
    previous = "\n"
    for char in text:
        if char == "\n":
            line += 1
            comment = False
        elif comment:
            pass
        elif quote:
            if char == quote and not (quote == '"' and previous == "\\"):
                quote = ""
        elif char in "\"'" and (previous in " \t\n[{,:" or depth):
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"nested more than {MAX_DEPTH} levels deep", file=file, line=line + 1
                )
        elif char in "]}" and depth:
            depth -= 1
        previous = char


def _preview(value: object, limit: int = 60) -> str:
    text = ascii(str(value))[1:-1]
    return (text[:limit] + "...") if len(text) > limit else text


def _yaml_error(file: Path, exc: yaml.MarkedYAMLError) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or str(exc)
    if exc.context:
        problem = f"{problem} ({exc.context})"
    return ConfigError(
        f"malformed YAML: {problem}", file=file, line=mark.line + 1 if mark is not None else None
    )


def read_text(file: Path) -> str:
    """A config file's text: UTF-8, at most :data:`MAX_BYTES` bytes."""
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file does not exist", file=file) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=file) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"the file is larger than {MAX_BYTES // 1024} KiB, the limit for a config file",
            file=file,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})", file=file
        ) from None


def check_data(data: Any, file: Path, lines: dict[FieldPath, int] | None = None) -> None:
    """The structure and value checks for data that did not come from YAML (TOML)."""
    lines = lines or {}
    count = 0
    stack: list[tuple[Any, FieldPath]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"the document has more than {MAX_VALUES:,} values", file=file)
        if len(path) > MAX_DEPTH:
            raise ConfigError(
                f"nested more than {MAX_DEPTH} levels deep",
                file=file,
                field=_where(path),
                line=line_of(lines, path),
            )
        if isinstance(value, dict | list) and len(value) > MAX_ITEMS:
            kind = "table" if isinstance(value, dict) else "list"
            raise ConfigError(
                f"a {kind} of {len(value):,} items (the limit is {MAX_ITEMS:,})",
                file=file,
                field=_where(path),
                line=line_of(lines, path),
            )
        if isinstance(value, dict):
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    _check_strings(data, file, (), lines)


def _check_strings(data: Any, file: Path, path: FieldPath, lines: dict[FieldPath, int]) -> None:
    """Every key and string value can be written back as UTF-8 (the bento store, the
    Dockerfile and the terminal all need that). Iterative: the walk above bounded the size."""
    stack: list[tuple[Any, FieldPath]] = [(data, path)]
    seen: set[int] = set()
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            _encodable(value, file, where, lines)
        elif isinstance(value, dict | list):
            if id(value) in seen:  # an alias: checked once
                continue
            seen.add(id(value))
            if isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(key, str):
                        _encodable(key, file, (*where, key), lines)
                    stack.append((item, (*where, str(key))))
            else:
                stack.extend((item, (*where, index)) for index, item in enumerate(value))


def _encodable(text: str, file: Path, path: FieldPath, lines: dict[FieldPath, int]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        raise ConfigError(
            f"contains U+{bad:04X}, a lone surrogate that cannot be written as UTF-8",
            file=file,
            field=_where(path),
            line=line_of(lines, path),
            hint="write the character itself, or its \\U escape for a character outside the BMP",
        ) from None
