"""The build options a user gives, parsed and validated once: :func:`parse_options` ->
:class:`BuildOptions` (every option is declared in :mod:`pipeline.options`).

The CLI, the Python API, the matrix and a loaded plan all go through :func:`parse_options`;
BentoML's ``bentoml.container.build`` keyword names are taken as aliases
(:mod:`pipeline.bentoml_keywords`) and ``--opt key=value`` forms of first-class flags are
folded in. Every bad value is a :class:`~pipeline.errors.ConfigError` naming the option and
what is allowed. Pure, except that secret, CA and output files are checked to exist.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen
from attrs import fields as attrs_fields

from pipeline.backends.base import normalize_platform
from pipeline.bentoml_keywords import to_our_keywords
from pipeline.cacert import check_ca_cert
from pipeline.config import Bento
from pipeline.errors import ConfigError, allowed
from pipeline.labels import BENTO_TAG_LABEL as BENTO_TAG_LABEL
from pipeline.labels import image_labels as image_labels
from pipeline.labels import public_url as public_url
from pipeline.paths import user_path
from pipeline.request import (
    CA_CERT_SECRET_ID,
    PROGRESS_MODES,
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


def json_value(value: Any) -> Any:
    """Paths as text, tuples as lists, mappings as dicts (nested too): what JSON keeps."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {key: json_value(item) for key, item in value.items()}
    return value


def options_to_json(options: BuildOptions) -> dict[str, Any]:
    """``options`` as JSON values :func:`parse_options` takes back (secrets as ``id=,src=``)."""
    data: dict[str, Any] = {}
    for name, value in attrs_fields_dict(options).items():
        data[name] = [s.describe() for s in value] if name == "secrets" else json_value(value)
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
