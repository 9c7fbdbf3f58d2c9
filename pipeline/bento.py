"""Bentos on disk: locate them, build them from projects, list the store, delete and prune.

The store is BentoML-compatible: ``$BENTOML_HOME/bentos/<name>/<version>/`` (``$BENTOML_HOME``
defaults to ``~/bentoml``) with a ``latest`` file per name holding the newest version. Builds are
all-or-nothing: everything is written into a hidden temporary directory inside the store and
renamed into place at the end, so a failed build leaves nothing behind. A build without an
explicit version is content-addressed: its version is a digest of what the bento holds, so an
unchanged project is stored once. Deleting is all-or-nothing too: the version is renamed out of
sight first, then removed.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import filecmp
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pathspec
import yaml

from pipeline import requirements
from pipeline._fs import kind_of, make_dirs, remove_created, user_path
from pipeline.config import Bento, BentofileSpec, running_python_version
from pipeline.errors import (
    BentoNotFoundError,
    ConfigError,
    PipelineError,
    PipelineWarning,
    did_you_mean,
)
from pipeline.loader import (
    BENTO_DOCKERFILE_TEMPLATE,
    BENTO_SETUP_SCRIPT,
    BENTO_WHEELS_DIR,
    PYPROJECT,
    load_bento_yaml,
    load_bentofile,
    locate_field,
    pyproject_build_table,
)
from pipeline.service_check import check_service, discover_service
from pipeline.services import service_entries
from render.environment import make_environment, read_template, template_errors

# Called on a freshly built bento before it enters the store (e.g. rendering its Dockerfile);
# raising a PipelineError aborts the build with nothing stored.
BentoCheck = Callable[[Bento], object]

BENTO_YAML = "bento.yaml"
BENTOFILE = "bentofile.yaml"
BENTOIGNORE = ".bentoignore"
LATEST_FILE = "latest"
README = "README.md"
_TMP_PREFIX = ".tmp-"
# `prune` removes a leftover `.tmp-*` only when nothing changed in it for this long (and no build
# holds its lock): an interrupted build's, never an active one's.
LEFTOVER_AGE = 3600.0
# bento.yaml keys that name the version or the build time: not part of the content digest
_UNHASHED_KEYS = ("version", "creation_time")

# Never copied into a bento, whatever the patterns say (as BentoML).
ALWAYS_EXCLUDED: tuple[str, ...] = (".git/", ".venv/", "venv/", "__pycache__/")

# BentoML's tag rules: lowercase letters, digits, '.', '_' and '-', 63 characters at most.
_TAG_PART = re.compile(r"^[a-z0-9]([-._a-z0-9]{0,61}[a-z0-9])?$")


def store_home() -> Path:
    """``$BENTOML_HOME`` or ``~/bentoml``."""
    home = os.environ.get("BENTOML_HOME")
    if home:
        return user_path(home, field="BENTOML_HOME")
    return user_path("~/bentoml", field="HOME")


def _bentos_dir(store: Path | None) -> Path:
    return (store if store is not None else store_home()) / "bentos"


def check_tag_part(value: str, what: str, *, field: str, file: Path | None = None) -> str:
    if not _TAG_PART.match(value):
        raise ConfigError(
            f"{what} {value!r} is not valid: use lowercase letters, digits, '.', '_' and '-' "
            "(starting and ending with a letter or digit, at most 63 characters)",
            field=field,
            file=file,
        )
    return value


def _snake_case(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return name.strip("._-").lower()


def default_bento_name(service: str) -> str:
    """BentoML 1.2+ names a bento after its service class: ``service:MyService`` -> my_service."""
    module, _, attr = service.partition(":")
    base = attr or Path(module).stem
    return _snake_case(base.split(".")[-1]) or "bento"


# --- resolving -------------------------------------------------------------------------------


def resolve_bento(
    ref: str | os.PathLike[str],
    *,
    store: Path | None = None,
    check: BentoCheck | None = None,
    project_store: Path | None = None,
    creation_time: datetime | None = None,
) -> Bento:
    """A bento from a bento dir, a project dir (built into the store first) or a store tag.

    ``check`` only runs for a project: see :func:`build_bento`. A project is built into
    ``project_store`` (default: ``store``), e.g. a temporary store a dry run removes afterwards;
    tags are always looked up in ``store``.
    """
    text = os.fspath(ref)
    path = user_path(text, field="bento")
    if kind_of(path) == "file" and path.name in (BENTO_YAML, BENTOFILE, PYPROJECT):
        path = path.parent
    if kind_of(path) == "dir":
        if (path / BENTO_YAML).is_file():
            return load_bento_yaml(path / BENTO_YAML)
        if build_file(path) is not None:
            target = project_store if project_store is not None else store
            return build_bento(path, store=target, check=check, creation_time=creation_time)
        raise BentoNotFoundError(
            f"{path} is neither a bento (no {BENTO_YAML}) nor a project (no {BENTOFILE}, "
            f"no [tool.bentoml.build] in {PYPROJECT})"
        )
    if looks_like_path(text):
        raise BentoNotFoundError(f"no such directory: {text}")
    return get_bento(text, store=store)


def build_file(project: Path) -> Path | None:
    """The project's build config, in BentoML's order: ``bentofile.yaml``, else a
    ``pyproject.toml`` with a ``[tool.bentoml.build]`` table; ``None`` when it has neither."""
    bentofile = project / BENTOFILE
    if bentofile.is_file():
        return bentofile
    pyproject = project / PYPROJECT
    if pyproject.is_file() and pyproject_build_table(pyproject):
        return pyproject
    return None


def looks_like_path(text: str) -> bool:
    """Whether a bento reference is a path (``/``, a leading ``.`` or ``~``, ``.yaml``), never a
    tag."""
    return (
        "/" in text
        or os.sep in text
        or text.startswith(".")
        or text.startswith("~")
        or text.endswith((".yaml", ".yml"))
    )


def parse_tag(tag: str) -> tuple[str, str | None]:
    """``name`` / ``name:latest`` -> (name, None); ``name:version`` -> (name, version)."""
    name, sep, version = tag.strip().partition(":")
    if sep and not version:
        raise ConfigError(f"tag {tag!r} has an empty version", field="tag")
    check_tag_part(name.lower(), "bento name", field="tag")
    if version and version != "latest":
        check_tag_part(version.lower(), "bento version", field="tag")
        return name.lower(), version.lower()
    return name.lower(), None


def _store_entries(parent: Path, keep: Callable[[Path], object]) -> list[str]:
    """Sorted names of ``parent``'s visible subdirectories for which ``keep`` is true
    (hidden ones are builds in progress)."""
    if not parent.is_dir():
        return []
    return sorted(
        d.name for d in parent.iterdir() if d.is_dir() and not d.name.startswith(".") and keep(d)
    )


def _versions(name_dir: Path) -> list[str]:
    return _store_entries(name_dir, lambda d: (d / BENTO_YAML).is_file())


def _names(bentos: Path) -> list[str]:
    return _store_entries(bentos, _versions)


def get_bento(tag: str, *, store: Path | None = None) -> Bento:
    """Look up ``name``, ``name:latest`` or ``name:version`` in the store."""
    return load_bento_yaml(_find_in_store(tag, _bentos_dir(store)) / BENTO_YAML)


def _find_in_store(tag: str, bentos: Path) -> Path:
    """The directory of ``tag`` in ``bentos`` (without loading it: a broken one is found too)."""
    name, version = parse_tag(tag)
    name_dir = bentos / name
    versions = _versions(name_dir)
    if not versions:
        names = _names(bentos)
        known = f"known bentos: {', '.join(names)}" if names else f"the store {bentos} is empty"
        raise BentoNotFoundError(
            f"no bento named {name!r} in {bentos}{did_you_mean(name, names)}",
            field="tag",
            hint=known,
        )
    if version is None:
        version = _latest_version(name_dir, versions)
    elif version not in versions:
        raise BentoNotFoundError(
            f"bento {name!r} has no version {version!r}{did_you_mean(version, versions)}",
            field="tag",
            hint=f"known versions of {name}: {', '.join(versions)}",
        )
    return name_dir / version


def _latest_version(name_dir: Path, versions: list[str]) -> str:
    recorded = _recorded_latest(name_dir)
    if recorded is not None and recorded in versions:
        return recorded
    return _newest_first(name_dir, versions)[0]


def _newest_first(name_dir: Path, versions: list[str]) -> list[str]:
    """``versions`` newest first: the one the ``latest`` file names, then by ``creation_time``
    (as BentoML does without a valid ``latest`` file); unreadable ones last."""
    recorded = _recorded_latest(name_dir)

    def created(version: str) -> tuple[bool, float, str]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PipelineWarning)
                bento = load_bento_yaml(name_dir / version / BENTO_YAML)
        except PipelineError:
            return (version == recorded, float("-inf"), version)
        return (version == recorded, _created(bento, float("-inf")), version)

    return sorted(versions, key=created, reverse=True)


def _recorded_latest(name_dir: Path) -> str | None:
    try:
        return (name_dir / LATEST_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _created(bento: Bento, unknown: float) -> float:
    """The bento's creation time as a timestamp (naive times are UTC), or ``unknown``."""
    when = bento.creation_time
    if when is None:
        return unknown
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def list_bentos(store: Path | None = None) -> list[Bento]:
    """Every bento in the store, by name then newest first. Unreadable ones are skipped with
    a warning."""
    bentos = _bentos_dir(store)
    found: list[Bento] = []
    for name in _names(bentos):
        for version in _versions(bentos / name):
            try:
                found.append(load_bento_yaml(bentos / name / version / BENTO_YAML))
            except PipelineError as exc:
                warnings.warn(f"skipping unreadable bento: {exc}", PipelineWarning, stacklevel=2)

    return sorted(found, key=lambda b: (b.name, -_created(b, 0.0)))


# --- building --------------------------------------------------------------------------------


def _spec(
    lines: list[str] | tuple[str, ...], *, file: Path | None = None, field: str | None = None
) -> pathspec.PathSpec:
    """GitIgnoreSpec: git's own semantics (negation, anchoring, dir-only patterns). A pattern
    git would refuse (one ending in a lone backslash, ...) is a ConfigError naming it."""
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError):  # pathspec's GitIgnorePatternError is a ValueError
        pass
    for index, line in enumerate(lines):  # only to name the pattern that failed
        try:
            pathspec.GitIgnoreSpec.from_lines([line])
        except (ValueError, TypeError) as exc:
            where = f"{field}[{index}]" if field else None
            raise ConfigError(
                f"{line!r} is not a valid gitignore pattern ({exc})",
                file=file,
                field=where,
                line=None if field else index + 1,
                hint="a pattern may not end in one backslash (it escapes nothing): remove it, "
                "or end in two for a literal backslash",
            ) from None
    raise ConfigError("the patterns are not valid gitignore patterns", file=file, field=field)


class _Selector:
    """include/exclude/.bentoignore with gitignore semantics (via pathspec), as BentoML."""

    def __init__(self, root: Path, spec: BentofileSpec) -> None:
        self.root = root
        self.include = _spec(
            spec.include if spec.include is not None else ["*"], file=spec.path, field="include"
        )
        self.exclude = _spec(list(spec.exclude or ()), file=spec.path, field="exclude")
        self.always = _spec(ALWAYS_EXCLUDED)
        self.ignores: list[tuple[str, pathspec.PathSpec]] = []

    def add_ignore_file(self, rel_dir: str, file: Path) -> None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", file=file) from None
        self.ignores.append((rel_dir, _spec(lines, file=file)))

    def _ignored(self, rel: str) -> bool:
        for parent, spec in self.ignores:
            if not parent:
                if spec.match_file(rel):
                    return True
            elif rel.startswith(parent + "/") and spec.match_file(rel[len(parent) + 1 :]):
                return True
        return False

    def excluded_dir(self, rel_dir: str) -> bool:
        probe = rel_dir + "/"
        return (
            self.always.match_file(probe) or self.exclude.match_file(probe) or self._ignored(probe)
        )

    def includes(self, rel: str) -> bool:
        return (
            self.include.match_file(rel)
            and not self.exclude.match_file(rel)
            and not self.always.match_file(rel)
            and not self._ignored(rel)
        )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def select_files(spec: BentofileSpec) -> list[tuple[str, Path]]:
    """``(relative posix path in src/, real file to copy)`` for every included file.

    Symlinks are followed when they stay inside the project; one that points outside is an
    error (unless excluded), so a bento never smuggles in ``/etc/passwd`` or ``~/.ssh``.
    """
    root = spec.project_dir.resolve()
    selector = _Selector(root, spec)
    chosen: list[tuple[str, Path]] = []
    seen_dirs: set[Path] = set()

    def walk(directory: Path, rel_dir: str) -> None:
        real = directory.resolve()
        if real in seen_dirs:
            return
        seen_dirs.add(real)
        ignore = directory / BENTOIGNORE
        if ignore.is_file():
            selector.add_ignore_file(rel_dir, ignore)
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                try:
                    target = entry.resolve(strict=False)
                except (OSError, RuntimeError):  # a symlink loop
                    raise ConfigError(
                        f"symlink {rel!r} is part of a symlink loop",
                        file=spec.path,
                        field="include",
                        hint=f"remove the loop or exclude {rel!r}",
                    ) from None
                is_dir = target.is_dir()
                if (is_dir and selector.excluded_dir(rel)) or (
                    not is_dir and not selector.includes(rel)
                ):
                    continue
                if not _inside(target, root):
                    raise ConfigError(
                        f"symlink {rel!r} points outside the project ({os.readlink(entry)} -> "
                        f"{target})",
                        file=spec.path,
                        field="include",
                        hint=f"copy the target into the project or exclude {rel!r}",
                    )
                if not target.exists():
                    continue  # dangling link inside the project: nothing to copy
            if entry.is_dir():
                if not selector.excluded_dir(rel):
                    walk(entry, rel)
            elif entry.is_file() and selector.includes(rel):
                chosen.append((rel, entry.resolve()))

    walk(spec.project_dir, "")
    if spec.python.is_src_layout:
        # as BentoML: the project's src/ is the bento's src/ root (src/pkg/x.py -> pkg/x.py)
        chosen = [(rel[4:] if rel.startswith("src/") else rel, real) for rel, real in chosen]
    return chosen


def _copy_file(src: Path, dest: Path, *, executable: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    mode = 0o755 if executable or os.access(src, os.X_OK) else 0o644
    dest.chmod(mode)


def _user_requirements(spec: BentofileSpec) -> list[str]:
    """What the user asked for: ``requirements_txt`` when set, else ``packages`` (as BentoML:
    with both set, the file wins and the list is ignored, with a warning)."""
    python = spec.python
    if python.requirements_txt:
        if python.packages:
            warnings.warn(
                f"{spec.path}: python.packages is ignored because python.requirements_txt is "
                "set (as in BentoML); list the packages in the requirements file instead",
                PipelineWarning,
                stacklevel=3,
            )
        text = (spec.project_dir / python.requirements_txt).read_text(encoding="utf-8")
        return text.rstrip("\n").splitlines()
    return list(python.packages)


def _bentoml_pin(
    spec: BentofileSpec, files: list[tuple[str, Path]], user_lines: list[str], version: str | None
) -> requirements.BentomlPin | None:
    """``bentoml==X`` when the service needs BentoML: its code imports bentoml, or the user's
    requirements name it (``bentoml build`` always adds itself)."""
    if requirements.mentions_bentoml(user_lines) or requirements.imports_bentoml(
        real for _rel, real in files
    ):
        return requirements.choose_bentoml_pin(version)
    return None


def _lock_packages(spec: BentofileSpec) -> bool:
    # BentoML's default: lock unless pack_git_packages is explicitly false
    if spec.python.lock_packages is not None:
        return spec.python.lock_packages
    return spec.python.pack_git_packages is not False


def _conda_channels(spec: BentofileSpec) -> tuple[str, ...]:
    """As BentoML: packages without channels (and without environment_yml) use conda-forge."""
    conda = spec.conda
    if not conda.channels and not conda.environment_yml and (conda.dependencies or conda.pip):
        return ("conda-forge",)
    return conda.channels


def _bento_yaml_data(
    spec: BentofileSpec,
    name: str,
    version: str,
    created: datetime,
    pin: requirements.BentomlPin | None,
) -> dict[str, Any]:
    docker = spec.docker.with_defaults()
    python = spec.python
    return {
        "service": spec.service,
        "name": name,
        "version": version,
        "bentoml_version": pin.version if pin is not None else None,
        "creation_time": created.isoformat(),
        "labels": dict(spec.labels),
        "models": [{"tag": tag} for tag in spec.models],
        "runners": [],
        "entry_service": spec.service.partition(":")[2] or spec.service,
        "services": [],
        "envs": [{"name": e.name, "value": e.value, "stage": e.stage} for e in spec.envs],
        "schema": {},
        "args": dict(spec.args),
        "apis": [],
        "docker": {
            "distro": docker.distro,
            "python_version": docker.python_version,
            "cuda_version": docker.cuda_version,
            "env": dict(docker.env) or None,
            "system_packages": list(docker.system_packages) or None,
            "setup_script": BENTO_SETUP_SCRIPT if docker.setup_script else None,
            "base_image": docker.base_image,
            "dockerfile_template": (
                BENTO_DOCKERFILE_TEMPLATE if docker.dockerfile_template else None
            ),
        },
        "python": {
            "requirements_txt": "env/python/requirements.txt" if python.requirements_txt else None,
            "packages": list(python.packages) or None,
            "lock_packages": _lock_packages(spec),
            "pack_git_packages": python.pack_git_packages,
            "index_url": python.index_url,
            "no_index": python.no_index,
            "trusted_host": list(python.trusted_host) or None,
            "find_links": list(python.find_links) or None,
            "extra_index_url": list(python.extra_index_url) or None,
            "pip_args": python.pip_args,
            "wheels": [f"{BENTO_WHEELS_DIR}/{Path(w).name}" for w in python.wheels] or None,
            # only when set: BentoML before 1.4 refuses the key (a bento pinned to 1.2 serves)
            **({"is_src_layout": True} if python.is_src_layout else {}),
        },
        "conda": {
            "environment_yml": "env/conda/environment.yml" if not spec.conda.is_empty else None,
            "channels": list(_conda_channels(spec)) or None,
            "dependencies": list(spec.conda.dependencies) or None,
            "pip": list(spec.conda.pip) or None,
        },
    }


def _write_bento(
    spec: BentofileSpec,
    dest: Path,
    name: str,
    version: str | None,
    files: list[tuple[str, Path]],
    user_lines: list[str],
    pin: requirements.BentomlPin | None,
    created: datetime | None = None,
) -> str:
    """Write the whole bento into ``dest`` and return its version: ``version``, or when it is
    None the digest of the content (:func:`content_version`)."""
    src_root = dest / "src"
    src_root.mkdir(parents=True)
    for rel, real in files:
        _copy_file(real, src_root / rel)

    created = created or datetime.now(timezone.utc)
    env_python = dest / "env" / "python"
    env_docker = dest / "env" / "docker"
    env_python.mkdir(parents=True)
    env_docker.mkdir(parents=True)
    python_version = spec.docker.with_defaults().python_version or running_python_version()
    wanted = requirements.requirements_in(user_lines, spec.python, pin)
    requirements_in = env_python / "requirements.in"
    requirements_txt = env_python / "requirements.txt"
    requirements_in.write_text(wanted, encoding="utf-8")
    if _lock_packages(spec) and requirements.has_requirements(wanted):
        source_builds = requirements.lock(
            requirements_in,
            requirements_txt,
            python_version=python_version,
            cwd=src_root,
            bentofile=spec.path,
        )
        # written when empty too: "checked, none", so no build checks again
        (dest / requirements.SOURCE_BUILDS_PATH).write_text(
            "".join(f"{name}\n" for name in source_builds), encoding="utf-8"
        )
    else:
        requirements_txt.write_text(wanted, encoding="utf-8")
    (env_python / "version.txt").write_text(python_version + "\n", encoding="utf-8")
    for wheel in spec.python.wheels:
        _copy_file(spec.project_dir / wheel, dest / BENTO_WHEELS_DIR / Path(wheel).name)
    if spec.docker.setup_script:
        _copy_file(
            spec.project_dir / spec.docker.setup_script, dest / BENTO_SETUP_SCRIPT, executable=True
        )
    if spec.docker.dockerfile_template:
        _copy_file(
            spec.project_dir / spec.docker.dockerfile_template, dest / BENTO_DOCKERFILE_TEMPLATE
        )
    if not spec.conda.is_empty:
        conda_dir = dest / "env" / "conda"
        conda_dir.mkdir(parents=True)
        if spec.conda.environment_yml:
            _copy_file(spec.project_dir / spec.conda.environment_yml, conda_dir / "environment.yml")
        else:
            deps: list[Any] = list(spec.conda.dependencies)
            if spec.conda.pip:
                deps.append({"pip": list(spec.conda.pip)})
            content = {"channels": list(_conda_channels(spec)), "dependencies": deps}
            (conda_dir / "environment.yml").write_text(
                yaml.safe_dump(content, sort_keys=False), encoding="utf-8"
            )
    data = _bento_yaml_data(spec, name, version or "", created, pin)
    data["services"] = service_entries(real for _rel, real in files)
    if version is None:
        version = content_version(dest, readme=_readme(spec, name, ""), metadata=data)
    data["version"] = version
    (dest / README).write_text(_readme(spec, name, version), encoding="utf-8")
    (dest / BENTO_YAML).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return version


def content_version(payload: Path, *, readme: str, metadata: Mapping[str, Any]) -> str:
    """A bento's version from its content: 16 lowercase base32 characters (80 bits of a
    SHA-256) over every file under ``payload`` (path, executable bit, bytes), the README text
    and the ``bento.yaml`` data, leaving out what names the version or the build time (``readme``
    is written without the version; ``version`` and ``creation_time`` of ``metadata`` are
    skipped). Same content, same version; any other byte, another."""
    digest = hashlib.sha256(b"bento-pipeline content 1\0")
    for path in sorted(payload.rglob("*"), key=lambda p: p.relative_to(payload).as_posix()):
        rel = path.relative_to(payload).as_posix()
        if path.is_dir():
            digest.update(f"dir {rel}\0".encode())
            continue
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"file {rel} {executable} {path.stat().st_size}\0".encode())
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    digest.update(f"{README}\0".encode() + readme.encode("utf-8") + b"\0")
    kept = {k: v for k, v in metadata.items() if k not in _UNHASHED_KEYS}
    digest.update(f"{BENTO_YAML}\0".encode() + json.dumps(kept, sort_keys=True).encode())
    return base64.b32encode(digest.digest()[:10]).decode("ascii").lower()


def _readme(spec: BentofileSpec, name: str, version: str) -> str:
    description = spec.description
    if description is None:
        readme = spec.project_dir / "README.md"
        if readme.is_file():  # as BentoML: the project's README.md
            return readme.read_text(encoding="utf-8")
        return f"# {name}:{version}\n\nBuilt by bento-pipeline from {spec.path.name}.\n"
    if description.startswith("file:"):
        source = spec.project_dir / description[len("file:") :].strip()
        if not source.is_file():
            raise ConfigError(
                f"description file {str(source)!r} does not exist",
                file=spec.path,
                field="description",
            )
        return source.read_text(encoding="utf-8")
    return description if description.endswith("\n") else description + "\n"


def build_bento(
    project_dir: str | os.PathLike[str],
    *,
    store: Path | None = None,
    version: str | None = None,
    check: BentoCheck | None = None,
    bentoml_version: str | None = None,
    creation_time: datetime | None = None,
) -> Bento:
    """Build the project's ``bentofile.yaml`` into the store and return the bento.

    ``creation_time`` (default: now) is the ``creation_time`` a newly stored bento records:
    running a build plan stores the bento its plan was made from, with that plan's time.

    Like ``bentoml build``: the service module must be among the included files; when the
    service needs BentoML, ``bentoml==<version>`` is added (``bentoml_version``, else
    ``$PIPELINE_BENTOML_VERSION``, else the installed bentoml's, else
    :data:`pipeline.requirements.DEFAULT_BENTOML_VERSION`); the requirements are locked with uv
    into ``env/python/requirements.txt`` unless ``python.lock_packages`` is false, and
    ``env/python/requirements.in`` keeps what was asked for.

    Without ``version``, the version is the digest of the bento's content
    (:func:`content_version`): when the store already holds that version, nothing is stored
    again; ``latest`` names it and the stored bento is returned (also when a concurrent build
    of the same content stored it first). An explicit ``version`` that exists is an error.

    All-or-nothing: validation happens first, files go to a temporary directory inside the
    store, which is renamed to ``bentos/<name>/<version>`` only when complete. ``check`` runs on
    the complete bento while it is still in that temporary directory, before anything is
    decided; when it raises, nothing is stored or changed, and errors and warnings naming the
    bento's copy of the user's template name the user's file instead.
    """
    project = user_path(project_dir, field="project")
    found = build_file(project)
    if found is None:
        if not project.is_dir():
            raise BentoNotFoundError(f"no such project directory: {project}")
        raise BentoNotFoundError(
            f"{project} has no {BENTOFILE} (and no [tool.bentoml.build] table in {PYPROJECT})",
            file=project / BENTOFILE,
        )
    bentofile = found
    spec = load_bentofile(bentofile)
    if not spec.service:  # as BentoML: the service defined in service.py
        spec = attrs.evolve(spec, service=discover_service(select_files(spec), bentofile=bentofile))
    name = check_tag_part(
        (spec.name or default_bento_name(spec.service)).lower(),
        "bento name",
        field="name",
        file=bentofile,
    )
    if version is not None:
        version = check_tag_part(version, "bento version", field="--version")
    # Fail on bad files/symlinks and a service the files do not have before anything is created.
    files = select_files(spec)
    check_service(spec.service, files, bentofile=spec.path)
    user_lines = _user_requirements(spec)
    pin = _bentoml_pin(spec, files, user_lines, bentoml_version)
    if spec.description and spec.description.startswith("file:"):
        _readme(spec, name, version or "")
    if spec.docker.dockerfile_template:
        template = spec.project_dir / spec.docker.dockerfile_template
        with template_errors(template):
            make_environment().parse(read_template(template), filename=str(template))

    bentos = _bentos_dir(store)
    name_dir = bentos / name
    if version is not None and (name_dir / version).exists():
        raise _exists_error(name, version, name_dir / version)
    try:
        created = make_dirs(name_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}build-", dir=name_dir))
    except OSError as exc:
        raise PipelineError(f"cannot write to the store {bentos}: {exc}") from exc
    explicit = version is not None
    latest: Path | None = None
    try:
        with _in_use(tmp):
            version = _write_bento(spec, tmp, name, version, files, user_lines, pin, creation_time)
            _run_check(check, spec, tmp)
            tmp.chmod(0o755)
            # the new `latest` is written before the bento moves in: a disk that is full fails
            # the build with nothing stored, never a stored bento that `latest` misses
            latest = _stage_latest(name_dir, version)
            final = _move_into_store(tmp, name_dir / version, name=name, explicit=explicit)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if latest is not None:
            latest.unlink(missing_ok=True)
        remove_created(created)
        if isinstance(exc, OSError):
            what = f"{name}:{version}" if version else name
            raise PipelineError(f"building {what} failed, nothing was written: {exc}") from exc
        raise
    os.replace(latest, name_dir / LATEST_FILE)
    return _load_built(final)


def _exists_error(name: str, version: str, path: Path) -> ConfigError:
    return ConfigError(
        f"bento {name}:{version} already exists in the store ({path})",
        field="--version",
        hint=f"choose another version, or delete it first: python -m pipeline bento delete "
        f"{name}:{version}",
    )


def _move_into_store(tmp: Path, final: Path, *, name: str, explicit: bool) -> Path:
    """Rename the finished bento ``tmp`` to ``final``. A content-addressed ``final`` that is
    already stored (by an earlier build, or a concurrent one that renamed first) is kept and
    ``tmp`` removed; an explicit version that exists is an error."""
    try:
        os.rename(tmp, final)
    except OSError as exc:
        # rename(2) refuses a non-empty target (a stored bento always is): already there
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
            raise
        if explicit:
            raise _exists_error(name, final.name, final) from None
        _discard_duplicate(tmp, final, name=name)
    return final


def _discard_duplicate(tmp: Path, stored: Path, *, name: str) -> None:
    if not _same_content(tmp, stored):
        tag = f"{name}:{stored.name}"
        raise PipelineError(
            f"bento {tag} in the store ({stored}) does not hold what this build made from the "
            "same content: it was changed after it was stored",
            hint=f"delete it and build again: python -m pipeline bento delete {tag}",
        )
    shutil.rmtree(tmp)


def _same_content(built: Path, stored: Path) -> bool:
    """Whether ``stored`` holds exactly the files of ``built`` (same paths, bytes, executable
    bits), their ``bento.yaml`` differing at most in ``creation_time``."""

    def entries(root: Path) -> list[tuple[str, bool]]:
        return sorted((p.relative_to(root).as_posix(), p.is_dir()) for p in root.rglob("*"))

    listing = entries(built)
    if listing != entries(stored):
        return False
    for rel, is_dir in listing:
        a, b = built / rel, stored / rel
        if is_dir:
            continue
        if rel == BENTO_YAML:
            try:
                mine, theirs = (yaml.safe_load(f.read_text(encoding="utf-8")) for f in (a, b))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                return False
            if not isinstance(mine, dict) or not isinstance(theirs, dict):
                return False
            mine.pop("creation_time", None)
            theirs.pop("creation_time", None)
            if mine != theirs:
                return False
        elif os.access(a, os.X_OK) != os.access(b, os.X_OK) or not filecmp.cmp(a, b, shallow=False):
            return False
    return True


@contextlib.contextmanager
def _in_use(directory: Path) -> Iterator[None]:
    """Hold a shared lock on ``directory`` while a build writes it: :func:`prune_bentos`
    never removes a temporary directory somebody holds, however old."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _load_built(directory: Path) -> Bento:
    """A bento this build just wrote. Its warnings (options ignored because of base_image) were
    already given against the bentofile, so they are not repeated against the copy."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PipelineWarning)
        return load_bento_yaml(directory / BENTO_YAML)


def _run_check(check: BentoCheck | None, spec: BentofileSpec, tmp: Path) -> None:
    """Load the bento in ``tmp`` and run ``check`` on it, reporting the user's files instead of
    the copies: the user's template, and for a problem in the copied ``bento.yaml`` the user's
    bentofile (or pyproject.toml) with the line of the same field."""
    user_template = str(spec.project_dir / (spec.docker.dockerfile_template or ""))
    copy = tmp / BENTO_DOCKERFILE_TEMPLATE
    # The renderer may name the copy by its resolved path (the store can be behind a symlink).
    copies = {str(copy.resolve()), str(copy)} if spec.docker.dockerfile_template else set()
    metadata = {str((tmp / BENTO_YAML).resolve()), str(tmp / BENTO_YAML)}

    def users(text: str) -> str:
        for name in copies:
            text = text.replace(name, user_template)
        return text

    error: PipelineError | None = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            built = _load_built(tmp)
            if check is not None:
                check(built)
        except PipelineError as exc:
            exc.message = users(exc.message)
            exc.args = (exc.message, *exc.args[1:])
            if exc.file in metadata:
                exc.field, exc.line = locate_field(spec.path, exc.field)
                exc.file = str(spec.path)
            exc.file = users(exc.file) if exc.file else None
            error = exc
    for warning in caught:
        message = warning.message
        text = users(str(message))
        if text != str(message) and isinstance(message, Warning):
            message = type(message)(text)
        warnings.warn(message, stacklevel=4)
    if error is not None:
        raise error


def _write_latest(name_dir: Path, version: str) -> None:
    os.replace(_stage_latest(name_dir, version), name_dir / LATEST_FILE)


def _stage_latest(name_dir: Path, version: str) -> Path:
    """``version`` in a new hidden file beside ``latest``, to rename over it; a write that
    fails (a full disk) leaves no file behind."""
    tmp = name_dir / f"{_TMP_PREFIX}latest-{secrets.token_hex(4)}"
    try:
        tmp.write_text(version, encoding="utf-8")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


# --- deleting and pruning --------------------------------------------------------------------


@attrs.frozen
class Removed:
    """A bento version (or a leftover temporary entry of an interrupted build or delete) that
    :func:`prune_bentos` removed, or in a dry run would remove."""

    path: Path
    size: int  # bytes
    name: str | None = None  # None for a leftover
    version: str | None = None

    @property
    def tag(self) -> str | None:
        return f"{self.name}:{self.version}" if self.name and self.version else None


def locate_bento(ref: str | os.PathLike[str], *, store: Path | None = None) -> Path:
    """The store directory of ``ref`` (``name``, ``name:latest``, ``name:version``, or a path),
    without loading it (a broken bento is found too). A path is accepted only when it is a
    ``bentos/<name>/<version>`` directory of the store; a word without ``/`` is always a tag."""
    bentos = _bentos_dir(store)
    text = os.fspath(ref)
    if not looks_like_path(text):
        return _find_in_store(text, bentos)
    path = user_path(text, field="bento")
    if path.name == BENTO_YAML:
        path = path.parent
    if kind_of(path) != "dir":
        raise BentoNotFoundError(f"no such directory: {text}", field="bento")
    real = path.resolve()
    in_store = bentos / real.parent.name / real.name
    if (
        real.parent.parent != bentos.resolve()
        or real.name.startswith(".")
        or real.parent.name.startswith(".")
        or in_store.resolve() != real
        or not (real / BENTO_YAML).is_file()
    ):
        raise ConfigError(
            f"{path} is not a bento of the store {bentos}: only its "
            "bentos/<name>/<version> directories can be deleted here",
            field="bento",
            hint="name it by tag (name:version); a directory outside the store is yours to "
            "remove",
        )
    return in_store


def delete_bento(ref: str | os.PathLike[str], *, store: Path | None = None) -> Path:
    """Delete one bento version from the store; return the directory it had.

    ``ref`` is ``name:version``, ``name`` / ``name:latest`` (the latest version only), or the
    path of a version directory inside the store (see :func:`locate_bento`). All-or-nothing:
    the version is renamed to a hidden ``.tmp-`` sibling first, so a half-deleted bento is
    never seen as one, then removed. When ``latest`` named it, ``latest`` moves to the newest
    remaining version (by ``creation_time``); without one left, ``latest`` and the name's
    directory go too.
    """
    path = locate_bento(ref, store=store)
    _remove_version(path)
    return path


def check_keep(keep: object, *, field: str = "keep") -> int:
    """``keep`` as a count of versions to keep: a whole number, at least 1."""
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise ConfigError(f"{keep!r} is not a whole number of versions to keep", field=field)
    if keep < 1:
        raise ConfigError(
            f"cannot keep {keep} versions: keep at least 1; use delete to remove all",
            field=field,
            hint="python -m pipeline bento delete NAME:VERSION [NAME:VERSION ...]",
        )
    return keep


def prune_bentos(
    *,
    store: Path | None = None,
    keep: int = 1,
    dry_run: bool = False,
    names: Iterable[str] = (),
) -> list[Removed]:
    """Per bento name (every one, or ``names``), keep the latest version and the ``keep - 1``
    next newest (by ``creation_time``), delete the rest (as :func:`delete_bento`); remove the
    store's leftover ``.tmp-*`` entries that nothing changed for :data:`LEFTOVER_AGE` seconds
    and no build holds. ``dry_run`` removes nothing. Returns what went (or would go), versions
    first. A store that does not exist has nothing to prune."""
    keep = check_keep(keep)
    bentos = _bentos_dir(store)
    wanted = [_prune_name(name) for name in names]
    if not bentos.is_dir():
        return []
    known = _names(bentos)
    for name in wanted:
        if name not in known:
            raise BentoNotFoundError(
                f"no bento named {name!r} in {bentos}{did_you_mean(name, known)}",
                field="name",
                hint=f"known bentos: {', '.join(known)}" if known else "the store is empty",
            )
    removed: list[Removed] = []
    for name in dict.fromkeys(wanted) or known:
        name_dir = bentos / name
        for version in _newest_first(name_dir, _versions(name_dir))[keep:]:
            path = name_dir / version
            removed.append(Removed(path, _tree_size(path), name, version))
            if not dry_run:
                _remove_version(path)
    dirs = [bentos / n for n in wanted] if wanted else [bentos, *_visible_dirs(bentos)]
    for leftover in _leftovers(dirs):
        removed.append(Removed(leftover, _tree_size(leftover)))
        if not dry_run:
            _remove_leftover(leftover)
    return removed


def _prune_name(text: str) -> str:
    name, version = parse_tag(text)
    if ":" in text:
        raise ConfigError(
            f"{text!r}: prune takes bento names, not versions",
            field="name",
            hint=f"to delete one version: python -m pipeline bento delete {name}:"
            f"{version or 'VERSION'}",
        )
    return name


def _visible_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _remove_version(path: Path) -> None:
    """Rename ``path`` to a hidden sibling and remove it, holding it all along (a concurrent
    prune leaves it to this call), then point ``latest`` elsewhere if it named it."""
    name_dir = path.parent
    tag = f"{name_dir.name}:{path.name}"
    hidden = name_dir / f"{_TMP_PREFIX}delete-{path.name}-{secrets.token_hex(4)}"
    symlink = path.is_symlink()  # then the store's entry goes, never what it points at
    with contextlib.ExitStack() as held:
        try:
            if not symlink:
                held.enter_context(_in_use(path))
            os.rename(path, hidden)
        except FileNotFoundError as exc:
            raise BentoNotFoundError(f"bento {tag} is gone (deleted meanwhile?)") from exc
        except OSError as exc:
            raise PipelineError(f"cannot delete {tag} ({path}): {exc}") from exc
        try:
            if symlink:
                hidden.unlink()
            else:
                shutil.rmtree(hidden)
        except OSError as exc:
            warnings.warn(
                f"{tag} is deleted, but some of its files are left in {hidden} ({exc}); "
                "`python -m pipeline bento prune` removes them once they are an hour old",
                PipelineWarning,
                stacklevel=3,
            )
    _repoint_latest(name_dir)
    if not _versions(name_dir):
        _remove_if_empty(name_dir)


def _repoint_latest(name_dir: Path) -> None:
    versions = _versions(name_dir)
    latest = name_dir / LATEST_FILE
    if not versions:
        latest.unlink(missing_ok=True)
        return
    recorded = _recorded_latest(name_dir)
    if recorded is not None and recorded not in versions:
        _write_latest(name_dir, _newest_first(name_dir, versions)[0])


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: a build in progress, or not ours
        directory.rmdir()


def _leftovers(dirs: Iterable[Path]) -> list[Path]:
    """The ``.tmp-*`` entries of ``dirs`` that are stale: nothing in them changed for
    :data:`LEFTOVER_AGE` seconds and no build or delete holds them."""
    now = time.time()
    found: list[Path] = []
    for directory in dirs:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(_TMP_PREFIX):
                continue
            if now - _last_change(entry) > LEFTOVER_AGE and not _held(entry):
                found.append(entry)
    return found


def _last_change(path: Path) -> float:
    """The newest mtime in ``path`` (itself and, for a directory, everything below it)."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return time.time()
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(root, entry)).st_mtime)
    return newest


def _held(path: Path) -> bool:
    """Whether a build or delete holds ``path`` (see :func:`_in_use`)."""
    if path.is_symlink() or not path.is_dir():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _remove_leftover(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    if path.parent.name != "bentos" and not _versions(path.parent):
        (path.parent / LATEST_FILE).unlink(missing_ok=True)
        _remove_if_empty(path.parent)


def _tree_size(path: Path) -> int:
    """Bytes of the files in ``path`` (symlinks not followed)."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(OSError):
            return path.lstat().st_size
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


# --- presentation ----------------------------------------------------------------------------


def bento_to_dict(bento: Bento) -> dict[str, Any]:
    """A JSON/YAML-friendly view of a bento (what ``bento get -o json|yaml`` prints)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    data = attrs.asdict(bento, recurse=True)
    data = {"tag": bento.tag, **data}
    return {k: plain(v) for k, v in data.items()}
