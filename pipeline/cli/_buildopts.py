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
    # BentoML's containerize flags, same names and meanings (BuildRequest fields)
    "network": (
        ("--network",),
        {"metavar": "MODE", "help": "networking mode of the RUN steps (default, host, none, ...)"},
    ),
    "pull": (
        ("--pull",),
        {"action": "store_true", "help": "always pull the base images, even when present"},
    ),
    "ssh": (
        ("--ssh",),
        {
            "action": "append",
            "metavar": "default|ID[=SOCKET|KEY[,KEY]]",
            "help": "SSH agent socket or keys for RUN --mount=type=ssh (repeatable)",
        },
    ),
    "add-host": (
        ("--add-host",),
        {
            "action": "append",
            "dest": "add_hosts",
            "metavar": "HOST:IP",
            "help": "extra /etc/hosts entry during the build (repeatable)",
        },
    ),
    "iidfile": (("--iidfile",), {"metavar": "FILE", "help": "write the image id to FILE"}),
    "metadata-file": (
        ("--metadata-file",),
        {"metavar": "FILE", "help": "write the engine's build metadata (JSON) to FILE"},
    ),
    "quiet": (
        ("-q", "--quiet"),
        {"action": "store_true", "help": "print only the image id on stdout, nothing on stderr"},
    ),
    "enable-features": (
        ("--enable-features",),
        {
            "action": "append",
            "dest": "features",
            "metavar": "FEATURE[,FEATURE]",
            "help": "install these bentoml extras, e.g. grpc,tracing (repeatable)",
        },
    ),
    "run-as-root": (
        ("--run-as-root",),
        {"action": "store_true", "help": "run the engine command with sudo"},
    ),
    "check-secrets": (
        ("--check-secrets",),
        {
            "action": "store_true",
            "help": "after building, scan every layer, the config and the history of the image "
            "for the bytes of each --secret and build-stage env; fail (exit 1, image removed) "
            "when one is found",
        },
    ),
}

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


# dest -> the api keyword of the BentoML flags a command may have added
_BENTOML_DESTS = {
    "network": "network",
    "pull": "pull",
    "ssh": "ssh",
    "add_hosts": "add_hosts",
    "iidfile": "iidfile",
    "metadata_file": "metadata_file",
    "quiet": "quiet",
    "features": "features",
    "run_as_root": "run_as_root",
    "check_secrets": "check_secrets",
}


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    """The api build keywords read from the shared options (the commands add their own)."""
    given = vars(args)
    bentoml = {key: given[dest] for dest, key in _BENTOML_DESTS.items() if dest in given}
    opts = [*(args.opts or ()), *given.get("engine_flags", ())]
    return {
        **bentoml,
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
        "opts": opts or None,
    }
