"""The build plan: one frozen value that says everything a build will do, before it does it.

A :class:`BuildPlan` is computed once per build (:func:`pipeline.api.plan`) from the bento, the
options and the engine: the Dockerfile with each instruction's origin, the build context as a
manifest (every file's path, size, mode and SHA-256), the secrets by id and source (never a
value), build args, platforms, tags, labels, outputs, cache settings and the engine's commands.
``python -m pipeline plan`` and ``build --dry-run`` print it; a real build runs exactly it, and
``build --plan FILE`` runs one loaded back from its JSON after checking that the bento's files
are still the ones it lists.

Everything here is pure except :func:`context_manifest`, which reads (never writes) a context.
Temporary paths never appear in a plan: the context directory is ``<context>`` and a private
secret file is ``<secret ID>``, so the same inputs give the same plan and the same
:attr:`BuildPlan.digest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import asdict, field, frozen

from pipeline.errors import ConfigError
from pipeline.options import OPTIONS
from pipeline.request import BuildRequest, SecretSpec

#: the plan format's version; a plan of another one is refused when loaded
SCHEMA = 1
CONTEXT_PLACEHOLDER = "<context>"


def _tuple(value: object) -> tuple[Any, ...]:
    return tuple(value or ())  # type: ignore[arg-type]


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@frozen
class PlannedFile:
    """One file of the build context: ``path`` relative to the context (``/``-separated),
    ``mode`` ``0644``/``0755`` (symlinks: ``link``, with ``target``)."""

    path: str
    size: int
    sha256: str
    mode: str
    target: str | None = None


@frozen
class PlannedSecret:
    """A secret the build mounts at ``/run/secrets/<id>``: where it comes from, never its value.

    ``kind`` is ``file`` or ``env``; ``source`` the file path or variable name (``<secret ID>``
    for a private file the build writes itself); ``origin`` who asked for it: ``--secret``,
    ``--ca-cert`` or ``envs[i] (stage: build)``."""

    id: str
    kind: str
    source: str
    origin: str


@frozen
class PlannedInstruction:
    """A Dockerfile instruction: its first ``line`` (1-based), ``text`` and what produced it."""

    line: int
    text: str
    origin: str | None = None


@frozen
class PlannedBento:
    """The bento the plan builds: its tag and the reference the user gave (a project, a bento
    directory or a store tag), which ``build --plan`` resolves again."""

    tag: str
    name: str
    version: str
    source: str
    # the bento's creation_time (ISO 8601): a project not stored yet is stored with it
    created: str | None = None


@frozen
class BuildPlan:
    """Everything one build does (see the module docstring). Frozen: compute a new one."""

    bento: PlannedBento
    backend: str
    backend_source: str  # --backend, an env var, auto
    dockerfile: str
    instructions: tuple[PlannedInstruction, ...] = field(converter=_tuple)
    context: tuple[PlannedFile, ...] = field(converter=_tuple)
    secrets: tuple[PlannedSecret, ...] = field(converter=_tuple)
    tags: tuple[str, ...] = field(converter=_tuple)
    platforms: tuple[str, ...] = field(converter=_tuple)
    build_args: Mapping[str, str] = field(converter=_dict)
    labels: Mapping[str, str] = field(converter=_dict)
    target: str | None
    # where the result goes: push / load / output (an engine output spec) / iidfile / metadata
    outputs: Mapping[str, Any] = field(converter=_dict)
    # cache_from, cache_to, no_cache
    cache: Mapping[str, Any] = field(converter=_dict)
    # the other engine options: network, pull, ssh, add_hosts, opts, progress, quiet, ...
    engine: Mapping[str, Any] = field(converter=_dict)
    # what the engine runs, one command per line (or the Dagger operations), temp paths replaced
    commands: tuple[str, ...] = field(converter=_tuple)
    # the build options as the API takes them (what --plan FILE rebuilds the request from)
    options: Mapping[str, Any] = field(converter=_dict)
    schema: int = SCHEMA

    @property
    def digest(self) -> str:
        """``sha256:`` of the plan's canonical JSON: equal plans, equal digests."""
        text = json.dumps(self._data(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def context_digest(self) -> str:
        """``sha256:`` over the context manifest (paths, modes, sizes, file digests)."""
        return manifest_digest(self.context)

    def _data(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        data = self._data()
        data["digest"] = self.digest
        return data

    @classmethod
    def from_json(cls, data: object, *, file: Path | None = None) -> BuildPlan:
        """A plan from :meth:`to_json`'s output; a ConfigError naming ``file`` when it is not
        one (another schema, a missing or mistyped field, a digest that does not match)."""
        if not isinstance(data, dict):
            raise ConfigError("a build plan is a JSON object", file=file)
        if data.get("schema") != SCHEMA:
            raise ConfigError(
                f"build plan schema {data.get('schema')!r} is not supported (this version "
                f"reads schema {SCHEMA}); make the plan again with this version",
                file=file,
                field="schema",
            )
        try:
            plan = cls(
                bento=PlannedBento(**data["bento"]),
                backend=str(data["backend"]),
                backend_source=str(data["backend_source"]),
                dockerfile=str(data["dockerfile"]),
                instructions=[PlannedInstruction(**i) for i in data["instructions"]],
                context=[PlannedFile(**f) for f in data["context"]],
                secrets=[PlannedSecret(**s) for s in data["secrets"]],
                tags=data["tags"],
                platforms=data["platforms"],
                build_args=data["build_args"],
                labels=data["labels"],
                target=data["target"],
                outputs=data["outputs"],
                cache=data["cache"],
                engine=data["engine"],
                commands=data["commands"],
                options=data["options"],
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"not a build plan of this version: {exc}",
                file=file,
                hint="write it with `python -m pipeline plan BENTO -o json`",
            ) from None
        for section in ("outputs", "cache", "engine"):
            missing = {o.name for o in OPTIONS if o.plan == section} - set(getattr(plan, section))
            if missing:
                raise ConfigError(
                    f"not a build plan of this version: its {section} section has no "
                    f"{', '.join(sorted(missing))}",
                    file=file,
                    field=section,
                    hint="write it with `python -m pipeline plan BENTO -o json`",
                )
        recorded = data.get("digest")
        if recorded is not None and recorded != plan.digest:
            raise ConfigError(
                f"the plan was changed after it was made: its digest is {recorded}, its content "
                f"hashes to {plan.digest}",
                file=file,
                field="digest",
                hint="make the plan again (`python -m pipeline plan ... -o json`) rather than "
                "editing it",
            )
        return plan

    def to_text(self) -> str:
        """The plan for people: what is built, from what, how, then the Dockerfile."""
        lines = [
            f"# plan {self.digest}",
            f"bento:     {self.bento.tag} ({self.bento.source})",
            f"backend:   {self.backend} ({self.backend_source})",
            f"tags:      {', '.join(self.tags) or '(none)'}",
            f"platforms: {', '.join(self.platforms) or '(the engine default)'}",
        ]
        outputs = [k for k in ("push", "load") if self.outputs.get(k)]
        outputs += [f"{k}={self.outputs[k]}" for k in ("output", "iidfile", "metadata_file")]
        outputs = [o for o in outputs if not o.endswith("=None")]
        lines.append(f"outputs:   {', '.join(outputs) or 'the engine local store'}")
        if self.target:
            lines.append(f"target:    {self.target}")
        for key, value in sorted(self.build_args.items()):
            lines.append(f"build-arg: {key}={value}")
        for key, value in sorted(self.labels.items()):
            lines.append(f"label:     {key}={value}")
        for secret in self.secrets:
            where = f"{secret.kind} {secret.source}"
            lines.append(f"secret:    {secret.id} from {where} ({secret.origin})")
        cache = [f"{k}={v}" for k, v in sorted(self.cache.items()) if v]
        if cache:
            lines.append(f"cache:     {', '.join(cache)}")
        size = sum(f.size for f in self.context)
        lines.append(f"context:   {len(self.context)} files, {size} bytes, {self.context_digest}")
        lines.append("# commands (<context> is the build context, made at build time)")
        lines += self.commands
        lines.append("# Dockerfile")
        lines.append(self.dockerfile.rstrip("\n"))
        return "\n".join(lines) + "\n"


@frozen
class BuildInputs:
    """The live half of a build, made when it starts: the plan says what is built, these say
    where its files are. ``context`` is the directory the plan's context manifest describes;
    ``secret_files`` the private files the build wrote itself (the plan's ``<secret ID>``
    sources: the ``--ca-cert`` bundle, build-stage envs), by secret id."""

    context: Path
    secret_files: Mapping[str, Path] = field(factory=dict, converter=_dict)


def request_for(plan: BuildPlan, inputs: BuildInputs) -> BuildRequest:
    """The engine-neutral request ``plan`` describes, with ``inputs``' paths (pure).

    Every option the request carries (:data:`pipeline.options.OPTIONS`) is read from the plan:
    its own fields (tags, platforms, build args, labels, target) and its ``outputs``,
    ``cache`` and ``engine`` sections; each secret from its planned source."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if not option.request or option.name == "secrets":
            continue
        if option.plan is None:
            values[option.name] = getattr(plan, option.name)
        else:
            values[option.name] = getattr(plan, option.plan)[option.name]
    secrets: Any = tuple(_secret_spec(s, inputs) for s in plan.secrets)
    return BuildRequest(context=inputs.context, secrets=secrets, **values)


def _secret_spec(secret: PlannedSecret, inputs: BuildInputs) -> SecretSpec:
    if secret.kind == "env":
        return SecretSpec(secret.id, env=secret.source)
    if secret.source == private_source(secret.id):
        if secret.id not in inputs.secret_files:
            raise ConfigError(
                f"the plan's secret {secret.id!r} ({secret.origin}) is a file the build writes "
                "itself, and the build's inputs have none",
                field="secrets",
            )
        return SecretSpec(secret.id, src=inputs.secret_files[secret.id])
    return SecretSpec(secret.id, src=Path(secret.source))


def private_source(secret_id: str) -> str:
    """How a plan names a secret file the build writes itself (never a temporary path)."""
    return f"<secret {secret_id}>"


def manifest_digest(files: tuple[PlannedFile, ...]) -> str:
    digest = hashlib.sha256()
    for item in files:
        digest.update(f"{item.path}\0{item.mode}\0{item.size}\0{item.sha256}\0".encode())
        if item.target is not None:
            digest.update(f"{item.target}\0".encode())
    return "sha256:" + digest.hexdigest()


def context_manifest(root: Path) -> tuple[PlannedFile, ...]:
    """Every file under ``root`` (sorted by path), read but never changed."""
    found: list[PlannedFile] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            path = Path(directory, name)
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(path)
                sha = hashlib.sha256(target.encode()).hexdigest()
                found.append(PlannedFile(rel, len(target), sha, "link", target))
                continue
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
            mode = "0755" if info.st_mode & stat.S_IXUSR else "0644"
            found.append(PlannedFile(rel, info.st_size, digest.hexdigest(), mode))
    return tuple(sorted(found, key=lambda f: f.path))


def manifest_changes(
    planned: tuple[PlannedFile, ...], actual: tuple[PlannedFile, ...]
) -> list[str]:
    """What differs between two manifests, one line per path (empty: identical)."""
    mine = {f.path: f for f in planned}
    theirs = {f.path: f for f in actual}
    changes = []
    for path in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(path), theirs.get(path)
        if a == b:
            continue
        if a is None:
            changes.append(f"{path}: new")
        elif b is None:
            changes.append(f"{path}: missing")
        elif a.mode != b.mode and a.sha256 == b.sha256:
            changes.append(f"{path}: mode {a.mode} -> {b.mode}")
        else:
            changes.append(f"{path}: content changed")
    return changes


__all__ = [
    "CONTEXT_PLACEHOLDER",
    "SCHEMA",
    "BuildInputs",
    "BuildPlan",
    "PlannedBento",
    "PlannedFile",
    "PlannedInstruction",
    "PlannedSecret",
    "context_manifest",
    "manifest_changes",
    "manifest_digest",
    "private_source",
    "request_for",
]
