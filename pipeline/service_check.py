"""``bento build``'s check that ``service:`` points at a module (and object) the bento carries.

BentoML imports the service and fails the build when the module or the object is missing; we do
not import user code, so we read it: the module must be among the included files, parse, and
define the object at top level (unless it is made in a way a reader cannot see, such as a star
import or an assignment to ``globals()``).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ConfigError


def module_files(module: str) -> tuple[str, ...]:
    """The bento files that would be ``module``: ``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``."""
    path = module.removesuffix(".py").replace("\\", "/").strip("/").replace(".", "/")
    return (f"{path}.py", f"{path}/__init__.py")


def _defined_names(tree: ast.Module) -> set[str] | None:
    """Names bound at the module's top level (in any branch of a top-level ``if``/``try``/
    ``with``), or None when a reader cannot know them all (a star import)."""
    names: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        for block in ("body", "orelse", "finalbody", "handlers"):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                pending.extend(getattr(node, block, None) or ())
    return names


def check_service(service: str, included: Sequence[tuple[str, Path]], *, bentofile: Path) -> None:
    """Raise :class:`ConfigError` (naming ``bentofile``'s ``service`` field) when ``service``
    (``module:Object``) is not a module among ``included`` (``(bento path, real file)`` pairs)
    or the module does not define the object."""
    module, _, obj = service.partition(":")
    module, obj = module.strip(), obj.strip()
    by_path = dict(included)
    candidates = module_files(module)
    found = next((name for name in candidates if name in by_path), None)
    if found is None:
        python_files = sorted(name for name in by_path if name.endswith(".py"))
        shown = ", ".join(python_files[:8]) + (" ..." if len(python_files) > 8 else "")
        raise ConfigError(
            f"service module {module!r} is not in the bento: none of "
            f"{' or '.join(candidates)} is included",
            file=bentofile,
            field="service",
            hint=(
                f"included Python files: {shown}" if python_files else "no Python file is included"
            )
            + "; check service: and include:/exclude:",
        )
    if not obj:
        return
    source = by_path[found]
    try:
        tree = ast.parse(source.read_bytes(), filename=found)
    except SyntaxError as exc:
        raise ConfigError(
            f"service module {found} does not parse: {exc.msg} (line {exc.lineno})",
            file=bentofile,
            field="service",
        ) from None
    except (ValueError, OSError) as exc:
        raise ConfigError(
            f"cannot read service module {found}: {exc}", file=bentofile, field="service"
        ) from None
    names = _defined_names(tree)
    head = obj.split(".")[0]
    if names is not None and head not in names:
        raise ConfigError(
            f"service module {found} defines no {head!r}",
            file=bentofile,
            field="service",
            hint=f"service: is 'module:Object'; top-level names in {found}: "
            + (", ".join(sorted(n for n in names if not n.startswith("_"))[:10]) or "(none)"),
        )


DEFAULT_SERVICE_MODULE = "service.py"


def _service_objects(tree: ast.Module) -> list[str]:
    """Top-level names that are services: classes decorated ``@bentoml.service`` / ``@service``
    (with or without arguments) and ``NAME = bentoml.Service(...)`` (BentoML < 1.2)."""
    found: list[str] = []

    def is_service(node: ast.expr, name: str) -> bool:
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Attribute):
            return node.attr == name
        return isinstance(node, ast.Name) and node.id == name

    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            is_service(d, "service") for d in node.decorator_list
        ):
            found.append(node.name)
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and is_service(node.value.func, "Service")
        ):
            found.extend(t.id for t in node.targets if isinstance(t, ast.Name))
    return found


def discover_service(included: Sequence[tuple[str, Path]], *, bentofile: Path) -> str:
    """The service of a bentofile without ``service:``: as BentoML, the one defined in
    ``service.py`` (``service:Name``). A ``service.py`` defining several leaves the choice to
    the user, as does one defining none."""
    by_path = dict(included)
    source = by_path.get(DEFAULT_SERVICE_MODULE)
    if source is None:
        raise ConfigError(
            "no service: given, and the bento has no service.py to find it in",
            file=bentofile,
            field="service",
            hint="set service: 'module:ServiceClass' (BentoML's default is the service in "
            "service.py)",
        )
    try:
        tree = ast.parse(source.read_bytes(), filename=DEFAULT_SERVICE_MODULE)
    except (SyntaxError, ValueError, OSError) as exc:
        raise ConfigError(
            f"no service: given, and service.py cannot be read: {exc}",
            file=bentofile,
            field="service",
        ) from None
    services = _service_objects(tree)
    if len(services) != 1:
        what = f"several services ({', '.join(services)})" if services else "no service"
        raise ConfigError(
            f"no service: given, and service.py defines {what}",
            file=bentofile,
            field="service",
            hint="set service: 'service:ServiceClass'",
        )
    return f"service:{services[0]}"
