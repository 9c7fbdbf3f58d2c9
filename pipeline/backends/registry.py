"""The backend registry: built-in engines, registered plugins, entry points, and selection.

Selection order (first match wins): an explicit name (``--backend``, ``backend=``), then
``PIPELINE_BACKEND``, then ``BENTOML_CONTAINERIZE_BACKEND``, then the first healthy engine in
:data:`AUTO_ORDER`. ``DOCKER_BUILDKIT=0`` turns ``docker`` into the classic builder.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from attrs import frozen

from pipeline.backends.base import BackendSpec, Capabilities, Health, which
from pipeline.backends.executor import ExternalExecutor
from pipeline.errors import BackendError, PipelineWarning, allowed, did_you_mean
from pipeline.executor import Executor
from pipeline.options import OPTIONS
from pipeline.request import BuildRequest

ENTRY_POINT_GROUP = "bento_pipeline.backends"
BUILTIN: tuple[str, ...] = ("docker", "buildx", "podman", "buildah", "nerdctl", "buildctl")
AUTO_ORDER: tuple[str, ...] = BUILTIN
DAGGER = "dagger"
ENV_VARS: tuple[str, ...] = ("PIPELINE_BACKEND", "BENTOML_CONTAINERIZE_BACKEND")

_registered: dict[str, BackendSpec] = {}
_entry_points_loaded = False


# ---------------------------------------------------------------------------------------------
# Plugin API


def register_backend(
    name: str,
    *,
    binary: str,
    buildkit_support: bool,
    health: Callable[[], bool],
    construct_build_args: Callable[..., Sequence[str]],
    env: Mapping[str, str] | None = None,
) -> BackendSpec:
    """Add an external engine, as in ``bentoml.container.register_backend``.

    ``construct_build_args(**options)`` receives keyword options (``context_path``, ``file``,
    ``tag``, ``platform``, ``secret``, ``build_arg``, ``label``, ``target``, ``cache_from``,
    ``cache_to``, ``no_cache``, ``progress``, ``push``, ``load``, ``output`` and every ``--opt``)
    and returns the argv; the binary is prepended unless the argv already starts with it.
    ``health()`` returns whether the engine is usable. Registering an existing name replaces it.
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise BackendError(
            f"backend name {name!r} must be letters, digits, '-' or '_'", field="name"
        )
    if name == DAGGER:
        raise BackendError("the name 'dagger' is reserved for the Dagger executor", field="name")
    if not callable(health) or not callable(construct_build_args):
        raise BackendError(
            f"register_backend({name!r}): health and construct_build_args must be callables"
        )
    spec = BackendSpec(
        name=name,
        binary=binary,
        buildkit_support=bool(buildkit_support),
        construct_build_args=_plugin_argv(name, binary, construct_build_args),
        health=_plugin_health(name, binary, health),
        capabilities=_plugin_capabilities(bool(buildkit_support)),
        env=dict(env or {}),
        description=f"registered backend ({binary})",
        dockerfile_mounts=bool(buildkit_support),
        iidfile=False,
        plugin=True,
    )
    _registered[name] = spec
    return spec


def unregister_backend(name: str) -> None:
    """Remove a registered backend (tests, plugins reloading)."""
    _registered.pop(name, None)


def request_options(request: BuildRequest) -> dict[str, Any]:
    """A request as the keyword options BentoML-style ``construct_build_args`` receive."""
    options: dict[str, Any] = {
        "context_path": str(request.context),
        "file": str(request.dockerfile_path),
    }
    # every declared option a plugin gets, under BentoML's keyword (pipeline.options)
    for declared in OPTIONS:
        if declared.plugin is None:
            continue
        value = getattr(request, declared.name)
        if declared.name == "secrets":
            value = tuple(s.describe() for s in value)
        elif declared.kind == "list":
            value = tuple(value)
        elif declared.kind == "map":
            value = dict(value)
        elif declared.kind == "file":
            value = None if value is None else str(value)
        options[declared.plugin] = value
    for key, value in request.opts:
        options[key.lstrip("-").replace("-", "_")] = True if value is None else value
    return options


# Always passed; a plugin that does not take them builds `context_path/Dockerfile` as usual.
_DROPPABLE = frozenset({"file", "progress"})


def _plugin_argv(
    name: str, binary: str, function: Callable[..., Sequence[str]]
) -> Callable[..., list[str]]:
    signature = inspect.signature(function)
    takes_all = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    def construct(request: BuildRequest, **_: object) -> list[str]:
        options = request_options(request)
        if not takes_all:
            unknown = [
                key
                for key, value in options.items()
                if key not in signature.parameters
                and key not in _DROPPABLE
                and value not in (None, (), {}, False)
            ]
            if unknown:
                raise BackendError(
                    f"backend {name!r} does not take option(s) {', '.join(unknown)}",
                    hint=f"its construct_build_args accepts {allowed(signature.parameters)}",
                )
            options = {k: v for k, v in options.items() if k in signature.parameters}
        argv = function(**options)
        if isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
            raise BackendError(
                f"backend {name!r}: construct_build_args must return a list of strings "
                f"(an argv, never a shell string), got {argv!r}"
            )
        argv = list(argv)
        if not argv or os.path.basename(argv[0]) != os.path.basename(binary):
            argv = [binary, *argv]
        return argv

    return construct


def _plugin_health(name: str, binary: str, function: Callable[[], bool]) -> Callable[[], Health]:
    def health() -> Health:
        if os.sep not in binary and which(binary) is None:
            return Health(False, f"{binary} is not on PATH")
        if os.sep in binary and not os.access(binary, os.X_OK):
            return Health(False, f"{binary} is not an executable file")
        try:
            ok = bool(function())
        except Exception as exc:  # a plugin's bug must not crash `backends`
            return Health(False, f"health check raised {type(exc).__name__}: {exc}")
        return Health(ok, "ok" if ok else f"{name}'s health check returned False")

    return health


def _plugin_capabilities(buildkit: bool) -> Callable[[], Capabilities]:
    def capabilities() -> Capabilities:
        return Capabilities(
            secrets=buildkit,
            cache_mounts=buildkit,
            notes=("declared by the plugin (buildkit_support), not probed",),
        )

    return capabilities


# ---------------------------------------------------------------------------------------------
# Entry points


def load_entry_points(*, force: bool = False) -> list[str]:
    """Register backends from the ``bento_pipeline.backends`` entry-point group (once).

    Each entry point names a :class:`BackendSpec`, a mapping of ``register_backend`` keyword
    arguments, or a callable returning either (or registering itself). A broken plugin is a
    warning, not a crash. Returns the names registered.
    """
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    names = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, BackendSpec):
                obj = obj()
            if isinstance(obj, BackendSpec):
                _registered[ep.name] = obj
            elif isinstance(obj, Mapping):
                register_backend(ep.name, **obj)
            elif ep.name not in _registered:
                raise TypeError(f"{ep.value} gave {type(obj).__name__}, not a backend")
            names.append(ep.name)
        except Exception as exc:
            warnings.warn(
                f"backend plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                PipelineWarning,
                stacklevel=2,
            )
    return names


# ---------------------------------------------------------------------------------------------
# Lookup and selection


def available_backends() -> tuple[str, ...]:
    """Every known backend name: built-ins, then registered/plugin ones, then ``dagger``."""
    load_entry_points()
    extra = [name for name in _registered if name not in BUILTIN]
    return (*BUILTIN, *extra, DAGGER)


def classic_docker_requested(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("DOCKER_BUILDKIT")
    return value is not None and value.strip().lower() in ("0", "false", "no", "off")


def get_backend(name: str, *, environ: Mapping[str, str] | None = None) -> BackendSpec:
    """The spec of an external engine; unknown names list the known ones."""
    load_entry_points()
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        module = importlib.import_module(f"pipeline.backends.{name}")
        if name == "docker" and classic_docker_requested(environ):
            return module.CLASSIC
        return module.SPEC
    if name == DAGGER:
        raise BackendError(
            "'dagger' is not an external engine; use get_executor('dagger')", field="backend"
        )
    raise BackendError(
        f"unknown backend {name!r}{did_you_mean(name, available_backends())}; "
        f"known: {allowed(available_backends())}",
        field="--backend",
        hint="register your own with pipeline.register_backend(...) or the "
        f"{ENTRY_POINT_GROUP!r} entry-point group (docs/backends.md)",
    )


def get_executor(name: str, *, environ: Mapping[str, str] | None = None) -> Executor:
    """An :class:`~pipeline.executor.Executor` for ``name`` (``"dagger"`` resolved lazily)."""
    if name == DAGGER:
        try:
            module = importlib.import_module("pipeline.dagger.executor")
            executor_class = module.DaggerExecutor
        except (ImportError, AttributeError) as exc:
            raise BackendError(
                f"the dagger executor is not available in this install ({exc})",
                field="--backend",
                hint=f"pick another backend: {allowed(BUILTIN)}",
            ) from exc
        return executor_class()
    return ExternalExecutor(get_backend(name, environ=environ))


@frozen
class Selection:
    """Which backend a build uses, and why (``source``: ``--backend``, an env var, ``auto``)."""

    name: str
    source: str
    executor: Executor
    buildkit: bool  # render RUN --mount syntax (secrets, caches)


def select_backend(
    explicit: str | None = None, *, environ: Mapping[str, str] | None = None
) -> Selection:
    """Resolve the backend for a build (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    name, source = explicit, "--backend"
    if not name:
        for var in ENV_VARS:
            if env.get(var):
                name, source = env[var].strip(), var
                break
    if not name:
        return _auto_select(env)
    executor = get_executor(name, environ=env)
    return Selection(name, source, executor, executor.renders_mounts)


def _auto_select(env: Mapping[str, str]) -> Selection:
    reasons = []
    for name in AUTO_ORDER:
        spec = get_backend(name, environ=env)
        health = spec.health()
        if health.ok:
            executor = get_executor(name, environ=env)
            return Selection(name, "auto", executor, executor.renders_mounts)
        reasons.append(f"  {name}: {health.reason}")
    raise BackendError(
        "no usable build engine found; tried, in order:\n" + "\n".join(reasons),
        hint="start one of them, or pick one with --backend / PIPELINE_BACKEND",
    )
