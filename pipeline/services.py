"""The BentoML services a bento's code defines, for ``bento.yaml``'s ``services:`` list.

``bentoml build`` imports the service and records every ``@bentoml.service`` it reaches (name,
dependencies); at start-up BentoML 1.2+ looks each running service up in that list by name and
stops with ``StopIteration`` when one is missing, so a bento with ``services: []`` never serves.
We do not import user code: we read it. Every class decorated with ``@bentoml.service`` (or the
``service`` name imported from bentoml) in the included Python files is listed, under the
``name=`` given to the decorator or else the class name, with the ``bentoml.depends(...)``
attributes whose target is one of those classes (or a deployment / URL given as literals).
Listing a service the entry service does not reach is harmless: BentoML only looks names up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _bentoml_aliases(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """Names bound to the module ``bentoml``, to ``bentoml.service``, to ``bentoml.depends``."""
    modules, services, depends = {"bentoml"}, set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "bentoml":
                    modules.add(alias.asname or "bentoml")
        elif isinstance(node, ast.ImportFrom) and node.module == "bentoml" and node.level == 0:
            for alias in node.names:
                if alias.name == "service":
                    services.add(alias.asname or "service")
                elif alias.name == "depends":
                    depends.add(alias.asname or "depends")
    return modules, services, depends


def _is_named(node: ast.expr, attr: str, modules: set[str], names: set[str]) -> bool:
    """``node`` is ``<bentoml module>.<attr>`` or one of ``names``."""
    if isinstance(node, ast.Attribute):
        return node.attr == attr and isinstance(node.value, ast.Name) and node.value.id in modules
    return isinstance(node, ast.Name) and node.id in names


def _literal_kwarg(call: ast.Call, name: str) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            value = keyword.value.value
            return value if isinstance(value, str) else None
    return None


def _service_name(cls: ast.ClassDef, modules: set[str], services: set[str]) -> str | None:
    """The service name when ``cls`` is decorated as a BentoML service, else None."""
    for decorator in cls.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if _is_named(target, "service", modules, services):
            named = _literal_kwarg(decorator, "name") if isinstance(decorator, ast.Call) else None
            return named or cls.name
    return None


def _dependencies(
    cls: ast.ClassDef, modules: set[str], depends: set[str]
) -> list[tuple[str | None, dict[str, str | None]]]:
    """(target class name or None, literal deployment/cluster/url) per ``bentoml.depends``."""
    found = []
    for statement in cls.body:
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if not (isinstance(value, ast.Call) and _is_named(value.func, "depends", modules, depends)):
            continue
        target = value.args[0] if value.args else None
        for keyword in value.keywords:
            if keyword.arg == "on":
                target = keyword.value
        extra = {key: _literal_kwarg(value, key) for key in ("deployment", "cluster", "url")}
        found.append((target.id if isinstance(target, ast.Name) else None, extra))
    return found


def python_trees(files: Iterable[Path]) -> Iterator[ast.Module]:
    """The parsed ``.py`` files among ``files``; ones that do not parse are skipped."""
    for file in files:
        if file.suffix != ".py":
            continue
        try:
            yield ast.parse(file.read_bytes(), filename=str(file))
        except (SyntaxError, ValueError, OSError):
            continue


def service_entries(files: Iterable[Path]) -> list[dict[str, Any]]:
    """``bento.yaml`` ``services:`` entries for the services defined in ``files`` (the bento's
    Python files; ones that do not parse are skipped), in file and definition order."""
    classes: list[tuple[str, ast.ClassDef, set[str], set[str]]] = []
    for tree in python_trees(files):
        modules, services, depends = _bentoml_aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                name = _service_name(node, modules, services)
                if name is not None:
                    classes.append((name, node, modules, depends))
    by_class = {cls.name: name for name, cls, _m, _d in classes}
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, cls, modules, depends in classes:
        if name in seen:
            continue
        seen.add(name)
        dependencies = []
        for target, extra in _dependencies(cls, modules, depends):
            service = by_class.get(target) if target else None
            if service is None and not any(extra.values()):
                continue  # an object we cannot resolve by reading
            dependencies.append({"service": service, **extra})
        entries.append(
            {"name": name, "service": "", "models": [], "dependencies": dependencies, "config": {}}
        )
    return entries
