"""Command-line interface: ``python -m pipeline <command>``.

Each command lives in its own module under :mod:`pipeline.cli` and exposes ``COMMAND``, a
:class:`Command`. The order of :data:`COMMANDS` is the order ``--help`` lists them in. Only the
invoked command's module is imported (``build`` does not pay for ``base-image``'s imports); the
others appear in ``--help`` by the one-line help recorded here, which a test keeps equal to the
module's own.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from difflib import get_close_matches

from pipeline import __version__
from pipeline.cli.command import Command  # command modules import it from pipeline.cli.command
from pipeline.errors import PipelineError, PipelineWarning

#: command name -> (module under pipeline.cli, the one-line help ``--help`` lists)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": (
        "build",
        "build a bento into a container image on docker, buildx, podman, buildah, ...",
    ),
    "containerize": ("containerize", "BentoML's spelling of `build` (same options)"),
    "plan": (
        "plan",
        "print the build plan of a bento: commands, Dockerfile, context manifest, digest",
    ),
    "dockerfile": ("dockerfile", "print the Dockerfile a bento renders to (no image is built)"),
    "export": (
        "export",
        "write a self-contained build context (bento files + Dockerfile + entrypoint)",
    ),
    "bento": ("bento", "build bentos from projects; list, show, delete and prune the store"),
    "backends": ("backends", "list build engines: availability, version, health, capabilities"),
    "base-image": (
        "base_image",
        "build a python base image from Debian packages (no registry needed)",
    ),
    "matrix": ("matrix", "build one image per platform x python x distro x cuda cell"),
}


def load_command(name: str) -> Command | None:
    """The command's :class:`Command` (None when its module is not shipped in this build)."""
    qualified = f"pipeline.cli.{COMMANDS[name][0]}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name == qualified:
            return None
        raise
    command: Command = module.COMMAND
    return command


def invoked_command(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (the first item that is not an option), if it is one."""
    for item in argv:
        if item == "--":
            return None
        if not item.startswith("-"):
            return item if item in COMMANDS else None
    return None


def _version() -> str:
    return __version__


def make_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``argv``, only the command it invokes is configured (the rest
    are listed in ``--help`` but not imported)."""
    wanted = None if argv is None else invoked_command(argv)
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description=(
            "Build container images from bentos: render a stage graph into a Dockerfile and build "
            "it with Dagger, docker, buildx, podman, buildah, nerdctl, buildctl or a plugin."
        ),
        epilog="Run 'python -m pipeline COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for errors (for bug reports)"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"bento-pipeline {_version()}",
        help="print the version",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for name, (_module, one_line) in COMMANDS.items():
        if argv is not None and name != wanted:
            sub.add_parser(name, help=one_line)  # listed; never parsed in this process
            continue
        command = load_command(name)
        if command is None:
            continue
        sub_parser = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            usage=command.usage,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub_parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for errors",
        )
        command.configure(sub_parser)
        sub_parser.set_defaults(_run=command.run, _parser=sub_parser)
    return parser


def _close_flag(flag: str, known: Sequence[str]) -> str:
    """`` (did you mean '--platform'?)`` for a typo; stricter than did_you_mean's default, so
    an engine flag (``--squash``) is not mistaken for one of ours (``--ssh``)."""
    matches = get_close_matches(flag, list(known), n=1, cutoff=0.8)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def unrecognized_message(extras: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """argparse's "unrecognized arguments" plus what to do: a close flag's name, or, on a build
    command (one with --opt), the ``--opt`` form that passes the flag to the engine."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    known = [flag for flag in parser._option_string_actions if flag.startswith("--")]
    hints: list[str] = []
    for index, item in enumerate(extras):
        if not item.startswith("--") or item == "--":
            continue
        flag, sep, value = item.partition("=")
        close = _close_flag(flag, known)
        if close:
            hints.append(f"{flag}{close}")
            continue
        if "--opt" not in parser._option_string_actions:
            continue
        if not sep and index + 1 < len(extras) and not extras[index + 1].startswith("-"):
            sep, value = "=", extras[index + 1]
        hints.append(f"pass engine options with --opt {flag[2:]}{sep}{value}")
    return "; ".join([message, *hints, f"all options: {parser.prog} --help"])


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    if issubclass(category, PipelineWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, None, line)


_default_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = make_parser(argv)
    args, extras = parser.parse_known_args(argv)
    if extras:  # the command's own usage, not the top-level one (exits 2)
        command_parser = getattr(args, "_parser", parser)
        command_parser.error(unrecognized_message(extras, command_parser))
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", PipelineWarning)
    try:
        return int(args._run(args) or 0)
    except PipelineError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`... | head -1`): stop quietly, as a killed-by-SIGPIPE tool would
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
