"""The Python API: build a bento into an image on any backend.

``build(...)`` is a thin sync wrapper over the async :func:`abuild`; the CLI (``python -m
pipeline build``) calls the same functions, so both validate alike. The flow::

    resolve_bento -> render_dockerfile -> temporary_context -> BuildRequest -> executor.build

Every bad input raises a :class:`~pipeline.errors.PipelineError` subclass (naming the option
and what is allowed) before anything is built or written.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.to_thread
from attrs import evolve, field, frozen
from attrs import fields as attrs_fields

from pipeline.backends.base import normalize_platform
from pipeline.backends.registry import Selection, select_backend
from pipeline.bento import build_file, get_bento, looks_like_path, resolve_bento
from pipeline.bentoml_keywords import to_our_keywords
from pipeline.buildplan import (
    BuildInputs,
    BuildPlan,
    PlannedBento,
    PlannedInstruction,
    PlannedSecret,
    context_manifest,
    manifest_changes,
    private_source,
)
from pipeline.cacert import ca_bundle_secret, check_ca_cert
from pipeline.config import Bento
from pipeline.context import build_env_secrets, temporary_context
from pipeline.dockerfile import Instruction, Origin, parse_dockerfile
from pipeline.errors import BuildError, ConfigError, PipelineError, allowed
from pipeline.executor import OutputSink, plan_commands
from pipeline.graph import StageGraph
from pipeline.labels import BENTO_TAG_LABEL as BENTO_TAG_LABEL
from pipeline.labels import image_labels as image_labels
from pipeline.labels import public_url as public_url
from pipeline.loader import load_bentofile
from pipeline.options import OPTIONS, PlanSection, plan_section
from pipeline.origins import find_step, instruction_origins
from pipeline.paths import user_path
from pipeline.rendering import RenderOptions, render_dockerfile
from pipeline.request import (
    CA_CERT_SECRET_ID,
    PROGRESS_MODES,
    BuildRequest,
    BuildResult,
    SecretSpec,
)

_BUILD_ARG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_OPT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# docker reference: lowercase path components, optional registry host[:port], optional tag
_TAG = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
)


Options = Mapping[str, "str | None | bool"]


@frozen
class BuildOptions:
    """Validated, typed build options (everything except the bento and the backend)."""

    tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    secrets: tuple[SecretSpec, ...] = ()
    build_args: Mapping[str, str] = field(factory=dict)
    target: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    progress: str = "auto"
    push: bool = False
    load: bool = False
    output: str | None = None
    labels: Mapping[str, str] = field(factory=dict)
    no_cache: bool = False
    ca_cert: Path | None = None
    opts: tuple[tuple[str, str | None], ...] = ()
    # BentoML's containerize flags (BuildRequest fields of the same names)
    network: str | None = None
    pull: bool = False
    ssh: tuple[str, ...] = ()
    add_hosts: tuple[str, ...] = ()
    iidfile: Path | None = None
    metadata_file: Path | None = None
    quiet: bool = False
    run_as_root: bool = False
    check_secrets: bool = False  # scan the built image for the secrets' bytes
    features: tuple[str, ...] = ()  # --enable-features: bentoml extras (RenderOptions.features)


# ---------------------------------------------------------------------------------------------
# Parsing and validation (pure, except that secret/CA files are checked to exist)


def parse_opt(text: str) -> tuple[str, str | None]:
    """``key=value`` / ``key:value`` / ``key`` (a flag) -> ``(key, value | None)``."""
    positions = [i for i in (text.find("="), text.find(":")) if i >= 0]
    if positions:
        cut = min(positions)
        key, value = text[:cut].strip(), text[cut + 1 :]
    else:
        key, value = text.strip(), None
    if not _OPT_KEY.match(key.lstrip("-")):
        raise ConfigError(
            f"malformed --opt {text!r}: expected key=value, key:value or key "
            "(key: letters, digits, '-' and '_')",
            field="--opt",
        )
    return key.lstrip("-"), value


def parse_key_values(
    items: Mapping[str, str] | Sequence[str] | None, *, option: str, key_pattern: re.Pattern[str]
) -> dict[str, str]:
    """``K=V`` strings (or a mapping) -> dict, with the option named in every error."""
    if items is None:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), str(v)) for k, v in items.items()]
    else:
        if isinstance(items, str):
            items = [items]
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ConfigError(f"malformed {option} {item!r}: expected KEY=VALUE", field=option)
            pairs.append((key.strip(), value))
    result = {}
    for key, value in pairs:
        if not key_pattern.match(key):
            raise ConfigError(
                f"malformed {option} key {key!r}: expected letters, digits and '_' "
                "(not starting with a digit)"
                if option == "--build-arg"
                else f"malformed {option} key {key!r}",
                field=option,
            )
        result[key] = value
    return result


def parse_platforms(values: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"linux/amd64,linux/arm64"`` or a list (of possibly comma-joined values)."""
    if not values:
        return ()
    if isinstance(values, str):
        values = [values]
    result: list[str] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                raise ConfigError(f"empty platform in {value!r}", field="--platform")
            plat = normalize_platform(item)
            if plat not in result:
                result.append(plat)
    return tuple(result)


def parse_secrets(values: Sequence[str | SecretSpec] | None) -> tuple[SecretSpec, ...]:
    secrets: list[SecretSpec] = []
    for value in values or ():
        secret = value if isinstance(value, SecretSpec) else SecretSpec.parse(value)
        secret.check()
        if any(s.id == secret.id for s in secrets):
            raise ConfigError(f"secret id {secret.id!r} given twice", field="--secret")
        secrets.append(secret)
    return tuple(secrets)


def parse_tags(values: str | Sequence[str] | None) -> tuple[str, ...]:
    if not values:
        return ()
    if isinstance(values, str):
        values = [values]
    tags = []
    for tag in values:
        if not _TAG.match(tag):
            hint = f" (did you mean {tag.lower()!r}?)" if _TAG.match(tag.lower()) else ""
            raise ConfigError(
                f"invalid image tag {tag!r}{hint}: expected [registry/]name[:tag] with a "
                "lowercase name",
                field="--tag",
            )
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def default_tag(bento: Bento) -> str:
    """``<bento name>:<version>``, lowercased (as BentoML tags images)."""
    return f"{bento.name}:{bento.version}".lower()


def _strings(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# Options that are first-class flags here but BentoML users pass as `--opt key=value`
# (BentoML's --help calls its flags "equivalent options" of these --opt forms).
_OPT_ALIASES = {
    "tag": "tags",
    "image-tag": "tags",
    "platform": "platforms",
    "secret": "secrets",
    "build-arg": "build_args",
    "label": "labels",
    "target": "target",
    "cache-from": "cache_from",
    "cache-to": "cache_to",
    "progress": "progress",
    "output": "output",
    "no-cache": "no_cache",
    "push": "push",
    "load": "load",
    "network": "network",
    "pull": "pull",
    "ssh": "ssh",
    "add-host": "add_hosts",
    # our executors write their own --iidfile/--metadata-file: the user's are request fields
    "iidfile": "iidfile",
    "metadata-file": "metadata_file",
    "quiet": "quiet",
}
_TRUE = ("", "1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# podman/buildah's --pull=POLICY values other than always/missing: passed to the engine as is
_PULL_ALWAYS = ("always", *_TRUE)
_PULL_DEFAULT = ("missing", *_FALSE)


def parse_options(**options: Any) -> BuildOptions:
    """Validate everything a build takes; the single place both the CLI and API go through.

    Takes our keywords (:func:`_parse_options`) and ``bentoml.container.build``'s names for them
    (:mod:`pipeline.bentoml_keywords`); anything else is a :class:`ConfigError` naming it."""
    return _parse_options(**to_our_keywords(options, _OPTION_NAMES, also=_CALL_KEYWORDS))


def _parse_options(
    *,
    tags: str | Sequence[str] | None = None,
    platforms: str | Sequence[str] | None = None,
    secrets: str | Sequence[str | SecretSpec] | None = None,
    build_args: Mapping[str, str] | Sequence[str] | None = None,
    target: str | None = None,
    cache_from: str | Sequence[str] | None = None,
    cache_to: str | Sequence[str] | None = None,
    progress: str = "auto",
    push: bool = False,
    load: bool = False,
    output: str | None = None,
    labels: Mapping[str, str] | Sequence[str] | None = None,
    no_cache: bool = False,
    ca_cert: str | Path | None = None,
    opts: Sequence[str | tuple[str, str | None]] | Mapping[str, str | None] | None = None,
    network: str | None = None,
    pull: bool | str = False,
    ssh: str | Sequence[str] | None = None,
    add_hosts: str | Sequence[str] | None = None,
    iidfile: str | Path | None = None,
    metadata_file: str | Path | None = None,
    quiet: bool = False,
    run_as_root: bool = False,
    features: str | Sequence[str] | None = None,
    check_secrets: bool = False,
) -> BuildOptions:
    raw_opts: list[tuple[str, str | None]] = []
    if isinstance(opts, Mapping):
        raw_opts = [(parse_opt(k)[0], None if v is None else str(v)) for k, v in opts.items()]
    else:
        for item in [opts] if isinstance(opts, str) else opts or ():
            raw_opts.append(_opt_item(item) if isinstance(item, tuple) else parse_opt(item))
    # repeatable options collect their --opt values; single-valued ones take the last
    lists: dict[str, list[Any]] = {
        "tags": list(_strings(tags)),
        "platforms": list(_strings(platforms)),
        "secrets": [secrets] if isinstance(secrets, str) else list(secrets or ()),
        "build_args": [],
        "labels": [],
        "cache_from": list(_strings(cache_from)),
        "cache_to": list(_strings(cache_to)),
        "ssh": list(_strings(ssh)),
        "add_hosts": list(_strings(add_hosts)),
    }
    values: dict[str, Any] = {
        "target": target,
        "progress": progress,
        "output": output,
        "network": network,
        "iidfile": iidfile,
        "metadata_file": metadata_file,
    }
    flags = {"no_cache": no_cache, "push": push, "load": load, "quiet": quiet}
    passthrough: list[tuple[str, str | None]] = []
    pull_value = _pull(pull, passthrough)
    for key, value in raw_opts:
        alias = _OPT_ALIASES.get(key.replace("_", "-"))
        if alias is None:
            passthrough.append((key, value))
        elif alias == "pull":
            pull_value = _pull(True if value is None else value, passthrough) or pull_value
        elif alias in flags:
            flags[alias] = flags[alias] or value is None or value.strip().lower() in _TRUE
        elif value is None:
            raise ConfigError(f"--opt {key} needs a value ({key}=VALUE)", field="--opt")
        elif alias in lists:
            lists[alias].append(value)
        else:
            values[alias] = value
    target, output, mode = values["target"], values["output"], values["progress"]
    no_cache, push, load = flags["no_cache"], flags["push"], flags["load"]
    if mode not in PROGRESS_MODES:
        raise ConfigError(
            f"unknown progress mode {mode!r}; allowed: {allowed(PROGRESS_MODES)}",
            field="--progress",
        )
    args = parse_key_values(build_args, option="--build-arg", key_pattern=_BUILD_ARG_KEY)
    args.update(
        parse_key_values(lists["build_args"], option="--build-arg", key_pattern=_BUILD_ARG_KEY)
    )
    label_map = parse_key_values(labels, option="--label", key_pattern=_LABEL_KEY)
    label_map.update(parse_key_values(lists["labels"], option="--label", key_pattern=_LABEL_KEY))
    if push and output:
        raise ConfigError("--push and --output exclude each other", field="--push")
    if push and load:
        raise ConfigError("--push and --load exclude each other", field="--push")
    cert = check_ca_cert(ca_cert) if ca_cert is not None else None
    parsed_secrets = parse_secrets(lists["secrets"])
    if cert is not None and any(s.id == CA_CERT_SECRET_ID for s in parsed_secrets):
        raise ConfigError(
            f"secret id {CA_CERT_SECRET_ID!r} is reserved for --ca-cert", field="--secret"
        )
    return BuildOptions(
        tags=parse_tags(lists["tags"]),
        platforms=parse_platforms(lists["platforms"]),
        secrets=parsed_secrets,
        build_args=args,
        target=target or None,
        cache_from=tuple(lists["cache_from"]),
        cache_to=tuple(lists["cache_to"]),
        progress=str(mode),
        push=push,
        load=load,
        output=output or None,
        labels=label_map,
        no_cache=no_cache,
        ca_cert=cert,
        opts=tuple(passthrough),
        network=_network(values["network"]),
        pull=pull_value,
        ssh=parse_ssh(lists["ssh"]),
        add_hosts=parse_add_hosts(lists["add_hosts"]),
        iidfile=_output_file(values["iidfile"], "--iidfile"),
        metadata_file=_output_file(values["metadata_file"], "--metadata-file"),
        quiet=flags["quiet"],
        run_as_root=bool(run_as_root),
        check_secrets=bool(check_secrets),
        features=parse_features(features),
    )


_OPTION_NAMES: tuple[str, ...] = tuple(inspect.signature(_parse_options).parameters)
# build()'s own keywords, named with the options when a keyword is unknown
_CALL_KEYWORDS = ("bento", "bento_tag", "backend", "template", "graph", "on_output")


def _opt_item(item: tuple[str, str | None]) -> tuple[str, str | None]:
    key, value = item
    return parse_opt(key)[0], None if value is None else str(value)


def _pull(value: bool | str, passthrough: list[tuple[str, str | None]]) -> bool:
    """``pull``: True/always (pull every base image), False/missing (the engines' default), or
    another podman/buildah policy (``never``, ``newer``), passed to the engine as ``--pull=X``."""
    if isinstance(value, bool):
        return value
    policy = str(value).strip().lower()
    if policy in _PULL_ALWAYS:
        return True
    if policy in _PULL_DEFAULT:
        return False
    if not re.fullmatch(r"[a-z]+", policy):
        raise ConfigError(
            f"malformed pull policy {value!r}: expected always, missing, never or newer",
            field="--pull",
        )
    passthrough.append(("pull", policy))
    return False


def _network(value: str | None) -> str | None:
    if value is None:
        return None
    if not str(value).strip():
        raise ConfigError("--network needs a mode, e.g. host, none, default", field="--network")
    return str(value).strip()


def parse_ssh(values: Sequence[str]) -> tuple[str, ...]:
    """``default``, ``default=$SSH_AUTH_SOCK``, ``id=KEY[,KEY]`` (docker's --ssh syntax)."""
    for value in values:
        if not re.match(r"^[A-Za-z0-9_.-]+(=.+)?$", value):
            raise ConfigError(
                f"malformed --ssh {value!r}: expected default or ID[=SOCKET|KEY[,KEY]]",
                field="--ssh",
            )
    return tuple(dict.fromkeys(values))


def parse_add_hosts(values: Sequence[str]) -> tuple[str, ...]:
    """``host:ip`` (``host=ip`` as docker 25+ also takes it) -> ``host:ip``."""
    result = []
    for value in values:
        match = re.match(r"^([^:=\s]+)[:=](\S+)$", value)
        if match is None:
            raise ConfigError(
                f"malformed --add-host {value!r}: expected HOST:IP", field="--add-host"
            )
        result.append(f"{match[1]}:{match[2]}")
    return tuple(dict.fromkeys(result))


def parse_features(values: str | Sequence[str] | None) -> tuple[str, ...]:
    """``--enable-features a,b --enable-features c`` -> ``("a", "b", "c")`` (checked against
    bentoml's extras when the Dockerfile is rendered)."""
    items = [f.strip() for value in _strings(values) for f in value.split(",")]
    return tuple(dict.fromkeys(f for f in items if f))


def _output_file(value: str | Path | None, option: str) -> Path | None:
    """A file the build writes for the user: its directory must exist."""
    if value is None or str(value) == "":
        return None
    path = user_path(value, field=option)
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a directory; give a file", field=option)
    if not path.parent.is_dir():
        raise ConfigError(
            f"{option} {str(path)!r}: directory {str(path.parent)!r} does not exist",
            field=option,
        )
    return path.absolute()


# ---------------------------------------------------------------------------------------------
# The flow


@frozen
class PreparedBuild:
    """A resolved bento, the chosen backend and the rendered Dockerfile: ready to build."""

    bento: Bento
    selection: Selection
    dockerfile: str
    options: BuildOptions
    source: str = ""  # the bento reference as given (see BuildPlan.bento.source)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.options.tags or (default_tag(self.bento),)


def prepare(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    project_store: Path | None = None,
    **options: Any,
) -> PreparedBuild:
    """Validate options, resolve the bento and the backend, render the Dockerfile (no build).

    ``graph`` is the stage graph to render (default: :func:`pipeline.graph.default_graph`).
    ``bento_tag=`` (BentoML's name) may stand for ``bento``. A project is built into
    ``project_store`` (default: the store), e.g. a temporary one for a dry run. The options'
    labels get the image labels (:func:`image_labels`) under the user's own.
    """
    bento = _bento_argument(bento, options)
    parsed = parse_options(**options)
    rendered: list[tuple[Selection, str]] = []

    def render(candidate: Bento) -> None:
        selection = select_backend(backend)
        rendered.append((selection, _render(candidate, selection, parsed, template, graph)))

    # A project is rendered before its new bento enters the store: a failure stores nothing.
    if isinstance(bento, Bento):
        resolved, project = bento, None
    else:
        resolved = _resolve(bento, check=render, project_store=project_store)
        project = _project_dir(bento)
        if project_store is not None:
            resolved = _stored_twin(resolved, project_store)
    if not rendered:
        render(resolved)
    selection, dockerfile = rendered[-1]
    own = {**resolved.labels, **parsed.labels}  # the bentofile's LABELs and --label win
    labels = {k: v for k, v in image_labels(resolved, project).items() if k not in own}
    parsed = evolve(parsed, labels={**labels, **parsed.labels})
    return PreparedBuild(resolved, selection, dockerfile, parsed, _source(bento))


def _stored_twin(bento: Bento, scratch: Path) -> Bento:
    """The store's own copy of ``bento`` (built into the scratch store ``scratch``) when the
    store holds that version already: its creation time is the one a real build labels."""
    if not bento.path.is_relative_to(scratch):
        return bento
    try:
        return get_bento(bento.tag)
    except PipelineError:
        return bento


def _project_dir(ref: str | Path) -> Path | None:
    """``ref`` as a project directory (one with a build file), else None."""
    text = os.fspath(ref)
    if not looks_like_path(text) and not Path(text).is_dir():
        return None
    try:
        path = user_path(text, field="bento")
    except ConfigError:
        return None
    return path if path.is_dir() and build_file(path) is not None else None


def _source(ref: str | Path | Bento) -> str:
    """The bento reference as given (a path absolute), for the plan."""
    if isinstance(ref, Bento):
        return str(ref.path)
    text = os.fspath(ref)
    if Path(text).exists():
        return str(Path(text).absolute())
    return text


def _bento_argument(
    bento: str | Path | Bento | None, options: dict[str, Any]
) -> str | Path | Bento:
    """``bento``, or BentoML's ``bento_tag=`` keyword (taken out of ``options``)."""
    if "bento_tag" in options:
        if bento is not None:
            raise ConfigError(
                "the bento is given twice (as the first argument and as bento_tag=); give one",
                field="bento_tag",
            )
        bento = options.pop("bento_tag")
    if bento is None or bento == "":
        raise ConfigError(
            "no bento given: pass a bento directory, a project directory or a store tag "
            "(name[:version|latest])",
            field="bento",
        )
    return bento


def _resolve(
    ref: str | Path, *, check: Callable[[Bento], object], project_store: Path | None = None
) -> Bento:
    return resolve_bento(str(ref), check=check, project_store=project_store)


def _render(
    bento: Bento,
    selection: Selection,
    options: BuildOptions,
    template: str | Path | None,
    graph: StageGraph | None,
) -> str:
    return str(render_dockerfile(bento, _render_options(selection, options, template), graph))


def _render_options(
    selection: Selection, options: BuildOptions, template: str | Path | None
) -> RenderOptions:
    spec = getattr(selection.executor, "spec", None)
    return RenderOptions(
        template=template,
        buildkit=selection.buildkit,
        ca_cert=options.ca_cert is not None,
        features=cast(Any, options.features),  # attrs' `tuple` converter confuses mypy
        max_locked_cache_mounts=getattr(spec, "max_locked_cache_mounts", None),
    )


@contextmanager
def build_request(prepared: PreparedBuild) -> Iterator[BuildRequest]:
    """A temp context (and CA bundle) for the build; both are removed on exit, always."""
    options = prepared.options
    given = tuple(s.id for s in options.secrets)
    with (
        _maybe_ca_secret(options.ca_cert) as ca_secret,
        # the bento's stage-build envs (a --secret of the same id given by the user wins)
        build_env_secrets(prepared.bento, skip=given) as env_secrets,
        temporary_context(prepared.bento, prepared.dockerfile) as context,
    ):
        # typed Any: attrs' plain `tuple` converters on BuildRequest confuse mypy
        secrets: Any = (*options.secrets, *env_secrets, *([ca_secret] if ca_secret else []))
        # every option the request carries (pipeline.options), as given; tags and secrets
        # as resolved here
        given_options: dict[str, Any] = {
            o.name: getattr(options, o.name)
            for o in OPTIONS
            if o.request and o.name not in ("tags", "secrets")
        }
        yield BuildRequest(
            context=Path(context), tags=prepared.tags, secrets=secrets, **given_options
        )


@contextmanager
def _maybe_ca_secret(cert: Path | None) -> Iterator[SecretSpec | None]:
    if cert is None:
        yield None
        return
    with ca_bundle_secret(cert) as secret:
        yield secret


def compute_plan(
    prepared: PreparedBuild,
    request: BuildRequest,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    instructions: Sequence[PlannedInstruction] | None = None,
) -> BuildPlan:
    """The :class:`~pipeline.buildplan.BuildPlan` of ``prepared`` built as ``request`` (whose
    context exists): the context is read for its manifest, the executor asked for its commands
    (which checks the options it cannot take); nothing is written."""
    secrets = tuple(_planned_secret(s, prepared) for s in request.secrets)
    commands = plan_commands(prepared.selection.executor, request, secrets)
    if instructions is None:
        found = _planned_steps(prepared, template, graph) or parse_dockerfile(prepared.dockerfile)
        users = _users_template(prepared)
        instructions = [
            PlannedInstruction(i.line, i.text, None if i.origin is None else users(str(i.origin)))
            for i in found
        ]
    bento = prepared.bento
    return BuildPlan(
        bento=PlannedBento(
            bento.tag,
            bento.name,
            bento.version,
            prepared.source,
            None if bento.creation_time is None else bento.creation_time.isoformat(),
        ),
        backend=prepared.selection.name,
        backend_source=prepared.selection.source,
        dockerfile=prepared.dockerfile,
        instructions=instructions,
        context=context_manifest(request.context),
        secrets=secrets,
        tags=request.tags,
        platforms=request.platforms,
        build_args=request.build_args,
        labels=request.labels,
        target=request.target,
        outputs=_plan_section("outputs", request, prepared.options),
        cache=_plan_section("cache", request, prepared.options),
        engine=_plan_section("engine", request, prepared.options),
        commands=commands,
        options=options_to_json(evolve(prepared.options, tags=prepared.tags)),
    )


def _plan_section(
    section: PlanSection, request: BuildRequest, options: BuildOptions
) -> dict[str, Any]:
    """A plan section: its options (:func:`pipeline.options.plan_section`) as the request
    has them (the options, for those the request does not carry), in JSON terms."""
    return {
        o.name: _plain(getattr(request if o.request else options, o.name))
        for o in plan_section(section)
    }


def _plain(value: Any) -> Any:
    """Paths as text, tuples as lists, mappings as dicts (nested too): what JSON keeps."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _users_template(prepared: PreparedBuild) -> Callable[[str], str]:
    """Origins name the bento's copy of a project's template: name the project's file."""
    name = prepared.bento.docker.dockerfile_template
    project = _project_dir(prepared.source) if prepared.source else None
    if not name or project is None:
        return lambda origin: origin
    found = build_file(project)
    with warnings.catch_warnings():  # given once already, when the bento was built
        warnings.simplefilter("ignore")
        asked = None if found is None else load_bentofile(found).docker.dockerfile_template
    if not asked:
        return lambda origin: origin
    copy = str(prepared.bento.path / "env" / "docker" / Path(name).name)
    own = str((project / asked).resolve())
    return lambda origin: origin.replace(copy, own)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _planned_secret(secret: SecretSpec, prepared: PreparedBuild) -> PlannedSecret:
    user = {s.id for s in prepared.options.secrets}
    if secret.id in user:
        origin = "--secret"
    elif prepared.options.ca_cert is not None and secret.id == CA_CERT_SECRET_ID:
        origin = "--ca-cert"
    else:
        index = next((i for i, e in enumerate(prepared.bento.envs) if e.name == secret.id), None)
        origin = "envs (stage: build)" if index is None else f"envs[{index}] (stage: build)"
    if secret.src is None:
        return PlannedSecret(secret.id, "env", str(secret.env), origin)
    # the files the build writes itself are private and temporary: named, not located
    source = str(secret.src) if origin == "--secret" else private_source(secret.id)
    return PlannedSecret(secret.id, "file", source, origin)


def options_to_json(options: BuildOptions) -> dict[str, Any]:
    """``options`` as JSON values :func:`parse_options` takes back (secrets as ``id=,src=``)."""
    data: dict[str, Any] = {}
    for name, value in attrs_fields_dict(options).items():
        data[name] = [s.describe() for s in value] if name == "secrets" else _plain(value)
    return data


def options_from_json(data: Mapping[str, Any], *, file: Path | None = None) -> BuildOptions:
    """:func:`options_to_json`'s output back, validated again (files must still exist)."""
    values = dict(data)
    values["opts"] = [tuple(item) for item in values.get("opts") or ()]
    try:
        return parse_options(**values)
    except ConfigError as exc:
        if exc.file is None and file is not None:
            raise ConfigError(exc.message, file=file, field=exc.field, hint=exc.hint) from None
        raise


def attrs_fields_dict(instance: Any) -> dict[str, Any]:
    return {f.name: getattr(instance, f.name) for f in attrs_fields(type(instance))}


async def abuild(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    on_output: OutputSink | None = None,
    on_prepared: Callable[[PreparedBuild], None] | None = None,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> BuildResult:
    """Build ``bento`` (a bento dir, a project dir with ``bentofile.yaml`` or a store tag).

    Keyword options: ``tags``, ``platforms``, ``secrets`` (``"id=X,src=FILE"``,
    ``"id=X,env=VAR"`` or :class:`SecretSpec`), ``build_args``, ``target``, ``cache_from``,
    ``cache_to``, ``progress``, ``push``, ``load``, ``output``, ``labels``, ``no_cache``,
    ``ca_cert``, ``opts`` (backend pass-through), and BentoML's containerize options
    ``network``, ``pull``, ``ssh``, ``add_hosts``, ``iidfile``, ``metadata_file``, ``quiet``,
    ``run_as_root`` and ``features`` (bentoml extras). ``bentoml.container.build``'s keyword
    names are aliases (``bento_tag``, ``image_tag``, ``build_arg``, ``label``, ``secret``,
    ``platform``, ``add_host``, ...; its other engine flags become ``opts``); any other keyword
    is a :class:`~pipeline.errors.ConfigError`. ``graph`` is the stage graph to render
    (default :func:`pipeline.graph.default_graph`; add, replace or reorder stages on it).
    ``backend`` defaults to
    ``PIPELINE_BACKEND``/``BENTOML_CONTAINERIZE_BACKEND`` or the first healthy engine.
    ``on_output`` receives engine output lines (secrets redacted). The build runs the
    :class:`~pipeline.buildplan.BuildPlan` :func:`plan` prints; the result names the bento and
    the plan's digest. Raises a :class:`~pipeline.errors.PipelineError` on bad input and
    :class:`~pipeline.errors.BuildError` when the engine fails.
    """
    prepared = await anyio.to_thread.run_sync(
        functools.partial(
            prepare, bento, backend=backend, template=template, graph=graph, **options
        )
    )
    if on_prepared is not None:
        on_prepared(prepared)
    with build_request(prepared) as request:
        planned = await anyio.to_thread.run_sync(
            functools.partial(compute_plan, prepared, request, template=template, graph=graph)
        )
        return await _run_plan(prepared, request, planned, on_output)


async def _run_plan(
    prepared: PreparedBuild,
    request: BuildRequest,
    planned: BuildPlan,
    on_output: OutputSink | None,
) -> BuildResult:
    try:
        inputs = build_inputs(request, planned)
        result = await prepared.selection.executor.build(planned, inputs, on_output=on_output)
    except BuildError as error:
        if error.origin is None and error.step:
            origin = step_origin(error.step, prepared.bento, _plan_steps(planned))
            raise error.with_origin(origin) from None
        raise
    return evolve(
        result,
        bento=prepared.bento.tag,
        plan_digest=planned.digest,
        labels=dict(request.labels),
    )


def build_inputs(request: BuildRequest, planned: BuildPlan) -> BuildInputs:
    """The inputs ``planned`` was computed from ``request`` with: its context directory and
    the secret files the build wrote itself."""
    private = {
        secret.id: secret.src
        for secret, planned_secret in zip(request.secrets, planned.secrets, strict=True)
        if secret.src is not None and planned_secret.source == private_source(secret.id)
    }
    return BuildInputs(request.context, private)


def _plan_steps(planned: BuildPlan) -> list[Instruction]:
    """The plan's instructions, parsed again with their origins (for :func:`step_origin`)."""
    parsed = parse_dockerfile(planned.dockerfile)
    by_line = {i.line: i.origin for i in planned.instructions}
    steps = []
    for item in parsed:
        origin = by_line.get(item.line)
        steps.append(evolve(item, origin=None if origin is None else Origin(None, None, origin)))
    return steps


# Fallback when the failing step matches no rendered instruction:
# (pattern in the failing step, what in the bento produced it)
_STEP_ORIGINS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\[[^\]]*\] )?FROM\b"), "docker: base_image / distro / python_version"),
    (re.compile(r"setup_script"), "docker: setup_script"),
    (re.compile(r"\b(apt-get|apk add|microdnf|yum|dnf)\b"), "docker: system_packages"),
    (
        re.compile(r"\b(pip|uv pip|uv) install\b"),
        "python: packages / requirements_txt (env/python/requirements.txt)",
    ),
)


def step_origin(
    step: str, bento: Bento, instructions: Sequence[Instruction] | None = None
) -> str | None:
    """The block and bentofile field or template line that produced a failing Dockerfile step.

    ``instructions`` are the rendered Dockerfile's (:func:`pipeline.origins.instruction_origins`):
    the step is matched to one of them by the engine's step number and text, and named exactly
    (``block SETUP_BENTO_X in template FILE:LINE (...)``). Without a match it falls back to a
    guess from the step's text (the user's template when the text is in it, or a pattern)."""
    if instructions:
        found = find_step(step, list(instructions))
        if found is not None and found.origin is not None:
            return str(found.origin)
    instruction = re.sub(r"^(\[[^\]]*\]|STEP \d+/\d+:)\s*", "", step).strip()
    template = _template_file(bento)
    if template is not None and instruction:
        text = " ".join(template.read_text(errors="replace").split())
        if " ".join(instruction.split()) in text:
            return f"{template} (docker: dockerfile_template)"
    for pattern, origin in _STEP_ORIGINS:
        if pattern.search(step):
            return origin
    return None


def _planned_steps(
    prepared: PreparedBuild, template: str | Path | None, graph: StageGraph | None
) -> list[Instruction]:
    """The prepared Dockerfile's instructions with their origins (rendered as :func:`_render`
    did); empty when they cannot be had: a failing build is reported either way."""
    render_options = _render_options(prepared.selection, prepared.options, template)
    try:
        instructions = instruction_origins(prepared.bento, render_options, graph)
    except Exception:  # only a diagnosis: the BuildError is what gets raised
        return []
    if "\n".join(i.text for i in instructions) != "\n".join(
        i.text for i in parse_dockerfile(prepared.dockerfile)
    ):
        return []  # not the Dockerfile that was built
    return instructions


def _template_file(bento: Bento) -> Path | None:
    name = bento.docker.dockerfile_template
    if not name:
        return None
    for candidate in (bento.path / name, bento.path / "env" / "docker" / Path(name).name):
        if candidate.is_file():
            return candidate
    return None


def build(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    on_output: OutputSink | None = None,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> BuildResult:
    """Synchronous :func:`abuild` (same arguments, same result, same errors)."""
    return anyio.run(
        functools.partial(
            abuild,
            bento,
            backend=backend,
            on_output=on_output,
            template=template,
            graph=graph,
            **options,
        )
    )


def plan(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    check: bool = True,
    **options: Any,
) -> BuildPlan:
    """The :class:`~pipeline.buildplan.BuildPlan` :func:`build` would run, with the same
    arguments; nothing is built or written. A project is built into a temporary store that is
    removed again (its content version is the one a real build stores; when the store already
    holds it, that bento is the plan's). ``check`` runs every check of the engine a real build
    runs (installed and healthy, its platforms, secrets and push): ``build --dry-run``.
    """
    with tempfile.TemporaryDirectory(prefix="pipeline-plan-") as scratch:
        prepared = prepare(
            bento,
            backend=backend,
            template=template,
            graph=graph,
            project_store=Path(scratch),
            **options,
        )
        with build_request(prepared) as request:
            if check:
                prepared.selection.executor.check(request, thorough=True)
            return compute_plan(prepared, request, template=template, graph=graph)


def load_plan(path: str | Path) -> BuildPlan:
    """A plan written by ``plan -o json`` (or :meth:`BuildPlan.to_json`), checked."""
    file = user_path(path, field="--plan")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the plan: {exc}", file=file, field="--plan") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the plan is not JSON: {exc}", file=file, field="--plan") from None
    return BuildPlan.from_json(data, file=file)


async def abuild_plan(
    planned: BuildPlan,
    *,
    on_output: OutputSink | None = None,
    on_prepared: Callable[[PreparedBuild], None] | None = None,
    file: Path | None = None,
) -> BuildResult:
    """Run ``planned`` (e.g. :func:`load_plan`'s): its bento is resolved again from its source
    (a project is stored, as by a build), its context written from it with the plan's
    Dockerfile, and the build runs only when the bento, the context's files, the secrets and
    the engine's commands are still the plan's; else a ConfigError says what changed."""
    prepared = await anyio.to_thread.run_sync(
        functools.partial(_prepare_planned, planned, file=file)
    )
    if on_prepared is not None:
        on_prepared(prepared)
    with build_request(prepared) as request:
        again = await anyio.to_thread.run_sync(
            functools.partial(compute_plan, prepared, request, instructions=planned.instructions)
        )
        _same_plan(planned, again, file)
        return await _run_plan(prepared, request, planned, on_output)


def build_plan(planned: BuildPlan, *, on_output: OutputSink | None = None) -> BuildResult:
    """Synchronous :func:`abuild_plan`."""
    return anyio.run(functools.partial(abuild_plan, planned, on_output=on_output))


def _prepare_planned(planned: BuildPlan, *, file: Path | None) -> PreparedBuild:
    options = options_from_json(planned.options, file=file)
    created = planned.bento.created
    try:
        when = None if created is None else datetime.fromisoformat(created)
    except ValueError:
        raise ConfigError(
            f"bento.created {created!r} is not an ISO 8601 time", file=file, field="bento.created"
        ) from None
    bento = resolve_bento(planned.bento.source, creation_time=when)
    if bento.tag != planned.bento.tag:
        raise ConfigError(
            f"{planned.bento.source} now gives the bento {bento.tag}, the plan was made for "
            f"{planned.bento.tag}: its files changed since",
            file=file,
            field="bento",
            hint="make the plan again",
        )
    selection = select_backend(planned.backend)
    return PreparedBuild(bento, selection, planned.dockerfile, options, planned.bento.source)


def _same_plan(planned: BuildPlan, again: BuildPlan, file: Path | None) -> None:
    if planned.digest == again.digest:
        return
    changes = [f"context: {c}" for c in manifest_changes(planned.context, again.context)]
    for name in ("secrets", "commands", "tags", "platforms", "labels", "build_args", "backend"):
        if getattr(planned, name) != getattr(again, name):
            changes.append(f"{name}: {getattr(planned, name)!r} -> {getattr(again, name)!r}")
    raise ConfigError(
        "the plan no longer matches what it would build:\n  " + "\n  ".join(changes or ["?"]),
        file=file,
        hint="make the plan again (`python -m pipeline plan ... -o json`)",
    )


@frozen
class DryRun:
    """What :func:`dry_run` reports (the :class:`BuildPlan` in full is ``plan``)."""

    backend: str
    command: str
    dockerfile: str
    tags: tuple[str, ...]
    plan: BuildPlan | None = None


def dry_run(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    **options: Any,
) -> DryRun:
    """What :func:`build` would run (exact argv, or Dagger operations) and the Dockerfile:
    :func:`plan` with every engine check, nothing written."""
    planned = plan(bento, backend=backend, template=template, graph=graph, **options)
    command = "\n".join(planned.commands)
    return DryRun(planned.backend, command, planned.dockerfile, planned.tags, planned)
