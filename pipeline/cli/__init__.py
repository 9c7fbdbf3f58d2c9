"""Command-line interface: ``python -m pipeline <command>``.

Each command lives in its own module under :mod:`pipeline.cli` and exposes ``COMMAND``, a
:class:`Command`. The order of :data:`COMMAND_MODULES` is the order ``--help`` lists them in.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence

from attrs import frozen

from pipeline.errors import PipelineError, PipelineWarning

COMMAND_MODULES: tuple[str, ...] = (
    "build",
    "containerize",
    "dockerfile",
    "export",
    "bento",
    "backends",
    "base_image",
    "matrix",
)


@frozen
class Command:
    name: str
    help: str  # one line, shown in `python -m pipeline --help`
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


def _load_commands() -> list[Command]:
    commands = []
    for module_name in COMMAND_MODULES:
        qualified = f"pipeline.cli.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue  # command not shipped in this build
            raise
        commands.append(module.COMMAND)
    return commands


def make_parser() -> argparse.ArgumentParser:
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for command in _load_commands():
        sub_parser = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub_parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for errors",
        )
        command.configure(sub_parser)
        sub_parser.set_defaults(_run=command.run)
    return parser


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
    parser = make_parser()
    args = parser.parse_args(argv)
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
