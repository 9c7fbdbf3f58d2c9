"""Build options shared by ``build`` and ``matrix``: one declaration, one parse into api options.

Each command adds the options it has in its own order (its --help keeps that order) and may
give an option its own help text; the flags, dest, metavar and action are declared once here.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.options import OPTIONS, Option


def _declared(option: Option) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The argparse flags and keywords of a declared build option (:mod:`pipeline.options`)."""
    kwargs: dict[str, Any] = {"dest": option.dest, "help": option.help}
    if option.kind == "flag":
        kwargs["action"] = "store_true"
    elif option.kind in ("list", "map"):
        kwargs["action"] = "append"
    if option.metavar is not None and option.kind != "flag":
        kwargs["metavar"] = option.metavar
    if option.choices is not None:
        kwargs["choices"] = option.choices
    if option.default is not None:
        kwargs["default"] = option.default
    return option.flags, kwargs


# Every build option by its CLI name (``secret``, ``build-arg``, ...), as declared once in
# pipeline.options; plus the render options the build commands share.
_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    option.flag[2:]: _declared(option) for option in OPTIONS
}
_OPTIONS.update(
    {
        "template": (
            ("--template",),
            {"metavar": "FILE", "help": "Dockerfile template overriding blocks"},
        ),
        "buildstage": (
            ("--buildstage",),
            {"action": argparse.BooleanOptionalAction, "default": True},
        ),
    }
)


#: BentoML's buildx-only containerize flags: passed to the engine as --opt KEY=VALUE, refused by
#: engines without them. flag -> (metavar, repeatable)
ENGINE_FLAGS: dict[str, tuple[str, bool]] = {
    "--allow": ("ENTITLEMENT", True),
    "--attest": ("type=TYPE[,KEY=VALUE]", True),
    "--build-context": ("NAME=VALUE", True),
    "--builder": ("NAME", False),
    "--cgroup-parent": ("CGROUP", False),
    "--no-cache-filter": ("STAGE", True),
    "--provenance": ("VALUE", False),
    "--sbom": ("VALUE", False),
    "--shm-size": ("SIZE", False),
    "--ulimit": ("TYPE=SOFT[:HARD]", True),
}


class _EngineFlag(argparse.Action):
    """``--allow X`` -> the --opt item ``allow=X`` (kept in command-line order)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        items = list(getattr(namespace, "engine_flags", None) or [])
        items.append(f"{self.dest.replace('_', '-')}={values}")
        namespace.engine_flags = items


def add_build_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **overrides: Any
) -> None:
    """Add the shared option NAME (e.g. "secret"); OVERRIDES replace its declared keywords."""
    flags, kwargs = _OPTIONS[name]
    parser.add_argument(*flags, **{**kwargs, **overrides})


def add_engine_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add BentoML's buildx-only flags (:data:`ENGINE_FLAGS`), each one an ``--opt`` item."""
    for flag, (metavar, repeatable) in ENGINE_FLAGS.items():
        key = flag[2:]
        parser.add_argument(
            flag,
            action=_EngineFlag,
            dest=key.replace("-", "_"),
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=f"same as --opt {key}={metavar}" + (" (repeatable)" if repeatable else ""),
        )


# the options each command declares itself (their help or meaning is the command's)
_OWN = frozenset({"tags", "platforms", "output"})


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The api build keywords read from the declared options a command added (each command
    reads ``tags``, ``platforms`` and ``output`` itself)."""
    given = vars(args)
    found = {o.name: given[o.dest] for o in OPTIONS if o.name not in _OWN and o.dest in given}
    opts = [*(found.get("opts") or ()), *given.get("engine_flags", ())]
    found["opts"] = opts or None
    return found
