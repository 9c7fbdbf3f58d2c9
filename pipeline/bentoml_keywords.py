"""``bentoml.container.build``'s keyword names, and how each maps onto :func:`pipeline.build`.

BentoML 1.4.40 types ``bentoml.container.build(bento_tag, backend, image_tag, features,
**kwargs)`` with one overload per engine; the kwargs are that engine's own ``build`` flags in
snake case. Here every one of those names is one of three kinds (a table, not ``if`` chains):

- an alias of our keyword (``image_tag`` -> ``tags``, ``build_arg`` -> ``build_args``, ...),
- refused with the reason (``file``, ``context_path``: we render the Dockerfile and assemble the
  context ourselves),
- an engine flag we have no keyword for (``allow``, ``shm_size``, ``cap_add``, ...): passed to
  the engine as ``--opt`` (``--allow=VALUE``), as BentoML passes it; the engine check refuses it
  where the engine lacks it.

Names taken from the real package's signature (``typing.get_overloads``), not copied code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.errors import ConfigError, allowed, did_you_mean

#: BentoML name -> our keyword (same meaning)
ALIASES: Mapping[str, str] = {
    "image_tag": "tags",
    "tag": "tags",
    "platform": "platforms",
    "secret": "secrets",
    "build_arg": "build_args",
    "label": "labels",
    "add_host": "add_hosts",
    "enable_features": "features",
    # buildctl spells the cache flags its own way
    "import_cache": "cache_from",
    "export_cache": "cache_to",
    "pull_always": "pull",
}

#: BentoML names we cannot take, with what to do instead
REFUSED: Mapping[str, str] = {
    "file": "the Dockerfile is rendered from the bento; override blocks with template=FILE "
    "(docs/templates.md)",
    "context_path": "the build context is assembled from the bento; change what it holds with "
    "the bentofile's include/exclude",
    "local": "buildctl's --local is the context we assemble from the bento",
    "frontend": "the frontend is always BuildKit's dockerfile.v0",
    "_bento_store": "bentos are found in $BENTOML_HOME (or pass a bento directory)",
}

#: the other engine flags of BentoML's overloads (docker, buildx, buildctl, nerdctl, podman,
#: buildah): passed to the engine as ``--opt``
ENGINE_OPTIONS: frozenset[str] = frozenset(
    {
        "address", "all_platforms", "allow", "annotation", "arch", "attest", "authfile",
        "build_context", "builder", "buildkit_host", "cache_ttl", "cap_add", "cap_drop",
        "cert_dir", "cgroup_manager", "cgroup_parent", "cgroupns", "cni_config_dir",
        "cni_netconfpath", "cni_path", "cni_plugin_path", "compress", "cpp_flag", "cpu_period",
        "cpu_quota", "cpu_shares", "cpuset_cpus", "cpuset_mems", "creds", "data_root", "debug",
        "debug_full", "decryption_key", "device", "disable_compression",
        "disable_content_trust", "dns", "dns_option", "dns_search", "env", "force_rm", "format",
        "hooks_dir", "host", "hosts_dir", "http_proxy", "identity_label", "ignorefile",
        "insecure_registry", "ipc", "ipfs", "isolation", "jobs", "layers", "logfile",
        "manifest", "memory", "memory_swap", "namespace", "no_cache_filter", "no_hosts",
        "omit_history", "opt", "os", "os_feature", "os_version", "pid", "provenance",
        "pull_never", "retry", "retry_delay", "rm", "runtime", "runtime_flag", "sbom",
        "security_opt", "shm_size", "sign_by", "skip_unused_stages", "snapshotter", "squash",
        "squash_all", "stdin", "storage_driver", "timestamp", "tls_verify", "trace", "ulimit",
        "unsetenv", "userns", "userns_gid_map", "userns_gid_map_group", "userns_uid_map",
        "userns_uid_map_user", "uts", "variant", "volume",
    }
)  # fmt: skip


def engine_opts(name: str, value: Any) -> list[tuple[str, str | None]]:
    """A BentoML engine keyword as ``--opt`` items, converted as BentoML converts it: True is
    the bare flag, False/None nothing, a list one item per element, a dict ``k=v`` items
    (``ulimit={"nofile": (1024, 2048)}`` -> ``nofile=1024:2048``)."""
    key = name.replace("_", "-")
    if value is None or value is False:
        return []
    if value is True:
        return [(key, None)]
    if isinstance(value, Mapping):
        return [(key, f"{k}={_joined(v)}") for k, v in value.items()]
    if isinstance(value, list | tuple | set | frozenset):
        return [(key, str(item)) for item in value]
    return [(key, str(value))]


def _joined(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ":".join(str(v) for v in value)
    return str(value)


def bentoml_value(target: str, value: Any) -> Any:
    """A value BentoML takes, in our keyword's shape: ``add_host={"db": "10.0.0.2"}`` ->
    ``["db:10.0.0.2"]``; a dict for a one-spec option (``secret={"id": "aws", "src": F}``,
    ``cache_from={"type": "local", "src": D}``, ``output=...``) -> ``"id=aws,src=F"``."""
    if not isinstance(value, Mapping):
        return value
    if target == "add_hosts":
        return [f"{host}:{ip}" for host, ip in value.items()]
    if target in ("secrets", "cache_from", "cache_to", "output"):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return value


def to_our_keywords(
    options: Mapping[str, Any], ours: Sequence[str], *, also: Sequence[str] = ()
) -> dict[str, Any]:
    """``options`` with BentoML's names turned into ``ours`` (the keywords we take).

    Engine flags are appended to ``opts``; a name that is neither ours nor BentoML's, a refused
    one, or one option given under two names is a :class:`ConfigError` naming it (``also``: the
    caller's own keywords, listed among the allowed ones)."""
    result: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    extra_opts: list[tuple[str, str | None]] = []
    for name, value in options.items():
        if name in ours:
            target = name
        elif name in ALIASES:
            target = ALIASES[name]
        elif name in REFUSED:
            raise ConfigError(f"{name}= is not supported: {REFUSED[name]}", field=name)
        elif name in ENGINE_OPTIONS:
            extra_opts.extend(engine_opts(name, value))
            continue
        else:
            raise ConfigError(
                f"unknown keyword {name}={did_you_mean(name, [*also, *ours, *ALIASES])}; "
                f"allowed: {allowed([*also, *ours])}; BentoML's names {allowed(ALIASES)}; "
                "and any engine flag of "
                "bentoml.container.build (e.g. 'allow', 'shm_size'), passed as opts",
                field=name,
            )
        if target in given_as:
            raise ConfigError(
                f"{given_as[target]}= and {name}= are the same option ({target}); give one",
                field=name,
            )
        given_as[target] = name
        result[target] = bentoml_value(target, value)
    if extra_opts:
        result["opts"] = [*_opt_items(result.get("opts")), *extra_opts]
    return result


def _opt_items(opts: Any) -> list[Any]:
    if opts is None:
        return []
    if isinstance(opts, str):
        return [opts]
    if isinstance(opts, Mapping):
        return [(str(k), None if v is None else str(v)) for k, v in opts.items()]
    return list(opts)
