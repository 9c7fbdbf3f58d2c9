"""Bentos on disk: locate them, build them from projects, list the store.

The store is BentoML-compatible: ``$BENTOML_HOME/bentos/<name>/<version>/`` (``$BENTOML_HOME``
defaults to ``~/bentoml``) with a ``latest`` file per name holding the newest version. Builds are
all-or-nothing: everything is written into a hidden temporary directory inside the store and
renamed into place at the end, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
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
_TMP_PREFIX = ".tmp-"

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


def new_version() -> str:
    """A short lowercase base32 id: 6 bytes of milliseconds then 4 random bytes (16 chars).

    Time first, so versions built later sort later; random tail, so parallel builds differ.
    """
    millis = int(time.time() * 1000).to_bytes(6, "big")
    raw = millis + secrets.token_bytes(4)
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")


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
    ref: str | os.PathLike[str], *, store: Path | None = None, check: BentoCheck | None = None
) -> Bento:
    """A bento from a bento dir, a project dir (built into the store first) or a store tag.

    ``check`` only runs for a project: see :func:`build_bento`.
    """
    text = os.fspath(ref)
    path = user_path(text, field="bento")
    if kind_of(path) == "file" and path.name in (BENTO_YAML, BENTOFILE, PYPROJECT):
        path = path.parent
    if kind_of(path) == "dir":
        if (path / BENTO_YAML).is_file():
            return load_bento_yaml(path / BENTO_YAML)
        if build_file(path) is not None:
            return build_bento(path, store=store, check=check)
        raise BentoNotFoundError(
            f"{path} is neither a bento (no {BENTO_YAML}) nor a project (no {BENTOFILE}, "
            f"no [tool.bentoml.build] in {PYPROJECT})"
        )
    if _looks_like_path(text):
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


def _looks_like_path(text: str) -> bool:
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
    bentos = _bentos_dir(store)
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
    return load_bento_yaml(name_dir / version / BENTO_YAML)


def _latest_version(name_dir: Path, versions: list[str]) -> str:
    latest = name_dir / LATEST_FILE
    if latest.is_file():
        recorded = latest.read_text(encoding="utf-8").strip()
        if recorded in versions:
            return recorded

    # No (valid) `latest` file: the newest by creation_time, as BentoML does.
    def created(version: str) -> tuple[float, str]:
        try:
            bento = load_bento_yaml(name_dir / version / BENTO_YAML)
        except PipelineError:
            return (float("-inf"), version)
        return (_created(bento, float("-inf")), version)

    return max(versions, key=created)


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
    version: str,
    files: list[tuple[str, Path]],
    user_lines: list[str],
    pin: requirements.BentomlPin | None,
) -> None:
    src_root = dest / "src"
    src_root.mkdir(parents=True)
    for rel, real in files:
        _copy_file(real, src_root / rel)

    created = datetime.now(timezone.utc)
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
    readme = _readme(spec, name, version)
    (dest / "README.md").write_text(readme, encoding="utf-8")
    data = _bento_yaml_data(spec, name, version, created, pin)
    data["services"] = service_entries(real for _rel, real in files)
    (dest / BENTO_YAML).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


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
) -> Bento:
    """Build the project's ``bentofile.yaml`` into the store and return the new bento.

    Like ``bentoml build``: the service module must be among the included files; when the
    service needs BentoML, ``bentoml==<version>`` is added (``bentoml_version``, else
    ``$PIPELINE_BENTOML_VERSION``, else the installed bentoml's, else
    :data:`pipeline.requirements.DEFAULT_BENTOML_VERSION`); the requirements are locked with uv
    into ``env/python/requirements.txt`` unless ``python.lock_packages`` is false, and
    ``env/python/requirements.in`` keeps what was asked for.

    All-or-nothing: validation happens first, files go to a temporary directory inside the
    store, which is renamed to ``bentos/<name>/<version>`` only when complete. ``check`` runs on
    the complete bento while it is still in that temporary directory; when it raises, nothing is
    stored, and errors and warnings naming the bento's copy of the user's template name the
    user's file instead.
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
    if version is None:
        version = new_version()
    else:
        version = check_tag_part(version, "bento version", field="--version")
    # Fail on bad files/symlinks and a service the files do not have before anything is created.
    files = select_files(spec)
    check_service(spec.service, files, bentofile=spec.path)
    user_lines = _user_requirements(spec)
    pin = _bentoml_pin(spec, files, user_lines, bentoml_version)
    if spec.description and spec.description.startswith("file:"):
        _readme(spec, name, version)
    if spec.docker.dockerfile_template:
        template = spec.project_dir / spec.docker.dockerfile_template
        with template_errors(template):
            make_environment().parse(read_template(template), filename=str(template))

    bentos = _bentos_dir(store)
    name_dir = bentos / name
    final = name_dir / version
    if final.exists():
        raise ConfigError(
            f"bento {name}:{version} already exists in the store ({final})", field="--version"
        )
    try:
        created = make_dirs(name_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{version}-", dir=name_dir))
    except OSError as exc:
        raise PipelineError(f"cannot write to the store {bentos}: {exc}") from exc
    try:
        _write_bento(spec, tmp, name, version, files, user_lines, pin)
        _run_check(check, spec, tmp)
        tmp.chmod(0o755)
        os.rename(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_created(created)
        if isinstance(exc, OSError):
            raise PipelineError(
                f"building {name}:{version} failed, nothing was written: {exc}"
            ) from exc
        raise
    _write_latest(name_dir, version)
    return _load_built(final)


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
    tmp = name_dir / f"{_TMP_PREFIX}latest-{secrets.token_hex(4)}"
    tmp.write_text(version, encoding="utf-8")
    os.replace(tmp, name_dir / LATEST_FILE)


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
