"""A project built into the store (:func:`build_bento`), as ``bentoml build`` does.

Builds are all-or-nothing: everything is written into a hidden temporary directory inside the
store and renamed into place at the end, so a failed build leaves nothing behind. A build without
an explicit version is content-addressed: its version is a digest of what the bento holds
(:func:`pipeline.bentocontent.content_version`), so an unchanged project is stored once.
"""

from __future__ import annotations

import errno
import filecmp
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import attrs
import yaml

from pipeline._fs import make_dirs, remove_created
from pipeline.bentocontent import bentoml_pin, readme_text, user_requirements, write_bento
from pipeline.config import Bento, BentofileSpec
from pipeline.errors import BentoNotFoundError, ConfigError, PipelineError, PipelineWarning
from pipeline.fieldpaths import PYPROJECT, locate_field
from pipeline.loader import BENTO_DOCKERFILE_TEMPLATE, load_bento_yaml, load_bentofile
from pipeline.paths import user_path
from pipeline.projectfiles import BENTOFILE, build_file, select_files
from pipeline.service_check import check_service, discover_service
from pipeline.store import (
    BENTO_YAML,
    LATEST_FILE,
    TMP_PREFIX,
    bentos_dir,
    check_tag_part,
    in_use,
    stage_latest,
)
from render.environment import make_environment, read_template, template_errors

# Called on a freshly built bento before it enters the store (e.g. rendering its Dockerfile);
# raising a PipelineError aborts the build with nothing stored.
BentoCheck = Callable[[Bento], object]


def _snake_case(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return name.strip("._-").lower()


def default_bento_name(service: str) -> str:
    """BentoML 1.2+ names a bento after its service class: ``service:MyService`` -> my_service."""
    module, _, attr = service.partition(":")
    base = attr or Path(module).stem
    return _snake_case(base.split(".")[-1]) or "bento"


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
    (:func:`pipeline.bentocontent.content_version`): when the store already holds that version,
    nothing is stored again; ``latest`` names it and the stored bento is returned (also when a
    concurrent build of the same content stored it first). An explicit ``version`` that exists is
    an error.

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
    user_lines = user_requirements(spec)
    pin = bentoml_pin(spec, files, user_lines, bentoml_version)
    if spec.description and spec.description.startswith("file:"):
        readme_text(spec, name, version or "")
    if spec.docker.dockerfile_template:
        template = spec.project_dir / spec.docker.dockerfile_template
        with template_errors(template):
            make_environment().parse(read_template(template), filename=str(template))

    bentos = bentos_dir(store)
    name_dir = bentos / name
    if version is not None and (name_dir / version).exists():
        raise _exists_error(name, version, name_dir / version)
    try:
        created = make_dirs(name_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}build-", dir=name_dir))
    except OSError as exc:
        raise PipelineError(f"cannot write to the store {bentos}: {exc}") from exc
    explicit = version is not None
    latest: Path | None = None
    try:
        with in_use(tmp):
            version = write_bento(spec, tmp, name, version, files, user_lines, pin, creation_time)
            _run_check(check, spec, tmp)
            tmp.chmod(0o755)
            # the new `latest` is written before the bento moves in: a disk that is full fails
            # the build with nothing stored, never a stored bento that `latest` misses
            latest = stage_latest(name_dir, version)
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
