"""Build options shared by ``build`` and ``matrix``: one declaration, one parse into api options.

Each command adds the options it has in its own order (its --help keeps that order) and may
give an option its own help text; the flags, dest, metavar and action are declared once here.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.request import PROGRESS_MODES

_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "secret": (
        ("--secret",),
        {
            "action": "append",
            "dest": "secrets",
            "metavar": "id=X,src=FILE|id=X,env=VAR",
            "help": "build secret mounted at /run/secrets/X during RUN; never stored in the image",
        },
    ),
    "build-arg": (
        ("--build-arg",),
        {"action": "append", "dest": "build_args", "metavar": "KEY=VALUE"},
    ),
    "label": (
        ("--label",),
        {"action": "append", "dest": "labels", "metavar": "KEY=VALUE", "help": "image label"},
    ),
    "ca-cert": (("--ca-cert",), {"metavar": "FILE"}),
    "push": (("--push",), {"action": "store_true"}),
    "load": (("--load",), {"action": "store_true"}),
    "no-cache": (("--no-cache",), {"action": "store_true", "help": "do not use the build cache"}),
    "target": (("--target",), {"metavar": "STAGE", "help": "build up to this stage"}),
    "cache-from": (("--cache-from",), {"action": "append", "metavar": "REF|type=..."}),
    "cache-to": (
        ("--cache-to",),
        {"action": "append", "metavar": "REF|type=...", "help": "cache export destination"},
    ),
    "progress": (("--progress",), {"choices": PROGRESS_MODES, "default": "auto"}),
    "opt": (("--opt",), {"action": "append", "dest": "opts"}),
    "template": (
        ("--template",),
        {"metavar": "FILE", "help": "Dockerfile template overriding blocks"},
    ),
    "buildstage": (
        ("--buildstage",),
        {"action": argparse.BooleanOptionalAction, "default": True},
    ),
}


def add_build_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **overrides: Any
) -> None:
    """Add the shared option NAME (e.g. "secret"); OVERRIDES replace its declared keywords."""
    flags, kwargs = _OPTIONS[name]
    parser.add_argument(*flags, **{**kwargs, **overrides})


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The api build keywords read from the shared options (the commands add their own)."""
    return {
        "secrets": args.secrets,
        "build_args": args.build_args,
        "target": args.target,
        "cache_from": args.cache_from,
        "cache_to": args.cache_to,
        "progress": args.progress,
        "push": args.push,
        "load": args.load,
        "labels": args.labels,
        "no_cache": args.no_cache,
        "ca_cert": args.ca_cert,
        "opts": args.opts,
    }
