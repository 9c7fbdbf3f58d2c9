"""``python -m pipeline build BENTO``: render a bento's Dockerfile and build it on an engine."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from pipeline import api
from pipeline.backends.registry import AUTO_ORDER, ENV_VARS
from pipeline.buildplan import BuildPlan
from pipeline.cli._buildopts import add_build_option, add_engine_flags, build_options
from pipeline.cli.command import Command
from pipeline.errors import ConfigError, PipelineWarning
from pipeline.graph import StageGraph, default_graph
from pipeline.options import OPTIONS
from pipeline.request import BuildResult
from pipeline.stepheaders import step_line

RESULT_FORMATS = ("json", "text")

DESCRIPTION = f"""\
Build a bento into a container image. `containerize` is the same command under BentoML's
name, and BentoML's containerize flags are options here (docs/build.md has the table).

BENTO is a bento directory (with bento.yaml), a project directory (with bentofile.yaml; built
into the store first) or a store tag (name[:version|latest]).

The backend is --backend, else ${ENV_VARS[0]} or ${ENV_VARS[1]}, else the first healthy engine
of {", ".join(AUTO_ORDER)}. DOCKER_BUILDKIT=0 selects docker's classic builder (no secrets, no
cache mounts). 'dagger' builds through a Dagger engine.

examples:
  python -m pipeline build examples/hello
  python -m pipeline build examples/hello --backend podman -t hello:dev
  python -m pipeline build my_service:latest --platform linux/amd64,linux/arm64 --push \\
      -t 127.0.0.1:5000/my-service:1
  python -m pipeline build ./project --secret id=aws,src=$HOME/.aws/credentials
  python -m pipeline build ./project --ca-cert corp-root.pem       # TLS-intercepting proxy
  python -m pipeline build examples/hello --dry-run                # argv + Dockerfile only
  python -m pipeline build examples/hello --output json            # machine-readable result
  python -m pipeline build examples/hello -q --iidfile iid.txt     # stdout: the image id only
"""


class _Deprecated(argparse.Action):
    """An old spelling: still works (appending, or a flag with nargs=0), with a warning."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.replacement = kwargs.pop("replacement")
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        # Warned when the command runs: parsing happens before the CLI shows PipelineWarnings.
        notes = list(getattr(namespace, "_deprecated", None) or [])
        notes.append(f"{option_string} is deprecated; use {self.replacement}")
        namespace._deprecated = notes
        if self.nargs == 0:  # a flag
            setattr(namespace, self.dest, True)
        else:  # every old spelling with a value was a repeatable option
            current = list(getattr(namespace, self.dest, None) or [])
            setattr(namespace, self.dest, [*current, values])


def _configure(parser: argparse.ArgumentParser) -> None:
    configure_build(parser, command="build")


def configure_build(parser: argparse.ArgumentParser, *, command: str) -> None:
    """The options of ``build`` (and ``containerize``); ``plan`` has them but ``--dry-run``
    and ``--plan``, which it is and cannot take."""
    parser.add_argument("bento", metavar="BENTO", help="bento directory, project directory or tag")
    parser.add_argument("--backend", metavar="NAME", help="engine to build with (see `backends`)")
    parser.add_argument(
        "-t",
        "--tag",
        "--image-tag",
        "--docker-image-tag",
        action="append",
        dest="tags",
        metavar="NAME[:TAG]",
        help="image tag (repeatable; default <bento name>:<version>, lowercased); "
        "--image-tag and --docker-image-tag are BentoML's spellings",
    )
    parser.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        metavar="OS/ARCH[,...]",
        help="target platform(s), comma-separated or repeated, e.g. linux/amd64,linux/arm64",
    )
    add_build_option(parser, "secret")
    add_build_option(parser, "build-arg", help="build-time variable (repeatable)")
    add_build_option(parser, "target")
    add_build_option(parser, "cache-from", help="external cache source (repeatable)")
    add_build_option(parser, "cache-to")
    add_build_option(
        parser,
        "progress",
        help="auto: one line per step; plain: all engine output; tty: the engine's own "
        "terminal display (plain when stderr is not a terminal); quiet: only the result",
    )
    add_build_option(parser, "push", help="push the tags after building")
    add_build_option(parser, "load", help="load the image into the local store")
    parser.add_argument(
        "-o",
        "--output",
        metavar="json|text|DEST",
        help="'json' prints the result as JSON on stdout; any other value is the engine's "
        "output destination, e.g. type=local,dest=out or type=oci,dest=image.tar",
    )
    add_build_option(parser, "label")
    add_build_option(parser, "no-cache")
    add_build_option(
        parser,
        "ca-cert",
        help="extra CA certificate (PEM) trusted by pip/uv/curl/apt during the build, through "
        "a secret mount; never copied into the image",
    )
    add_build_option(
        parser,
        "opt",
        metavar="KEY=VALUE|KEY:VALUE|KEY",
        help="backend pass-through option, becomes --KEY VALUE (repeatable; KEY alone is a flag)",
    )
    add_build_option(parser, "quiet")
    add_build_option(parser, "check-secrets")
    add_build_option(parser, "enable-features")
    add_build_option(parser, "template")
    add_build_option(
        parser,
        "buildstage",
        help="make the venv in a build stage and copy it into the image (default); "
        "--no-buildstage keeps the single-stage layout (docs/graph.md)",
    )
    if command == "plan":
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="skip the engine checks (installed and healthy, its platforms, secrets, "
            "push): plan for an engine this machine does not have",
        )
        parser.set_defaults(dry_run=True, plan=None)
    else:
        _add_plan_flags(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout (same as --output json)",
    )
    _add_bentoml_flags(parser)


def _add_plan_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the build plan (the engine commands, the Dockerfile, the context, ...) "
        "after every check a real build makes; build and store nothing (same as `plan`)",
    )
    parser.add_argument(
        "--plan",
        metavar="FILE",
        help="build exactly the plan in FILE (`plan BENTO -o json > FILE`), after checking "
        "that its bento, context files and engine commands are unchanged; BENTO is then '-' "
        "and the other build options are not allowed",
    )


def _add_bentoml_flags(parser: argparse.ArgumentParser) -> None:
    bentoml = parser.add_argument_group(
        "BentoML containerize options (an engine without one refuses it)"
    )
    for name in ("network", "pull", "ssh", "add-host", "iidfile", "metadata-file", "run-as-root"):
        add_build_option(bentoml, name)
    add_engine_flags(
        parser.add_argument_group(
            "BentoML's buildx options, passed to the engine as --opt KEY=VALUE"
        )
    )
    # Deprecated spellings (BentoML / older releases), accepted with a warning.
    for old, dest, new in (
        ("--platforms", "platforms", "--platform"),
        ("--secrets", "secrets", "--secret"),
        ("--build-args", "build_args", "--build-arg"),
        ("--labels", "labels", "--label"),
        ("--backend-opt", "opts", "--opt"),
    ):
        parser.add_argument(old, dest=dest, action=_Deprecated, replacement=new)
    parser.add_argument(
        "--no-buildkit-cache",
        dest="no_cache",
        action=_Deprecated,
        nargs=0,
        replacement="--no-cache",
    )


class ProgressDisplay:
    """Engine output on stderr: everything (plain), step headers only (auto) or nothing."""

    def __init__(self, mode: str, stream: TextIO = sys.stderr) -> None:
        self.mode = mode
        self.stream = stream
        self._seen: set[str] = set()

    def __call__(self, line: str) -> None:
        if self.mode == "quiet":
            return
        if self.mode in ("plain", "tty"):
            print(line, file=self.stream, flush=True)
            return
        step = step_line(line)
        if step is not None and step not in self._seen:
            self._seen.add(step)
            print(f"  {step}", file=self.stream, flush=True)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    output = args.output
    if output in RESULT_FORMATS:
        output = None
    return {
        "tags": args.tags,
        "platforms": args.platforms,
        **build_options(args),
        "output": output,
    }


def run_build(args: argparse.Namespace) -> int:
    """``build``, ``containerize`` and ``plan``."""
    if not args.quiet:
        return _build(args)
    with warnings.catch_warnings():  # -q: no warnings either, as BentoML's -q
        warnings.simplefilter("ignore", PipelineWarning)
        return _build(args)


def _build(args: argparse.Namespace) -> int:
    for note in getattr(args, "_deprecated", None) or ():
        warnings.warn(note, PipelineWarning, stacklevel=2)
    as_json = args.json or args.output == "json"
    if getattr(args, "plan", None):
        return _build_plan(args, as_json)
    options = _options(args)
    graph = default_graph(buildstage=args.buildstage)
    if args.dry_run:
        planned = api.plan(
            args.bento,
            backend=args.backend,
            template=args.template,
            graph=graph,
            check=not getattr(args, "no_check", False),
            **options,
        )
        print_plan(planned, as_json)
        return 0

    if args.quiet and as_json:
        raise ConfigError("--quiet and --output json exclude each other", field="--quiet")
    # -q: stdout is the image id only and stderr gets no progress; -o json: stdout is the
    # result only, progress stays on stderr
    display = ProgressDisplay("quiet" if args.quiet else args.progress)
    return _run_build(args, as_json, display, options, graph)


def print_plan(planned: BuildPlan, as_json: bool) -> None:
    if as_json:
        print(json.dumps(planned.to_json(), indent=2))
    else:
        print(planned.to_text(), end="")


# options a plan fixes: with --plan FILE, giving one is an error (their defaults are allowed);
# --progress, -q and -o json only change how the build is shown
_PLAN_FIXED = (
    *(o.name for o in OPTIONS if o.name not in ("progress", "quiet", "output")),
    "template",
    "backend",
)


def _build_plan(args: argparse.Namespace, as_json: bool) -> int:
    given = [name for name in _PLAN_FIXED if getattr(args, name, None) not in (None, False, [])]
    if args.output not in (None, *RESULT_FORMATS):
        given.append("output")
    if not args.buildstage:
        given.append("buildstage")
    if args.bento != "-" or given or args.dry_run:
        what = ", ".join(f"--{n.replace('_', '-')}" for n in given) or (
            "--dry-run" if args.dry_run else f"BENTO {args.bento!r}"
        )
        raise ConfigError(
            f"--plan FILE builds what the plan says: {what} cannot be given with it",
            field="--plan",
            hint="pass BENTO as '-' and only --progress, --quiet or --output json; to change "
            "the build, make a new plan",
        )
    file = Path(args.plan)
    planned = api.load_plan(file)
    if args.quiet and as_json:
        raise ConfigError("--quiet and --output json exclude each other", field="--quiet")
    display = ProgressDisplay("quiet" if args.quiet else args.progress)
    run_hint: list[str] = []
    result = anyio.run(
        functools.partial(
            api.abuild_plan,
            planned,
            on_output=display,
            on_prepared=_announce(args, run_hint),
            file=file,
        )
    )
    _report(args, as_json, result, run_hint)
    return 0


def _announce(args: argparse.Namespace, run_hint: list[str]) -> Callable[[api.PreparedBuild], None]:
    def on_prepared(prepared: api.PreparedBuild) -> None:
        executor = prepared.selection.executor
        if command := executor.run_hint(prepared.tags[0]):
            run_hint.append(command)
        if not args.quiet and args.progress != "quiet":
            print(
                f"building {prepared.bento.tag} as {', '.join(prepared.tags)} with "
                f"{prepared.selection.name} ({prepared.selection.source})",
                file=sys.stderr,
            )

    return on_prepared


def _report(
    args: argparse.Namespace, as_json: bool, result: BuildResult, run_hint: list[str]
) -> None:
    if as_json:
        payload = result.to_json()
        if run_hint:
            payload["run"] = run_hint[0]
        print(json.dumps(payload, indent=2))
    elif args.quiet:
        _print_image_id(result)
    else:
        print(_summary(result, run_hint[0] if run_hint else None, args))


def _run_build(
    args: argparse.Namespace,
    as_json: bool,
    display: ProgressDisplay,
    options: dict[str, Any],
    graph: StageGraph,
) -> int:
    run_hint: list[str] = []
    result = anyio.run(
        functools.partial(
            api.abuild,
            args.bento,
            backend=args.backend,
            template=args.template,
            graph=graph,
            on_output=display,
            on_prepared=_announce(args, run_hint),
            **options,
        )
    )
    _report(args, as_json, result, run_hint)
    return 0


def _print_image_id(result: BuildResult) -> None:
    """--quiet: the image id alone on stdout (the pushed digest when there is no local image)."""
    image = result.image_id or result.digest
    if image:
        print(image)
    else:
        print(
            f"warning: {result.backend} reported no image id "
            "(buildctl keeps its image in buildkitd; --output writes files)",
            file=sys.stderr,
        )


def _summary(result: BuildResult, run_hint: str | None, args: argparse.Namespace) -> str:
    tag = result.tags[0] if result.tags else "(untagged)"
    what = "pushed" if args.push else "built"
    text = f"{what} {tag} with {result.backend} in {result.duration:.1f}s"
    if args.output and args.output not in RESULT_FORMATS:
        return f"{text}; exported to {args.output}"
    if run_hint and not args.push:
        text += f"; run it: {run_hint}"
    return text


COMMAND = Command(
    name="build",
    help="build a bento into a container image on docker, buildx, podman, buildah, ...",
    description=DESCRIPTION,
    configure=_configure,
    run=run_build,
    usage="%(prog)s BENTO [options]",
)
