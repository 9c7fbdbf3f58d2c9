"""``python -m pipeline dockerfile``: print the Dockerfile a bento renders to."""

from __future__ import annotations

import argparse
import sys

from attrs import evolve

from pipeline.bento import resolve_bento
from pipeline.cacert import check_ca_cert
from pipeline.cli.command import Command
from pipeline.config import Bento
from pipeline.graph import default_graph
from pipeline.rendering import RenderOptions, render_dockerfile
from pipeline.requirements import bento_source_builds

DESCRIPTION = """\
Render the bento's stage graph (buildstage? -> base -> user -> envars -> components ->
entrypoint) through its dockerfile_template (or --template) and print the Dockerfile on stdout.
No image is built.

BENTO is a bento directory (with bento.yaml), a project directory (with bentofile.yaml; built
into the store as a new bento, which is kept only when its Dockerfile renders) or a store tag
(name[:version|latest]).

examples:
  python -m pipeline dockerfile examples/hello
  python -m pipeline dockerfile examples/echo-block --strict
  python -m pipeline dockerfile my_service:latest --template ./Dockerfile.template
  python -m pipeline dockerfile examples/hello --no-buildkit     # for builders without BuildKit
"""


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``dockerfile`` and ``export``."""
    parser.add_argument("bento", metavar="BENTO", help="bento directory, project directory or tag")
    parser.add_argument(
        "--template",
        metavar="FILE",
        help="a Dockerfile template (.j2/.template/.jinja) used instead of the bento's "
        "dockerfile_template",
    )
    parser.add_argument(
        "--strict", action="store_true", help="template lint findings are errors, not warnings"
    )
    parser.add_argument(
        "--no-buildkit",
        dest="buildkit",
        action="store_false",
        help="render for builders without BuildKit (no RUN --mount cache/secret mounts)",
    )
    parser.add_argument(
        "--ca-cert",
        dest="ca_cert",
        nargs="?",
        const=True,
        default=None,
        metavar="FILE",
        help="as in build: downloads trust the PEM certificate FILE (with the system CA "
        "bundle), passed as the BuildKit secret 'ca_cert' when the image is built, never copied "
        "into the context or the image; FILE is checked. Without FILE: the Dockerfile mounts "
        "the secret and you pass the bundle yourself (--secret id=ca_cert,src=BUNDLE)",
    )
    parser.add_argument(
        "--buildstage",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="make the venv in a build stage and copy it into the image (default); "
        "--no-buildstage keeps the single-stage layout",
    )


def render_from_args(args: argparse.Namespace) -> tuple[Bento, str]:
    """Resolve the bento and render its Dockerfile from the shared options."""
    if isinstance(args.ca_cert, str):
        check_ca_cert(args.ca_cert)  # the same file build --ca-cert takes, checked alike
    options = RenderOptions(
        template=args.template,
        buildkit=args.buildkit,
        ca_cert=args.ca_cert is not None,
        strict=args.strict,
    )
    graph = default_graph(buildstage=args.buildstage)
    rendered: list[str] = []

    def render(bento: Bento) -> None:
        found = evolve(options, source_builds=bento_source_builds(bento))
        rendered.append(render_dockerfile(bento, found, graph))

    # A project is rendered before its new bento enters the store: a failure stores nothing.
    bento = resolve_bento(args.bento, check=render)
    if not rendered:
        render(bento)
    return bento, rendered[-1]


def _run(args: argparse.Namespace) -> int:
    _bento, dockerfile = render_from_args(args)
    sys.stdout.write(dockerfile)
    return 0


COMMAND = Command(
    name="dockerfile",
    help="print the Dockerfile a bento renders to (no image is built)",
    description=DESCRIPTION,
    configure=add_render_arguments,
    run=_run,
)
