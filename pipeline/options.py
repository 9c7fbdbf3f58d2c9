"""The build options, each declared once: name, kind, default, CLI spellings, help, and which
engines have it.

Everything else is derived from :data:`OPTIONS` or checked against it (``tests/test_options.py``):
the CLI flags of ``build``/``containerize``/``plan``/``matrix`` (:mod:`pipeline.cli._buildopts`),
the engine support table and its error messages (:mod:`pipeline.backends.support`), the keyword
options a registered backend's ``construct_build_args`` receives
(:func:`pipeline.backends.registry.request_options`); the API's keywords, ``BuildOptions`` and
``BuildRequest`` fields and the Dagger module's functions must use these names.

Pure: no imports from the rest of the package.
"""

from __future__ import annotations

from typing import Literal

from attrs import frozen

Kind = Literal["flag", "value", "list", "map", "file"]
#: where a build plan (:class:`pipeline.buildplan.BuildPlan`) records an option: a section of
#: its own (``outputs``, ``cache``, ``engine``); None: a field of the plan itself (tags,
#: platforms, ...) or not recorded as given (``ca_cert`` becomes a secret)
PlanSection = Literal["outputs", "cache", "engine"]
#: every engine built in (in the order messages list them), for :attr:`Option.engines`
ENGINE_ORDER: tuple[str, ...] = (
    "docker", "buildx", "podman", "buildah", "nerdctl", "buildctl", "dagger"
)  # fmt: skip
ENGINES: frozenset[str] = frozenset(ENGINE_ORDER)
PROGRESS_MODES: tuple[str, ...] = ("auto", "plain", "tty", "quiet")


@frozen
class Option:
    """One build option.

    ``name`` is the Python API keyword, the ``BuildOptions`` field and (unless ``request`` is
    False) the ``BuildRequest`` field. ``flags`` are its CLI spellings, the first long one the
    one messages use; ``kind`` says how it is given (``flag``: on/off; ``value``: one value;
    ``list``: repeatable; ``map``: repeatable ``KEY=VALUE``; ``file``: a path). ``plugin`` is
    the keyword a registered backend's ``construct_build_args`` gets it as (BentoML's
    spelling; None: not passed). ``engines`` are the engines that have it (None: every one;
    a registered backend decides itself). ``plan`` is the build plan's section that records
    it (see :data:`PlanSection`).
    """

    name: str
    flags: tuple[str, ...]
    kind: Kind
    help: str
    metavar: str | None = None
    default: object = None
    request: bool = True
    plugin: str | None = None
    engines: frozenset[str] | None = None
    choices: tuple[str, ...] | None = None
    plan: PlanSection | None = None

    @property
    def flag(self) -> str:
        """The spelling messages use: the first long one."""
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def dest(self) -> str:
        """The argparse destination (the API keyword)."""
        return self.name


_NO_ADD_HOST = ENGINES - {"nerdctl", "dagger"}  # nerdctl build has no --add-host
# Dagger's dockerBuild takes none of network/pull/add-host; --ssh and sudo are not wired
_NOT_DAGGER = ENGINES - {"dagger"}

OPTIONS: tuple[Option, ...] = (
    Option("tags", ("-t", "--tag", "--image-tag", "--docker-image-tag"), "list",
           "image tag (repeatable; default <bento name>:<version>, lowercased); --image-tag and "
           "--docker-image-tag are BentoML's spellings", "NAME[:TAG]", plugin="tag"),
    Option("platforms", ("--platform",), "list",
           "target platform(s), comma-separated or repeated, e.g. linux/amd64,linux/arm64",
           "OS/ARCH[,...]", plugin="platform"),
    Option("secrets", ("--secret",), "list",
           "build secret mounted at /run/secrets/X during RUN; never stored in the image",
           "id=X,src=FILE|id=X,env=VAR", plugin="secret"),
    Option("build_args", ("--build-arg",), "map", "build-time variable (repeatable)",
           "KEY=VALUE", plugin="build_arg"),
    Option("target", ("--target",), "value", "build up to this stage", "STAGE",
           plugin="target"),
    Option("cache_from", ("--cache-from",), "list", "external cache source (repeatable)",
           "REF|type=...", plugin="cache_from", plan="cache"),
    Option("cache_to", ("--cache-to",), "list", "cache export destination (repeatable)",
           "REF|type=...", plugin="cache_to", plan="cache"),
    Option("progress", ("--progress",), "value",
           "auto: one line per step; plain: all engine output; tty: the engine's own terminal "
           "display (plain when stderr is not a terminal); quiet: only the result",
           default="auto", plugin="progress", choices=PROGRESS_MODES, plan="engine"),
    Option("push", ("--push",), "flag", "push the tags after building", plugin="push",
           plan="outputs"),
    Option("load", ("--load",), "flag", "load the image into the local store", plugin="load",
           plan="outputs"),
    Option("output", ("-o", "--output"), "value",
           "the engine's output destination, e.g. type=local,dest=out or type=oci,dest=image.tar",
           "DEST", plugin="output", plan="outputs"),
    Option("labels", ("--label",), "map", "image label (repeatable)", "KEY=VALUE",
           plugin="label"),
    Option("no_cache", ("--no-cache",), "flag", "do not use the build cache",
           plugin="no_cache", plan="cache"),
    Option("ca_cert", ("--ca-cert",), "file",
           "extra CA certificate (PEM) trusted by pip/uv/curl/apt during the build, through a "
           "secret mount; never copied into the image", "FILE", request=False),
    Option("opts", ("--opt",), "list",
           "backend pass-through option, becomes --KEY VALUE (repeatable; KEY alone is a flag)",
           "KEY=VALUE|KEY:VALUE|KEY", plan="engine"),
    # BentoML's containerize flags, same names and meanings
    Option("network", ("--network",), "value",
           "networking mode of the RUN steps (default, host, none, ...)", "MODE",
           plugin="network", engines=_NOT_DAGGER, plan="engine"),
    Option("pull", ("--pull",), "flag", "always pull the base images, even when present",
           plugin="pull", engines=_NOT_DAGGER, plan="engine"),
    Option("ssh", ("--ssh",), "list",
           "SSH agent socket or keys for RUN --mount=type=ssh (repeatable)",
           "default|ID[=SOCKET|KEY[,KEY]]", plugin="ssh", engines=_NOT_DAGGER, plan="engine"),
    Option("add_hosts", ("--add-host",), "list",
           "extra /etc/hosts entry during the build (repeatable)", "HOST:IP",
           plugin="add_host", engines=_NO_ADD_HOST, plan="engine"),
    Option("iidfile", ("--iidfile",), "file", "write the image id to FILE", "FILE",
           plugin="iidfile", plan="outputs"),
    Option("metadata_file", ("--metadata-file",), "file",
           "write the engine's build metadata (JSON) to FILE", "FILE", plugin="metadata_file",
           plan="outputs"),
    Option("quiet", ("-q", "--quiet"), "flag",
           "print only the image id on stdout, nothing on stderr", plugin="quiet", plan="engine"),
    Option("run_as_root", ("--run-as-root",), "flag", "run the engine command with sudo",
           engines=_NOT_DAGGER, plan="engine"),
    Option("features", ("--enable-features",), "list",
           "install these bentoml extras, e.g. grpc,tracing (repeatable)", "FEATURE[,FEATURE]",
           request=False, plan="engine"),
    Option("check_secrets", ("--check-secrets",), "flag",
           "after building, scan every layer, the config and the history of the image for the "
           "bytes of each --secret and build-stage env; fail (exit 1, image removed) when one "
           "is found", plan="engine"),
)  # fmt: skip

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


def option(name: str) -> Option:
    return BY_NAME[name]


def plan_section(section: PlanSection) -> tuple[Option, ...]:
    """The options a build plan records in ``section``, in declaration order."""
    return tuple(o for o in OPTIONS if o.plan == section)


def engine_limited() -> tuple[Option, ...]:
    """The options only some engines have (checked before a build: :mod:`support`)."""
    return tuple(o for o in OPTIONS if o.engines is not None)


def supported_by(engine: str) -> frozenset[str]:
    """The engine-limited options ``engine`` has."""
    return frozenset(o.name for o in engine_limited() if o.engines and engine in o.engines)


__all__ = [
    "ENGINES",
    "OPTIONS",
    "PROGRESS_MODES",
    "Option",
    "option",
    "plan_section",
    "supported_by",
]
