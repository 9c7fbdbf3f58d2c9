"""``python -m pipeline matrix BENTO``: build one image per platform x python x distro x cuda."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, TextIO, cast

import pipeline.matrix as mx
from pipeline.cli._buildopts import add_build_option, add_engine_flags, build_options
from pipeline.cli.build import ProgressDisplay
from pipeline.cli.command import Command, add_json_flag
from pipeline.graph import default_graph
from render.distros import DISTROS

RESULT_FORMATS = ("text", "json")

DESCRIPTION = f"""\
Build a bento once per cell of a matrix: platform x python x distro x cuda.

Every cell is one single-platform build with its own tag (--tag-template, default
{mx.DEFAULT_TAG_TEMPLATE!r}; {mx.DEFAULT_BASE_IMAGE_TAG_TEMPLATE!r} for a bento with its
own base_image). An axis left out is the bento's own value (platform: this machine's).
Cells a distro cannot do (a Python, CUDA version or architecture it has no image for) are
skipped and listed with the reason. The bento (or project, built into the store once) is
resolved once. Exit code: 0 when every cell that was not skipped built, 1 when one failed,
2 on bad input (nothing is built then).

placeholders for --tag-template: {", ".join("{" + f + "}" for f in mx.TEMPLATE_FIELDS)}

examples:
  python -m pipeline matrix examples/hello --platform linux/amd64,linux/arm64
  python -m pipeline matrix ./project --python 3.11,3.12 --distro debian,alpine --concurrency 2
  python -m pipeline matrix ./project --cuda none,12.8 -t 'svc:{{python}}{{cuda}}-{{arch}}'
  python -m pipeline matrix examples/hello --platform amd64,arm64 --dry-run
  python -m pipeline matrix examples/hello --python 3.11,3.13 --output json
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bento", metavar="BENTO", help="bento directory, project directory or tag")
    axes = parser.add_argument_group("matrix axes (comma-separated or repeated)")
    axes.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        metavar="OS/ARCH[,...]",
        help="e.g. linux/amd64,linux/arm64 (default: this machine's)",
    )
    axes.add_argument(
        "--python",
        action="append",
        dest="python_versions",
        metavar="X.Y[,...]",
        help="Python versions (default: the bento's)",
    )
    axes.add_argument(
        "--distro",
        action="append",
        dest="distros",
        metavar="NAME[,...]",
        help=f"{', '.join(DISTROS)} (default: the bento's)",
    )
    axes.add_argument(
        "--cuda",
        action="append",
        dest="cuda_versions",
        metavar="VERSION|none[,...]",
        help="CUDA versions; 'none' is a cell without CUDA (default: the bento's)",
    )
    parser.add_argument("--backend", metavar="NAME", help="engine every cell builds with")
    parser.add_argument(
        "-t",
        "--tag-template",
        metavar="TEMPLATE",
        help=f"tag of each cell (default {mx.DEFAULT_TAG_TEMPLATE!r})".replace("%", "%%"),
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=mx.DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"cells built at the same time (default {mx.DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first failed cell, cancelling the running ones",
    )
    parser.add_argument(
        "--output",
        choices=RESULT_FORMATS,
        default="text",
        help="text: a table; json: the result as JSON on stdout",
    )
    add_json_flag(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print each cell's exact command (and the skipped cells); build nothing",
    )
    build = parser.add_argument_group("build options (applied to every cell)")
    add_build_option(build, "secret")
    add_build_option(build, "build-arg", help="repeatable")
    add_build_option(build, "label")
    add_build_option(
        build, "ca-cert", help="extra CA certificate (PEM) for pip/uv/curl/apt, as a secret mount"
    )
    add_build_option(build, "push", help="push each cell's tag after building")
    add_build_option(build, "load", help="load into the local image store")
    add_build_option(build, "no-cache")
    add_build_option(build, "target")
    add_build_option(build, "cache-from", help="external cache source")
    add_build_option(build, "cache-to")
    add_build_option(
        build,
        "progress",
        help="auto: step lines prefixed with the cell; plain/tty: all output; quiet: only the "
        "table",
    )
    add_build_option(
        build, "opt", metavar="KEY=VALUE|KEY", help="backend pass-through option (repeatable)"
    )
    add_build_option(build, "template")
    add_build_option(
        build, "buildstage", help="venv in a build stage (default); --no-buildstage: one stage"
    )
    add_build_option(build, "enable-features")
    add_build_option(build, "check-secrets", help="scan each cell's image for the secrets")
    # BentoML's containerize flags that mean the same for every cell (not --iidfile,
    # --metadata-file, -q: one file or one id for many images)
    for name in ("network", "pull", "ssh", "add-host", "run-as-root"):
        add_build_option(build, name)
    add_engine_flags(
        parser.add_argument_group("BentoML's buildx options, passed to the engine as --opt")
    )


class _Prefixed:
    """A text stream that prefixes every line with the cell (one lock for all cells)."""

    _lock = threading.Lock()

    def __init__(self, prefix: str, stream: TextIO) -> None:
        self.prefix = prefix
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        with self._lock:
            for line in lines:
                self.stream.write(f"[{self.prefix}] {line.lstrip()}\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _options(args: argparse.Namespace) -> dict[str, Any]:
    progress = args.progress
    if progress == "tty" and args.concurrency > 1:
        progress = "plain"  # several engines cannot share one terminal display
    return {
        **build_options(args),
        "progress": progress,
        "template": args.template,
        "graph": default_graph(buildstage=args.buildstage),
    }


def _axes(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "platforms": args.platforms,
        "python_versions": args.python_versions,
        "distros": args.distros,
        "cuda_versions": args.cuda_versions,
        "tag_template": args.tag_template,
    }


def _run(args: argparse.Namespace) -> int:
    as_json = args.output == "json"
    if args.dry_run:
        return _dry_run(args, as_json)
    quiet = as_json or args.progress == "quiet"
    displays: dict[mx.Cell, ProgressDisplay] = {}

    def on_output(cell: mx.Cell, line: str) -> None:
        if cell not in displays:
            displays[cell] = ProgressDisplay(
                "quiet" if quiet else args.progress,
                stream=cast(TextIO, _Prefixed(cell.key, sys.stderr)),
            )
        displays[cell](line)

    def on_start(planned: mx.PlannedCell) -> None:
        if not quiet:
            print(f"[{planned.cell.key}] building {planned.tag}", file=sys.stderr, flush=True)

    def on_cell(row: mx.CellResult) -> None:
        if not quiet and row.status != "skipped":
            seconds = f" in {row.duration:.1f}s" if row.status != "cancelled" else ""
            print(f"[{row.cell.key}] {row.status}{seconds}", file=sys.stderr, flush=True)
        if row.status == "failed" and not as_json:
            print(f"[{row.cell.key}] error: {row.error}", file=sys.stderr, flush=True)

    result = mx.matrix(
        args.bento,
        backend=args.backend,
        concurrency=args.concurrency,
        fail_fast=args.fail_fast,
        on_output=on_output,
        on_start=on_start,
        on_cell=on_cell,
        **_axes(args),
        **_options(args),
    )
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_table(result))
    return 0 if result.ok else 1


def format_table(result: mx.MatrixResult) -> str:
    """cell | status | tag | seconds (| why, for skipped / failed cells), then a summary."""
    header = ("CELL", "PLATFORM", "STATUS", "TAG", "SECONDS", "NOTE")
    rows = [header]
    for row in result.rows:
        note = (row.error or "").splitlines()[0] if row.status != "ok" and row.error else ""
        seconds = f"{row.duration:.1f}" if row.status in ("ok", "failed") else "-"
        rows.append((row.cell.key, row.cell.platform, row.status, row.tag or "-", seconds, note))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(r[i].ljust(widths[i]) for i in range(len(widths))), r[-1]]).rstrip()
        for r in rows
    ]
    counts = ", ".join(
        f"{n} {status}"
        for status in mx.STATUSES
        if (n := sum(1 for row in result.rows if row.status == status))
    )
    lines.append(
        f"{result.bento} with {result.backend}: {counts or 'no cells'} "
        f"in {result.duration:.1f}s"
    )
    return "\n".join(lines)


def _dry_run(args: argparse.Namespace, as_json: bool) -> int:
    backend, runs = mx.dry_run_matrix(args.bento, backend=args.backend, **_axes(args),
                                      **_options(args))  # fmt: skip
    if as_json:
        cells = []
        for run in runs:
            entry: dict[str, Any] = {
                "cell": run.planned.cell.key,
                **run.planned.cell.to_json(),
                "status": "planned" if run.dry_run else "fails" if run.error else "skipped",
                "tag": run.planned.tag,
                "reason": run.error or run.planned.skip_reason,
            }
            if run.dry_run is not None:
                entry["command"] = run.dry_run.command
                entry["dockerfile"] = run.dry_run.dockerfile
            cells.append(entry)
        print(json.dumps({"backend": backend, "cells": cells}, indent=2))
        return 0
    print(f"# backend: {backend}")
    for run in runs:
        if run.error is not None:
            print(f"# {run.planned.cell.key}: would fail: {run.error}")
        elif run.dry_run is None:
            print(f"# {run.planned.cell.key}: skipped: {run.planned.skip_reason}")
        else:
            print(f"# {run.planned.cell.key}")
            print(run.dry_run.command)
    return 0


COMMAND = Command(
    name="matrix",
    help="build one image per platform x python x distro x cuda cell",
    description=DESCRIPTION,
    configure=_configure,
    run=_run,
    usage="%(prog)s BENTO [options]",
)
