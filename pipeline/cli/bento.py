"""``python -m pipeline bento``: build bentos from projects, list the store, show one bento,
delete versions and prune old ones."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from pipeline.bento import bento_to_dict
from pipeline.bentobuild import build_bento
from pipeline.cli.command import Command, add_json_flag
from pipeline.config import Bento
from pipeline.errors import BentoNotFoundError, ConfigError
from pipeline.loader import load_bento_yaml
from pipeline.paths import kind_of, user_path
from pipeline.projectfiles import BENTOFILE
from pipeline.prune import (
    LEFTOVER_AGE,
    Removed,
    check_keep,
    delete_bento,
    locate_bento,
    prune_bentos,
)
from pipeline.requirements import BENTOML_VERSION_ENV, DEFAULT_BENTOML_VERSION
from pipeline.store import (
    BENTO_YAML,
    get_bento,
    list_bentos,
    looks_like_path,
    parse_tag,
    store_home,
)

DESCRIPTION = """\
Work with bentos and the BentoML-compatible store ($BENTOML_HOME, default ~/bentoml; bentos live
in $BENTOML_HOME/bentos/<name>/<version>/ with a 'latest' file per name).

A bento can be named by a tag (name, name:latest, name:version) or by the path of a bento
directory (one with bento.yaml, src/ and env/).

Without --version a build's version is a digest of the bento's content: building an unchanged
project again stores nothing new and prints the same tag.

examples:
  python -m pipeline bento build ./my-project            # prints the tag
  python -m pipeline bento build ./my-project --version v1
  python -m pipeline bento list --output json
  python -m pipeline bento get my_service -o path
  python -m pipeline bento get my_service:v1 -o json
  python -m pipeline bento delete my_service:v1          # one version
  python -m pipeline bento prune --keep 3 --dry-run      # what keeping 3 per name would remove
"""

DELETE_DESCRIPTION = """\
Delete bento versions from the store. Every TAG is looked up first: when one is unknown,
nothing is deleted. A version is renamed out of sight before its files are removed, so a
half-deleted bento is never seen as one. When 'latest' named a deleted version it moves to the
newest remaining one (by creation_time); deleting a name's last version removes the name.

TAG is name:version; name or name:latest deletes the latest version only. A path (one with a
'/') must be a bentos/<name>/<version> directory of the store: other directories are never
deleted.

examples:
  python -m pipeline bento delete summarize:v1
  python -m pipeline bento delete summarize:v1 summarize:v2
  python -m pipeline bento delete summarize               # its latest version only
  python -m pipeline bento delete ~/bentoml/bentos/summarize/v1
"""

PRUNE_DESCRIPTION = f"""\
Delete old bento versions: per name (every name, or the NAMEs given) keep the latest version
and the N-1 next newest (by creation_time), delete the rest. Also removes what interrupted
builds and deletes left in the store (.tmp-* entries unchanged for {LEFTOVER_AGE / 3600:g} hour
and held by no build). Prints one line per removed version on stdout and a summary on stderr.

examples:
  python -m pipeline bento prune                          # keep the latest of every name
  python -m pipeline bento prune --keep 3 summarize       # keep summarize's 3 newest
  python -m pipeline bento prune --dry-run                # list what would go, remove nothing
  python -m pipeline bento prune -o json
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
        help="version to give the bento; an error if it exists (default: a digest of the "
        "bento's content, e.g. agrb2zof36qybpwe: an unchanged project keeps its version)",
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

    delete = sub.add_parser(
        "delete",
        help="delete bento versions from the store",
        description=DELETE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    delete.add_argument(
        "tags",
        nargs="+",
        metavar="TAG",
        help="name:version; name or name:latest (the latest version only); or a bento "
        "directory inside the store",
    )
    delete.set_defaults(_bento_run=_run_delete, _parser=delete)

    prune = sub.add_parser(
        "prune",
        help="delete all but the newest versions of each bento, and leftovers of interrupted "
        "builds",
        description=PRUNE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument("names", nargs="*", metavar="NAME", help="bento names (default: all)")
    prune.add_argument(
        "--keep",
        type=_keep_count,
        default=1,
        metavar="N",
        help="versions to keep per name, the latest included (default: 1)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="list what would be removed; remove nothing"
    )
    prune.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or json for programs (a list of what was removed)",
    )
    prune.set_defaults(_bento_run=_run_prune, _parser=prune)
    add_json_flag(lister, get, prune)
    _add_debug(build, lister, get, delete, prune)


def _keep_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of versions to keep"
        ) from None
    try:
        return check_keep(count, field="--keep")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


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
    started = datetime.now(timezone.utc)
    bento = build_bento(Path(args.dir), version=args.version, bentoml_version=args.bentoml_version)
    created = bento.creation_time
    if created is not None and created.tzinfo is not None and created < started:
        print(f"unchanged: {bento.tag} is already in the store ({bento.path})", file=sys.stderr)
    else:
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


def _run_delete(args: argparse.Namespace) -> int:
    # every tag is found before anything is deleted: a typo in the third deletes nothing
    targets: dict[Path, str] = {}
    for ref in args.tags:
        targets.setdefault(locate_bento(ref), ref)
    for path, ref in targets.items():
        tag = f"{path.parent.name}:{path.name}"
        if not looks_like_path(ref) and parse_tag(ref)[1] is None:
            print(f"{ref} names the latest version: deleting {tag} only", file=sys.stderr)
        delete_bento(path)
        print(f"deleted {tag}")
    return 0


def _run_prune(args: argparse.Namespace) -> int:
    removed = prune_bentos(keep=args.keep, dry_run=args.dry_run, names=args.names)
    if args.output == "json":
        print(json.dumps([_removed_row(r, args.dry_run) for r in removed], indent=2))
    else:
        verb = "would " if args.dry_run else ""
        for item in removed:
            if item.tag is not None:
                print(f"{verb}{'delete' if verb else 'deleted'} {item.tag} ({_size(item.size)})")
            else:
                what = "remove" if verb else "removed"
                print(f"{verb}{what} leftover {item.path} ({_size(item.size)})")
    print(_prune_summary(removed, args.dry_run), file=sys.stderr)
    return 0


def _removed_row(item: Removed, dry_run: bool) -> dict[str, object]:
    return {
        "kind": "version" if item.tag is not None else "leftover",
        "tag": item.tag,
        "name": item.name,
        "version": item.version,
        "path": str(item.path),
        "size": item.size,
        "removed": not dry_run,
    }


def _prune_summary(removed: list[Removed], dry_run: bool) -> str:
    if not removed:
        return f"nothing to prune in {store_home() / 'bentos'}"
    versions = sum(1 for r in removed if r.tag is not None)
    leftovers = len(removed) - versions
    parts = [_count(versions, "version")] if versions else []
    if leftovers:
        parts.append(_count(leftovers, "leftover"))
    what, size = " and ".join(parts), _size(sum(r.size for r in removed))
    if dry_run:
        return f"would prune {what} ({size}); nothing was removed (--dry-run)"
    return f"pruned {what}, {size} freed"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _size(count: int) -> str:
    """Bytes for people: ``512 B``, ``1.5 KiB``, ``12.3 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


COMMAND = Command(
    name="bento",
    help="build bentos from projects; list, show, delete and prune the store",
    description=DESCRIPTION,
    configure=_configure,
    run=_run,
)
