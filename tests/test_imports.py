"""The import graph of ``pipeline/`` and ``render/``: no cycles, and the pure core never imports
the shell.

Every module is read with :mod:`ast`; nothing is imported. An edge is any import of a project
module, wherever it is written:

- ``module``: at module level (``try:`` and ``if`` blocks included);
- ``function``: inside a function. It runs later, but it is a dependency all the same, so it
  counts for cycles: an import moved into a function to dodge a cycle hides the cycle, it does
  not remove it;
- ``lazy``: a lazy attribute table (in a module that defines ``__getattr__``, every
  module-level string that names a module) and ``importlib.import_module("...")`` with a
  literal name; a name built as ``f"pkg.{x}"`` counts as an edge to every module under ``pkg.``;
- ``package``: importing ``a.b`` runs ``a/__init__.py`` first, so a module outside ``a`` that
  imports ``a.b`` also depends on what ``a/__init__.py`` imports at module level (its lazy
  table runs later, on attribute access, and is not implied). This is what keeps ``render``
  importing ``pipeline.errors`` honest: if ``pipeline/__init__.py`` ever imported something
  that renders, ``render`` -> ``pipeline`` -> ``render`` would be a cycle here;
- ``type``: under ``if TYPE_CHECKING:``. Never executed, so NOT counted for cycles; counted for
  the layer rule (a core module may not even name a shell type).

``from pipeline import x`` is an edge to ``pipeline.x`` when ``x`` is a submodule, else to
``pipeline`` itself; relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "render")

# ---------------------------------------------------------------------------------------------
# The layers. Every module must be in exactly one (a new module has to be placed).

#: The pure core: values in, values out. It may read the files it is handed (``bento.yaml``, a
#: user's template, the Python sources it parses, a context it lists) but writes nothing, runs no
#: process, opens no socket and knows no engine. It imports only the core.
CORE = (
    "pipeline.errors",
    "pipeline.paths",
    "pipeline.config",
    "pipeline.documents",
    "pipeline.loader",  # bentofile / pyproject / bento.yaml -> models
    "pipeline.schema",  # the raw YAML shapes and the strict converter
    "pipeline.fieldpaths",  # a field path's text and line in the user's file
    "pipeline.dotenv",  # docker.env from a dotenv file or a KEY=VALUE list
    "pipeline.validation",  # options checked against the distro table, one-line values
    "pipeline.sections",  # raw sections -> option models
    "pipeline.projectfiles",  # a project's build file and the files a bento gets (reads only)
    "pipeline.services",
    "pipeline.service_check",
    "pipeline.bentoml_keywords",
    "pipeline.graph",
    "pipeline.dockerfile",  # the one Dockerfile parser
    "pipeline.stepheaders",  # the one grammar of engine step headers
    "pipeline.rendering",  # bento -> Dockerfile text (the shell says which requirements compile)
    "pipeline.origins",  # which instruction is which
    "pipeline.pins",  # bentoml in requirement lines
    "pipeline.redaction",  # what a secret looks like in output, and masking it
    "pipeline.request",
    "pipeline.options",  # the build options' one declaration
    "pipeline.executor",  # the Executor protocol: a type, no engine
    "pipeline.buildplan",
    "pipeline.basespec",  # what a base image is: its spec and OCI documents (reads CA files)
    "render",
    "render.*",
)
#: The effectful shell: the store, contexts and caches on disk, processes, engines, registries,
#: Dagger sessions, the CLI, and the public API that drives them. The shell may import anything,
#: as long as the graph stays acyclic.
SHELL = (
    "pipeline",  # the public facade: its lazy table reaches the API, matrix and backends
    "pipeline.__main__",
    "pipeline._fs",  # all-or-nothing directory writes
    "pipeline.diskcache",
    "pipeline.requirements",  # runs uv
    "pipeline.bento",  # a bento reference resolved (builds a project into the store)
    "pipeline.store",  # the store: layout, tags, lookup, locks
    "pipeline.bentocontent",  # writes a bento's files, locks requirements with uv
    "pipeline.bentobuild",  # builds a project into the store
    "pipeline.prune",  # deletes bentos from the store
    "pipeline.context",  # writes build contexts
    "pipeline.cacert",  # temporary CA bundles
    "pipeline.labels",  # runs git for the revision and source labels
    "pipeline.api",  # the public functions: build, plan, dry_run, load_plan, build_plan
    "pipeline.buildoptions",  # checks that secret, CA and output files exist
    "pipeline.prepared",  # resolves (stores a project), renders, writes the request's files
    "pipeline.planner",  # reads the context, asks the executor
    "pipeline.matrix",
    "pipeline.matrixbuild",
    "pipeline.matrixcells",  # the cells: expanded against the distro table, tagged
    "pipeline.baseimage",  # bootstraps with mmdebstrap, loads and pushes the base image
    "pipeline.ocilayout",  # writes a base image's layers, OCI layout and archives
    "pipeline.backends",
    "pipeline.backends.*",
    "pipeline.dagger",
    "pipeline.dagger.*",
    "pipeline.cli",
    "pipeline.cli.*",
)
#: What ``render`` may import from ``pipeline``: pure core modules that import nothing from
#: ``render`` and nothing from the shell (checked below, through every edge they reach).
RENDER_MAY_IMPORT = ("pipeline.errors", "pipeline.graph")

#: Edges that break a rule today, each in a file another change is rewriting right now; each
#: entry says what fixes it. A test below fails once an entry is no longer needed.
PENDING: dict[tuple[str, str], str] = {}

#: Project imports inside a function that are lazy on purpose, with the reason. Any other one is
#: a cycle dodge: move it to module level (the cycle check above tells you if that is a cycle).
LAZY_ON_PURPOSE: dict[tuple[str, str], str] = {
    ("pipeline.dagger.executor", "pipeline.dagger.graph"): (
        "imports the dagger SDK (about a second); dry runs and checks do not need it"
    ),
}


# ---------------------------------------------------------------------------------------------
# The checker: sources in, edges out (pure, so it can be fed a made-up project below).


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # module | function | lazy | package | type
    line: int
    via: str = ""  # package edges: the import that ran the package's __init__

    def describe(self) -> str:
        where = f"line {self.line}, {self.kind}"
        return f"{where}, via {self.via}" if self.via else where


def discover(root: Path = ROOT) -> dict[str, str]:
    """Module name -> source, for every module of :data:`PACKAGES` under ``root``."""
    sources = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def _packages(modules: Iterable[str]) -> set[str]:
    names = set(modules)
    return {name for name in names if any(other.startswith(f"{name}.") for other in names)}


class _Collector(ast.NodeVisitor):
    """Every project import of one module, with its kind."""

    def __init__(self, name: str, modules: set[str], packages: set[str]) -> None:
        self.name = name
        self.modules = modules
        self.package = name if name in packages else name.rpartition(".")[0]
        self.edges: list[Edge] = []
        self.unresolved: list[int] = []  # import_module() calls whose name is not readable
        self.lazy_table = False
        self._functions: list[ast.AST] = []  # the enclosing functions, innermost last
        self._type_checking = 0
        self.names: list[ast.Constant] = []  # module-level strings naming a module

    # -- where we are

    def _kind(self) -> str:
        if self._type_checking:
            return "type"
        return "function" if self._functions else "module"

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._functions.append(node)
        self.generic_visit(node)
        self._functions.pop()

    visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    # -- imports

    def _owner(self, dotted: str) -> str | None:
        """The project module ``dotted`` names, or the closest enclosing one."""
        while dotted:
            if dotted in self.modules:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    def _add(self, target: str | None, line: int, kind: str | None = None) -> None:
        if target is not None and target != self.name:
            self.edges.append(Edge(self.name, target, kind or self._kind(), line))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(self._owner(alias.name), node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        if module.split(".")[0] not in {m.split(".")[0] for m in self.modules}:
            return
        for alias in node.names:
            submodule = f"{module}.{alias.name}"
            self._add(submodule if submodule in self.modules else self._owner(module), node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module" and node.args:
            arg = self._value_of(node.args[0])
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._add(self._owner(arg.value), node.lineno, "lazy")
            elif (
                isinstance(arg, ast.JoinedStr)
                and arg.values
                and isinstance(arg.values[0], ast.Constant)
                and str(arg.values[0].value).endswith(".")
            ):
                prefix = str(arg.values[0].value)
                for module in sorted(self.modules):
                    if module.startswith(prefix):
                        self._add(module, node.lineno, "lazy")
            else:
                self.unresolved.append(node.lineno)
        self.generic_visit(node)

    def _value_of(self, arg: ast.expr) -> ast.expr:
        """A name's value when the enclosing function (or module) assigns it exactly once."""
        if not isinstance(arg, ast.Name):
            return arg
        if not self._functions:
            return arg
        values = [
            node.value
            for node in ast.walk(self._functions[-1])
            if isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == [arg.id]
        ]
        return values[0] if len(values) == 1 else arg

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name == "__getattr__" and not self._functions:
            self.lazy_table = True  # a module __getattr__: its module-level names are its table
        self._function(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not self._functions and isinstance(node.value, str) and node.value in self.modules:
            self.names.append(node)


@dataclass
class Graph:
    edges: list[Edge]
    #: modules with an ``import_module(name)`` whose name the checker cannot read, and no lazy
    #: table that lists what it may be
    unresolved: list[tuple[str, int]]

    def runtime(self) -> dict[str, list[Edge]]:
        """Source -> its edges that run (everything but ``type``)."""
        out: dict[str, list[Edge]] = {}
        for edge in self.edges:
            if edge.kind != "type":
                out.setdefault(edge.source, []).append(edge)
        return out


def scan(sources: Mapping[str, str]) -> Graph:
    """The import graph of ``sources`` (module name -> source text)."""
    modules = set(sources)
    packages = _packages(modules)
    edges: list[Edge] = []
    unresolved = []
    for name in sorted(sources):
        collector = _Collector(name, modules, packages)
        collector.visit(ast.parse(sources[name], filename=name))
        edges += collector.edges
        if collector.lazy_table:
            lazy = {str(node.value): node.lineno for node in collector.names}
            edges += [Edge(name, target, "lazy", line) for target, line in lazy.items()]
        else:
            unresolved += [(name, line) for line in collector.unresolved]
    # importing a.b (from outside a) runs a/__init__.py's module-level imports first
    eager = {p: [e for e in edges if e.source == p and e.kind == "module"] for p in packages}
    implied = []
    for edge in edges:
        if edge.kind == "type":
            continue
        parts = edge.target.split(".")
        for depth in range(1, len(parts) + 1):
            package = ".".join(parts[:depth])
            if package not in packages or edge.source.startswith(f"{package}."):
                continue
            if package == edge.source:
                continue
            for inner in eager[package]:
                if inner.target != edge.source:
                    init = package.replace(".", "/") + "/__init__.py"
                    via = f"{edge.target} (line {edge.line}) runs {init}"
                    implied.append(Edge(edge.source, inner.target, "package", edge.line, via))
    unique = {(e.source, e.target, e.kind, e.line): e for e in reversed(edges + implied)}
    return Graph(sorted(unique.values(), key=lambda e: (e.source, e.line, e.target)), unresolved)


def find_cycles(edges: Mapping[str, Iterable[Edge]]) -> list[list[Edge]]:
    """One cycle per strongly connected component that has one (Tarjan, then a BFS inside)."""
    graph: dict[str, dict[str, Edge]] = {}
    for source, out in edges.items():
        for edge in out:
            graph.setdefault(source, {}).setdefault(edge.target, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)

    cycles = []
    for component in components:
        start = min(component)
        paths: dict[str, list[Edge]] = {start: []}
        queue = [start]
        found: list[Edge] | None = None
        while queue and found is None:
            node = queue.pop(0)
            for target, edge in sorted(graph.get(node, {}).items()):
                if target == start:
                    found = [*paths[node], edge]
                    break
                if target in component and target not in paths:
                    paths[target] = [*paths[node], edge]
                    queue.append(target)
        assert found is not None
        cycles.append(found)
    return cycles


def format_cycle(cycle: list[Edge]) -> str:
    lines = [cycle[0].source]
    lines += [f"  -> {edge.target}  ({edge.source} {edge.describe()})" for edge in cycle]
    return "\n".join(lines)


def layer_of(module: str, layers: Mapping[str, Iterable[str]]) -> list[str]:
    return [
        name for name, patterns in layers.items() if any(fnmatchcase(module, p) for p in patterns)
    ]


def crossings(edges: Iterable[Edge], core: Iterable[str], shell: Iterable[str]) -> Iterator[Edge]:
    """The edges from a core module to a shell module (``type`` edges included)."""
    layers = {"core": tuple(core), "shell": tuple(shell)}
    for edge in edges:
        if layer_of(edge.source, layers) == ["core"] and layer_of(edge.target, layers) == ["shell"]:
            yield edge


def reachable(start: Iterable[str], edges: Mapping[str, Iterable[Edge]]) -> dict[str, Edge]:
    """Every module reachable from ``start`` -> the edge that first reached it."""
    seen: dict[str, Edge] = {}
    todo = list(start)
    while todo:
        node = todo.pop()
        for edge in edges.get(node, ()):
            if edge.target not in seen:
                seen[edge.target] = edge
                todo.append(edge.target)
    return seen


# ---------------------------------------------------------------------------------------------
# The project


@pytest.fixture(scope="module")
def project() -> Graph:
    graph = scan(discover())
    graph.edges = [e for e in graph.edges if (e.source, e.target) not in PENDING]
    return graph


def test_every_module_is_in_exactly_one_layer() -> None:
    layers = {"core": CORE, "shell": SHELL}
    misplaced = {m: layer_of(m, layers) for m in discover() if len(layer_of(m, layers)) != 1}
    assert not misplaced, f"put each in CORE or SHELL (tests/test_imports.py): {misplaced}"


def test_the_import_graph_has_no_cycle(project: Graph) -> None:
    cycles = find_cycles(project.runtime())
    assert not cycles, "import cycles:\n" + "\n\n".join(map(format_cycle, cycles))


def test_the_core_never_imports_the_shell(project: Graph) -> None:
    bad = [
        f"{e.source} -> {e.target} ({e.describe()})" for e in crossings(project.edges, CORE, SHELL)
    ]
    assert not bad, "core modules import the shell:\n" + "\n".join(bad)


def test_render_imports_only_pure_core_modules_of_pipeline(project: Graph) -> None:
    direct = {
        f"{e.source} -> {e.target} (line {e.line})"
        for e in project.edges
        if e.source.split(".")[0] == "render"
        and e.target.split(".")[0] == "pipeline"
        and e.kind != "package"
        and e.target not in RENDER_MAY_IMPORT
    }
    assert not direct, f"render may import only {RENDER_MAY_IMPORT} from pipeline: {direct}"
    edges = project.runtime()
    back = {
        m: e for m, e in reachable(RENDER_MAY_IMPORT, edges).items() if m.split(".")[0] == "render"
    }
    assert not back, f"{RENDER_MAY_IMPORT} must not reach render: {back}"
    render = [m for m in discover() if m.split(".")[0] == "render"]
    shell = {"shell": SHELL}
    loads = {m: e for m, e in reachable(render, edges).items() if layer_of(m, shell)}
    assert not loads, f"render reaches the shell: {loads}"


def test_every_dynamic_import_can_be_read(project: Graph) -> None:
    assert not project.unresolved, (
        "import_module() with a name the test cannot read (use a literal, f'pkg.{x}', or a "
        f"module-level table of module names): {project.unresolved}"
    )


def test_project_imports_inside_functions_are_lazy_on_purpose(project: Graph) -> None:
    dodges = sorted(
        {
            f"{e.source}:{e.line} imports {e.target}"
            for e in project.edges
            if e.kind == "function" and (e.source, e.target) not in LAZY_ON_PURPOSE
        }
    )
    assert not dodges, (
        "move these to module level, or list them in LAZY_ON_PURPOSE with the reason:\n"
        + "\n".join(dodges)
    )


def test_every_allowance_is_still_needed() -> None:
    edges = scan(discover()).edges
    present = {(e.source, e.target) for e in edges}
    stale = sorted(set(PENDING) - present)
    assert not stale, f"fixed: remove from PENDING in tests/test_imports.py: {stale}"
    lazy = {(e.source, e.target) for e in edges if e.kind == "function"}
    stale = sorted(set(LAZY_ON_PURPOSE) - lazy)
    assert not stale, f"gone: remove from LAZY_ON_PURPOSE in tests/test_imports.py: {stale}"


def test_pipeline_imports_no_render_or_shell_module_at_import_time() -> None:
    """``import pipeline`` (which every ``from pipeline.x import`` runs) loads only the core."""
    code = "import sys, pipeline\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = [m for m in done.stdout.split() if m.split(".")[0] in PACKAGES]
    layers = {"core": CORE, "shell": SHELL}
    allowed = {"pipeline", *(target for _source, target in PENDING)}
    wrong = [m for m in loaded if m not in allowed and layer_of(m, layers) != ["core"]]
    assert "pipeline.errors" in loaded and not wrong, wrong
    assert not [m for m in loaded if m.split(".")[0] == "render"]


# ---------------------------------------------------------------------------------------------
# The checker finds what it is for (a made-up project)


def _cycles(sources: Mapping[str, str]) -> list[list[str]]:
    found = find_cycles(scan(sources).runtime())
    return [[cycle[0].source, *(edge.target for edge in cycle)] for cycle in found]


def test_a_cycle_through_a_function_level_import_is_reported() -> None:
    sources = {
        "pkg": "",
        "pkg.a": "from pkg import b\n",
        "pkg.b": "def f():\n    from pkg.a import thing\n",
        "pkg.c": "import pkg.a\n",
    }
    assert _cycles(sources) == [["pkg.a", "pkg.b", "pkg.a"]]
    message = format_cycle(find_cycles(scan(sources).runtime())[0])
    assert "pkg.b line 2, function" in message


def test_a_lazy_table_and_a_dynamic_import_are_edges() -> None:
    sources = {
        "pkg": '_LAZY = {"run": "pkg.api"}\ndef __getattr__(name):\n    ...\n',
        "pkg.api": "from pkg import run\n",  # not a submodule: the package itself
        "pkg.cmd": 'import importlib\nimportlib.import_module(f"pkg.sub.{name}")\n',
        "pkg.sub": "",
        "pkg.sub.one": "from pkg import cmd\n",
    }
    cycles = _cycles(sources)
    assert ["pkg", "pkg.api", "pkg"] in cycles
    assert ["pkg.cmd", "pkg.sub.one", "pkg.cmd"] in cycles
    unreadable = {"pkg": "", "pkg.x": "import importlib\nimportlib.import_module(name)\n"}
    assert scan(unreadable).unresolved == [("pkg.x", 2)]


def test_a_package_init_that_imports_its_importer_is_a_cycle() -> None:
    sources = {
        "core": "from core.heavy import Renderer\n",  # the package's own __init__
        "core.errors": "",
        "core.heavy": "import other.view\n",
        "other": "",
        "other.view": "from core.errors import Error\n",
    }
    cycles = find_cycles(scan(sources).runtime())
    assert [[c[0].source, *(e.target for e in c)] for c in cycles] == [
        ["core.heavy", "other.view", "core.heavy"]
    ]
    assert "runs core/__init__.py" in format_cycle(cycles[0])
    # a lazy table is read on attribute access, not run by `import core.errors`
    lazy_only = {**sources, "core": 'X = "core.heavy"\ndef __getattr__(name):\n    ...\n'}
    assert ("core", "core.heavy", "lazy") in {
        (e.source, e.target, e.kind) for e in scan(lazy_only).edges
    }
    assert _cycles(lazy_only) == []


def test_type_checking_imports_are_not_cycles_but_are_layer_edges() -> None:
    sources = {
        "pkg": "",
        "pkg.core": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.shell import S\n",
        "pkg.shell": "from pkg.core import C\n",
    }
    assert _cycles(sources) == []
    bad = list(crossings(scan(sources).edges, ["pkg.core"], ["pkg.shell"]))
    assert [(e.source, e.target, e.kind) for e in bad] == [("pkg.core", "pkg.shell", "type")]


def test_a_core_module_importing_the_shell_is_reported() -> None:
    sources = {
        "pkg": "",
        "pkg.graph": "from . import errors\n",  # relative: pkg.errors
        "pkg.errors": "",
        "pkg.sub": "",
        "pkg.sub.render": "def go():\n    from ..api import build\n",  # two levels up: pkg.api
        "pkg.api": "from pkg.graph import G\n",
    }
    edges = scan(sources).edges
    assert ("pkg.graph", "pkg.errors", "module") in {(e.source, e.target, e.kind) for e in edges}
    core, shell = ["pkg.graph", "pkg.errors", "pkg.sub.*"], ["pkg.api"]
    bad = [(e.source, e.target, e.kind) for e in crossings(edges, core, shell)]
    assert bad == [("pkg.sub.render", "pkg.api", "function")]
