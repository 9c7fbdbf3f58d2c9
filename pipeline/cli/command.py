"""What a CLI command module exposes: its ``COMMAND``, a :class:`Command`.

Its own module so that command modules import it without importing the dispatcher
(:mod:`pipeline.cli`), which imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from attrs import frozen


@frozen
class Command:
    name: str
    help: str  # one line, shown in `python -m pipeline --help`
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    usage: str | None = None  # instead of argparse's list of every option
