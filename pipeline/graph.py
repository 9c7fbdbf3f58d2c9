"""The stage graph: which Dockerfile blocks exist, what each depends on, and in which order.

A :class:`Stage` is one node. It maps to one Jinja block (``SETUP_BENTO_<NAME>``) that a user
``dockerfile_template`` can override, holds its instructions (a built-in template file or
Jinja/Dockerfile lines given from Python), and may open a new Dockerfile build stage
(``FROM <image> AS <name>``), copy files out of another build stage (``COPY --from=``) and
depend on other stages. :class:`StageGraph` is an ordered, immutable collection of stages with
the edit operations (``add``, ``replace``, ``remove``, ``reorder``, ``depend``); every edit
returns a new graph, and :meth:`StageGraph.order` is the topological order the renderer walks.

Ties in the topological order are broken by position (the order stages were added, or
``reorder``-ed into), so the same graph always renders the same Dockerfile.

The default graph is ``buildstage? -> base -> user -> envars -> components -> entrypoint``.
Moving compilers into a build stage and shipping a slim runtime is a change of graph:
``default_graph(buildstage=True)`` builds wheels in a ``buildstage`` that carries the compilers,
and ``components`` installs them from ``COPY --from=buildstage`` without any network or compiler
(see ``docs/graph.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from attrs import Attribute, evolve, field, frozen

from pipeline.errors import GraphError, allowed, did_you_mean

BLOCK_PREFIX = "SETUP_BENTO_"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# What may follow FROM / COPY --from in a Dockerfile: an image reference or a stage name.
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


_PATH = re.compile(r"^[A-Za-z0-9._/+@:=*-]+$")


def _check_path(_instance: object, attribute: Attribute[str], value: str) -> None:
    if not _PATH.match(value):
        raise GraphError(
            f"COPY --from {attribute.name} {value!r} may only contain letters, digits and "
            ". _ / + @ : = * - (no spaces, quotes, '$' or backslashes)",
            field=attribute.name,
        )


@frozen
class CopyFrom:
    """``COPY --from=<stage> <src> <dest>``: take ``src`` out of another stage's build stage."""

    stage: str
    src: str = field(validator=_check_path)
    dest: str = field(validator=_check_path)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise GraphError(
            f"invalid stage name {value!r}: use lowercase letters, digits and '_', "
            "starting with a letter (the block is SETUP_BENTO_<NAME>)",
            field="stage.name",
        )
    return value


def _copies(value: Iterable[CopyFrom]) -> tuple[CopyFrom, ...]:
    return tuple(value)


def _tuple(value: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@frozen
class Stage:
    """One node of the graph.

    - ``name``: lowercase identifier; the block is ``SETUP_BENTO_<NAME>`` unless ``block`` says
      otherwise (the built-in ``base`` stage keeps BentoML's ``SETUP_BENTO_BASE_IMAGE``).
    - ``instructions``: Dockerfile lines, rendered as Jinja in the template context (so they may
      use ``{{ bento__path }}`` and the quoting filters). Used when ``template`` is not set.
    - ``template``: a file under ``render/templates/`` holding the stage's body (built-ins).
    - ``depends_on``: stages that must come before this one.
    - ``image``: open a new build stage ``FROM <image> AS <name>`` (multi-stage builds).
    - ``from_stage``: open a new build stage ``FROM <from_stage's build stage> AS <name>``.
    - ``copies``: ``COPY --from=`` lines (see :meth:`StageGraph.depend`); each one is also a
      dependency.
    - ``build_stage``: the Dockerfile name of the build stage this stage opens when its
      template writes the ``FROM`` line itself (the built-in ``base`` opens ``base-container``).
    """

    name: str = field(converter=_check_name)
    instructions: tuple[str, ...] = field(default=(), converter=_tuple)
    depends_on: tuple[str, ...] = field(default=(), converter=_tuple)
    image: str | None = None
    from_stage: str | None = None
    copies: tuple[CopyFrom, ...] = field(default=(), converter=_copies)
    template: str | None = None
    block: str = field()
    build_stage: str | None = None

    @block.default
    def _default_block(self) -> str:
        return BLOCK_PREFIX + self.name.upper()

    def __attrs_post_init__(self) -> None:
        if self.image is not None and self.from_stage is not None:
            raise GraphError(
                f"stage {self.name!r} sets both image= and from_stage=: a build stage has one FROM"
            )
        if self.image is not None and not _IMAGE.match(self.image):
            raise GraphError(
                f"stage {self.name!r}: {self.image!r} is not an image reference",
                field="image",
            )

    @property
    def opens(self) -> str | None:
        """The Dockerfile build stage this stage starts (its ``AS`` name), if it starts one."""
        if self.image is not None or self.from_stage is not None:
            return self.name
        return self.build_stage

    @property
    def requires(self) -> tuple[str, ...]:
        """Every stage this one needs before it: ``depends_on``, ``from_stage``, copies."""
        needed = list(self.depends_on)
        if self.from_stage is not None:
            needed.append(self.from_stage)
        needed.extend(copy.stage for copy in self.copies)
        return tuple(dict.fromkeys(needed))


@frozen
class StageGraph:
    """An ordered set of stages. Edits return new graphs; :meth:`order` validates and sorts."""

    stages: tuple[Stage, ...] = ()

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise GraphError(f"stage {stage.name!r} is already in the graph")
            seen.add(stage.name)

    # -- reading ------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    @property
    def blocks(self) -> tuple[str, ...]:
        """Block names of the stages, in render order."""
        return tuple(stage.block for stage in self.order())

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.order())

    def __len__(self) -> int:
        return len(self.stages)

    def get(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise self._unknown(name)

    def _unknown(self, name: str, *, referenced_by: str | None = None) -> GraphError:
        where = f"stage {referenced_by!r} refers to " if referenced_by else ""
        return GraphError(
            f"{where}unknown stage {name!r}{did_you_mean(name, self.names)}; "
            f"the graph has {allowed(self.names)}"
        )

    def _index(self, name: str) -> int:
        return self.names.index(self.get(name).name)

    # -- editing ------------------------------------------------------------------------------
    def add(
        self, stage: Stage, *, after: str | None = None, before: str | None = None
    ) -> StageGraph:
        """Insert ``stage``. ``after=X``: it depends on X and sits right after it;
        ``before=Y``: Y depends on it and it sits right before Y. Neither: appended."""
        if stage.name in self.names:
            raise GraphError(
                f"stage {stage.name!r} is already in the graph; use replace() to change it"
            )
        stages = list(self.stages)
        if after is not None:
            self.get(after)
            stage = evolve(stage, depends_on=(*stage.depends_on, after))
        if before is not None:
            self.get(before)
            stages = [
                evolve(s, depends_on=(*s.depends_on, stage.name)) if s.name == before else s
                for s in stages
            ]
        if before is not None:
            position = self._index(before)
        elif after is not None:
            position = self._index(after) + 1
        else:
            position = len(stages)
        stages.insert(position, stage)
        return self._checked(stages)

    def replace(self, name: str, stage: Stage) -> StageGraph:
        """Swap the stage called ``name`` for ``stage`` (same position; other stages that
        depended on ``name`` now depend on ``stage.name``)."""
        self.get(name)
        if stage.name != name and stage.name in self.names:
            raise GraphError(f"cannot replace {name!r} with {stage.name!r}: already in the graph")
        stages = [
            stage if s.name == name else _rename_refs(s, name, stage.name) for s in self.stages
        ]
        return self._checked(stages)

    def remove(self, name: str) -> StageGraph:
        """Drop ``name``; stages that depended on it inherit its dependencies. Refused when
        another stage copies from it or builds ``FROM`` it."""
        removed = self.get(name)
        stages = []
        for s in self.stages:
            if s.name == name:
                continue
            users = [c for c in s.copies if c.stage == name]
            if users or s.from_stage == name:
                raise GraphError(
                    f"cannot remove stage {name!r}: stage {s.name!r} uses its output "
                    "(COPY --from / from_stage)"
                )
            if name in s.depends_on:
                inherited = [d for d in s.depends_on if d != name] + list(removed.depends_on)
                s = evolve(s, depends_on=tuple(dict.fromkeys(inherited)))
            stages.append(s)
        return self._checked(stages)

    def reorder(
        self, name: str, *, after: str | None = None, before: str | None = None
    ) -> StageGraph:
        """Move ``name`` to sit right after ``after`` (or right before ``before``) in render
        order, without changing dependencies. Refused (naming the dependency) when the
        dependencies do not allow that position."""
        if (after is None) == (before is None):
            raise GraphError("reorder() takes exactly one of after= or before=")
        anchor = after if after is not None else before
        assert anchor is not None
        moving = self.get(name)
        self.get(anchor)
        if anchor == name:
            raise GraphError(f"cannot move stage {name!r} relative to itself")
        stages = [s for s in self.stages if s.name != name]
        position = [s.name for s in stages].index(anchor) + (1 if after is not None else 0)
        stages.insert(position, moving)
        graph = self._checked(stages)
        order = [s.name for s in graph.order()]
        placed = order.index(name)
        ok = (
            placed > 0 and order[placed - 1] == after
            if after is not None
            else placed + 1 < len(order) and order[placed + 1] == before
        )
        if not ok:
            blocker = _blocking_dependency(graph, name)
            raise GraphError(
                f"cannot move stage {name!r} {'after' if after else 'before'} {anchor!r}: {blocker}"
            )
        return graph

    def depend(
        self, stage: str, on: str, *, src: str | None = None, dest: str | None = None
    ) -> StageGraph:
        """Make ``stage`` depend on ``on``. With ``src``/``dest`` it also copies ``src`` out of
        ``on``'s build stage into ``dest`` (``COPY --from=``) at the start of its block."""
        target = self.get(stage)
        source = self.get(on)
        if (src is None) != (dest is None):
            raise GraphError("depend() needs both src= and dest= to copy, or neither")
        if src is not None and dest is not None:
            if source.opens is None:
                raise GraphError(
                    f"stage {stage!r} cannot COPY --from={on!r}: {on!r} does not open a build "
                    "stage (give it image= or from_stage=)"
                )
            updated = evolve(target, copies=(*target.copies, CopyFrom(on, src, dest)))
        else:
            updated = evolve(target, depends_on=tuple(dict.fromkeys((*target.depends_on, on))))
        return self._checked([updated if s.name == stage else s for s in self.stages])

    # -- ordering -----------------------------------------------------------------------------
    def _checked(self, stages: Sequence[Stage]) -> StageGraph:
        graph = StageGraph(tuple(stages))
        graph.order()
        return graph

    def order(self) -> tuple[Stage, ...]:
        """Stages in topological order, ties broken by position. Raises :class:`GraphError`
        naming an unknown reference or the stages of a cycle."""
        by_name = {s.name: s for s in self.stages}
        for s in self.stages:
            for ref in s.requires:
                if ref not in by_name:
                    raise self._unknown(ref, referenced_by=s.name)
            for copy in s.copies:
                if by_name[copy.stage].opens is None:
                    raise GraphError(
                        f"stage {s.name!r} copies from {copy.stage!r}, which does not open a "
                        "build stage"
                    )
            if s.from_stage is not None and by_name[s.from_stage].opens is None:
                raise GraphError(
                    f"stage {s.name!r} builds FROM {s.from_stage!r}, which does not open a "
                    "build stage"
                )
        position = {name: i for i, name in enumerate(self.names)}
        done: list[Stage] = []
        placed: set[str] = set()
        pending = list(self.stages)
        while pending:
            ready = [s for s in pending if all(r in placed for r in s.requires)]
            if not ready:
                raise GraphError(f"the stage graph has a cycle: {' -> '.join(_cycle(pending))}")
            nxt = min(ready, key=lambda s: position[s.name])
            done.append(nxt)
            placed.add(nxt.name)
            pending.remove(nxt)
        if done and done[0].opens is None:
            raise GraphError(
                f"stage {done[0].name!r} comes first but opens no build stage (no FROM before it)"
            )
        return tuple(done)

    def build_stage_of(self, name: str) -> str:
        """The Dockerfile build stage (``AS`` name) that ``name``'s instructions land in."""
        current = None
        for stage in self.order():
            current = stage.opens or current
            if stage.name == name:
                break
        else:
            raise self._unknown(name)
        assert current is not None
        return current


def _rename_refs(stage: Stage, old: str, new: str) -> Stage:
    if old == new:
        return stage
    return evolve(
        stage,
        depends_on=tuple(new if d == old else d for d in stage.depends_on),
        from_stage=new if stage.from_stage == old else stage.from_stage,
        copies=tuple(CopyFrom(new, c.src, c.dest) if c.stage == old else c for c in stage.copies),
    )


def _cycle(pending: Sequence[Stage]) -> list[str]:
    """One cycle among ``pending`` (which has no stage whose requirements are all met)."""
    names = {s.name for s in pending}
    requires = {s.name: [r for r in s.requires if r in names] for s in pending}
    start = pending[0].name
    path: list[str] = []
    current = start
    while current not in path:
        path.append(current)
        current = requires[current][0]
    cycle = path[path.index(current) :]
    return [*cycle, current]


def _blocking_dependency(graph: StageGraph, name: str) -> str:
    stage = graph.get(name)
    dependents = [s.name for s in graph.stages if name in s.requires]
    parts = []
    if stage.requires:
        parts.append(f"it depends on {allowed(stage.requires)}")
    if dependents:
        parts.append(f"{allowed(dependents)} depend on it")
    return " and ".join(parts) or "the dependencies fix its position"


#: where the bento's virtualenv lives in the image (made in the build stage, copied to runtime)
VENV_PATH = "/app/.venv"


def default_graph(*, buildstage: bool = True) -> StageGraph:
    """The default graph: ``base -> buildstage -> runtime -> user -> envars -> components ->
    entrypoint``.

    ``base`` (``FROM <image> AS base-container``) holds what both images share: the Python, the
    system packages, the commands. ``buildstage`` (``FROM base-container``) creates the virtualenv
    and installs the locked requirements into it with uv, adding compilers only when a package
    must be built from source; ``runtime`` (``FROM base-container``) gets the user, the env, the
    venv by ``COPY --from=buildstage`` and the bento's code: no compiler, no installer, no cache in
    the image, and a code change rebuilds only the last layers.

    ``buildstage=False`` is the single-stage layout (everything in ``base-container``, as
    BentoML's own Dockerfile): ``base -> user -> envars -> components -> entrypoint``.
    """
    base = Stage(
        "base",
        template="stages/base.j2",
        block=BLOCK_PREFIX + "BASE_IMAGE",
        build_stage="base-container",
    )
    user = Stage("user", template="stages/user.j2", depends_on=("base",))
    envars = Stage("envars", template="stages/envars.j2", depends_on=("user",))
    components = Stage("components", template="stages/components.j2", depends_on=("envars",))
    entrypoint = Stage("entrypoint", template="stages/entrypoint.j2", depends_on=("components",))
    stages = [base, user, envars, components, entrypoint]
    if buildstage:
        build = Stage("buildstage", template="stages/buildstage.j2", from_stage="base")
        runtime = Stage(
            "runtime",
            template="stages/runtime.j2",
            from_stage="base",
            depends_on=("buildstage",),
        )
        user = evolve(user, depends_on=("runtime",))
        components = evolve(components, copies=(CopyFrom("buildstage", VENV_PATH, VENV_PATH),))
        stages = [base, build, runtime, user, envars, components, entrypoint]
    return StageGraph(tuple(stages))
