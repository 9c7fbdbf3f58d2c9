"""What a CLI command module exposes: its ``COMMAND``, a :class:`Command`.

Its own module so that command modules import it without importing the dispatcher
(:mod:`pipeline.cli`), which imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from attrs import frozen


def add_json_flag(*parsers: argparse.ArgumentParser, dest: str = "output") -> None:
    """``--json`` on each parser: the result as JSON on stdout, the same flag in every command
    that prints a result (it sets ``dest`` to ``"json"``, as ``--output json`` does)."""
    for parser in parsers:
        parser.add_argument(
            "--json",
            action="store_const",
            const="json",
            dest=dest,
            help="print the result as JSON on stdout (same as --output json)",
        )


@frozen
class Command:
    name: str
    help: str  # one line, shown in `python -m pipeline --help`
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    usage: str | None = None  # instead of argparse's list of every option
