"""``python -m pipeline plan BENTO``: print the build plan a ``build`` would run."""

from __future__ import annotations

import argparse

from pipeline.cli.build import configure_build, run_build
from pipeline.cli.command import Command

DESCRIPTION = """\
Print the build plan of a bento: everything `build` with the same options would do, computed
before anything runs. The plan holds the bento (tag and where it came from), the backend, the
tags, platforms, build args, labels (the OCI ones included), outputs, cache settings, the
secrets by id and source (never a value), the build context as a manifest (each file's path,
size, mode and SHA-256), the engine's commands (<context> stands for the context directory the
build makes) and the Dockerfile with each instruction's origin; its digest is a SHA-256 of all
of it, so an unchanged bento and unchanged options give the same digest.

The engine checks of a real build run first (the engine is installed and healthy, it can build
the platforms, pass the secrets, push); --no-check skips them, for an engine this machine does
not have. Nothing is built or stored: a project is built into a temporary store that is
removed again. `build --dry-run` is this command; `build - --plan FILE` builds a plan written
with `-o json`, after checking its bento, context files and commands are still the same.

examples:
  python -m pipeline plan examples/hello
  python -m pipeline plan examples/hello --backend podman --platform linux/arm64 -o json
  python -m pipeline plan examples/hello -o json > plan.json
  python -m pipeline build - --plan plan.json
  python -m pipeline plan my_service:latest --backend buildctl --no-check
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    configure_build(parser, command="plan")


COMMAND = Command(
    name="plan",
    help="print the build plan of a bento: commands, Dockerfile, context manifest, digest",
    description=DESCRIPTION,
    configure=_configure,
    run=run_build,
    usage="%(prog)s BENTO [options]",
)
