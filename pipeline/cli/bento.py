"""``python -m pipeline bento``: build bentos from projects, list the store, show one bento."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from pipeline._fs import kind_of, user_path
from pipeline.bento import (
    BENTO_YAML,
    BENTOFILE,
    bento_to_dict,
    build_bento,
    get_bento,
    list_bentos,
    store_home,
)
from pipeline.cli import Command
from pipeline.config import Bento
from pipeline.errors import BentoNotFoundError
from pipeline.loader import load_bento_yaml
from pipeline.requirements import BENTOML_VERSION_ENV, DEFAULT_BENTOML_VERSION

DESCRIPTION = """\
Work with bentos and the BentoML-compatible store ($BENTOML_HOME, default ~/bentoml; bentos live
in $BENTOML_HOME/bentos/<name>/<version>/ with a 'latest' file per name).

A bento can be named by a tag (name, name:latest, name:version) or by the path of a bento
directory (one with bento.yaml, src/ and env/).

examples:
  python -m pipeline bento build ./my-project            # prints the new tag
  python -m pipeline bento build ./my-project --version v1
  python -m pipeline bento list --output json
  python -m pipeline bento get my_service -o path
  python -m pipeline bento get my_service:v1 -o json
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bento_command", metavar="SUBCOMMAND", title="subcommands")
    sub.required = True

    build = sub.add_parser(
        "build",
        help="build a project directory (with bentofile.yaml) into the store; prints the tag",
        description=(
            f"Build DIR/{BENTOFILE} into a bento in the store and print its tag on stdout.\n"
            "Files are selected with include/exclude and .bentoignore (gitignore syntax); the "
            "build is all-or-nothing. As with `bentoml build`: the service module must be among "
            "the files, bentoml==VERSION is added when the service imports bentoml, and the "
            "requirements are locked with uv into env/python/requirements.txt "
            "(python.lock_packages: false keeps them as given; requirements.in keeps the input)."
        ),
    )
    build.add_argument("dir", metavar="DIR", help=f"project directory containing {BENTOFILE}")
    build.add_argument(
        "--version",
        metavar="V",
        help="version to give the bento (default: a new generated id, e.g. agrb2zof36qybpwe)",
    )
    build.add_argument(
        "--bentoml-version",
        metavar="V",
        help=f"bentoml version to pin when the service needs it (default: ${BENTOML_VERSION_ENV}, "
        f"else the bentoml installed beside this tool, else {DEFAULT_BENTOML_VERSION})",
    )
    build.set_defaults(_bento_run=_run_build, _parser=build)

    lister = sub.add_parser(
        "list",
        help="list the bentos in the store",
        description="List every bento in the store, by name, newest first.",
    )
    lister.add_argument(
        "--output",
        "-o",
        choices=("table", "json"),
        default="table",
        help="table for people (default) or json for programs",
    )
    lister.set_defaults(_bento_run=_run_list, _parser=lister)

    get = sub.add_parser(
        "get",
        help="show one bento: its path, or its metadata as yaml/json",
        description="Show one bento, named by tag or by the path of a bento directory.",
    )
    get.add_argument("tag", metavar="TAG", help="name, name:latest, name:version or a bento dir")
    get.add_argument(
        "--output",
        "-o",
        choices=("path", "yaml", "json"),
        default="yaml",
        help="path: the bento directory; yaml/json: its loaded metadata (default: yaml)",
    )
    get.set_defaults(_bento_run=_run_get, _parser=get)
    _add_debug(build, lister, get)


def _add_debug(*parsers: argparse.ArgumentParser) -> None:
    # `--debug` after the subcommand too (`bento build --debug DIR`), like every command.
    for parser in parsers:
        parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for errors",
        )


def _run(args: argparse.Namespace) -> int:
    return int(args._bento_run(args))


def _run_build(args: argparse.Namespace) -> int:
    bento = build_bento(Path(args.dir), version=args.version, bentoml_version=args.bentoml_version)
    print(f"built {bento.tag} in {bento.path}", file=sys.stderr)
    print(bento.tag)
    return 0


def _run_list(args: argparse.Namespace) -> int:
    bentos = list_bentos()
    if args.output == "json":
        rows = [
            {
                "tag": b.tag,
                "name": b.name,
                "version": b.version,
                "path": str(b.path),
                "creation_time": b.creation_time.isoformat() if b.creation_time else None,
                "service": b.service,
            }
            for b in bentos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not bentos:
        print(f"no bentos in {store_home() / 'bentos'}", file=sys.stderr)
        return 0
    width = max(len("TAG"), *(len(b.tag) for b in bentos))
    print(f"{'TAG':<{width}}  {'CREATED':<25}  SERVICE")
    for b in bentos:
        created = b.creation_time.strftime("%Y-%m-%d %H:%M:%S %Z") if b.creation_time else "-"
        print(f"{b.tag:<{width}}  {created:<25}  {b.service}")
    return 0


def _find(ref: str) -> Bento:
    path = user_path(ref, field="bento")
    if kind_of(path) == "dir":
        if (path / BENTO_YAML).is_file():
            return load_bento_yaml(path / BENTO_YAML)
        raise BentoNotFoundError(
            f"{path} is not a bento directory (no {BENTO_YAML})",
            hint="build a project first: python -m pipeline bento build DIR",
        )
    return get_bento(ref)


def _run_get(args: argparse.Namespace) -> int:
    bento = _find(args.tag)
    if args.output == "path":
        print(bento.path)
    elif args.output == "json":
        print(json.dumps(bento_to_dict(bento), indent=2))
    else:
        print(yaml.safe_dump(bento_to_dict(bento), sort_keys=False), end="")
    return 0


COMMAND = Command(
    name="bento",
    help="build bentos from projects, list the store, show a bento",
    description=DESCRIPTION,
    configure=_configure,
    run=_run,
)
