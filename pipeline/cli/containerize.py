"""``python -m pipeline containerize BENTO``: BentoML's spelling of ``build`` (same options)."""

from __future__ import annotations

from pipeline.cli.build import _configure, run_build
from pipeline.cli.command import Command

DESCRIPTION = """\
Build a bento into a container image: BentoML's spelling of `python -m pipeline build`, with
the same options (see `python -m pipeline build --help`). `bentoml containerize TAG ...`
becomes `python -m pipeline containerize TAG ...` with the same flags.

BENTO is a store tag (name[:version|latest]) as in BentoML, or a bento or project directory.

examples:
  python -m pipeline containerize my_service:latest -t my-service:1
  python -m pipeline containerize my_service:latest --image-tag my-service:1 --network host
  python -m pipeline containerize my_service:latest --backend podman --pull -q
  python -m pipeline containerize my_service:latest --enable-features grpc,tracing
"""

COMMAND = Command(
    name="containerize",
    help="BentoML's spelling of `build` (same options)",
    description=DESCRIPTION,
    configure=_configure,
    run=run_build,
    usage="%(prog)s BENTO [options]",
)
