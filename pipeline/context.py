"""The build context on disk (effectful): the directory a builder gets.

:func:`write_context` assembles it all-or-nothing (the bento's files, ``Dockerfile``,
``env/docker/entrypoint.sh``); :func:`temporary_context` does so in a temporary directory
removed afterwards; :func:`check_output_dir` vets an ``export`` destination before anything is
built; :func:`build_env_secrets` writes the bento's build-stage envs as private secret files
(the context's copies of the bento's metadata carry no value).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pipeline._fs import make_dirs, remove_created
from pipeline.config import Bento
from pipeline.errors import ConfigError
from pipeline.paths import kind_of, user_path
from pipeline.rendering import (
    ENTRYPOINT_PATH,
    REQUIREMENTS_PATH,
    SETUP_SCRIPT_PATH,
    entrypoint_script,
    requirement_lines,
)
from pipeline.request import SecretSpec


def _copy_tree(
    source: Path, dest: Path, root: Path, parents: frozenset[Path] = frozenset()
) -> None:
    """Copy ``source`` into ``dest``, following symlinks that stay inside ``root`` (as files)
    and refusing any that leave it or loop: the context gets nothing from outside the bento."""
    here = source.resolve()
    if here in parents:
        raise ConfigError("symlink loop inside the bento; refusing to copy it", file=source)
    parents = parents | {here}
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        target = entry
        if entry.is_symlink():
            target = entry.resolve()
            if not target.is_relative_to(root):
                raise ConfigError(
                    f"symlink points outside the bento ({target}); refusing to copy it",
                    file=entry,
                )
        if target.is_dir():
            _copy_tree(target, dest / entry.name, root, parents)
        elif target.is_file():
            shutil.copy2(target, dest / entry.name)


def _copy_bento(bento: Bento, dest: Path) -> None:
    root = bento.path.resolve()
    _copy_tree(root, dest, root)


# -- build-stage envs: secrets for the build, no value in the context -----------------------------


@contextmanager
def build_env_secrets(
    bento: Bento, *, environ: dict[str, str] | None = None, skip: tuple[str, ...] = ()
) -> Iterator[tuple[SecretSpec, ...]]:
    """The build secrets for the bento's ``stage: build`` envs (except the ids in ``skip``,
    which the caller passes itself).

    As BentoML: the builder's environment variable ``NAME`` when it is set, else the entry's
    ``value``. A value is written to a 0600 file in a private temporary directory that is
    removed on exit; one from the environment is passed as ``env=NAME``. Neither is an error
    naming ``envs[i].value``.
    """
    env = os.environ if environ is None else environ
    private: Path | None = None
    secrets: list[SecretSpec] = []
    try:
        for index, item in enumerate(bento.envs):
            if item.stage != "build" or item.name in skip:
                continue
            if item.name in env:
                secrets.append(SecretSpec(id=item.name, env=item.name))
                continue
            if not item.value:
                raise ConfigError(
                    f"{item.name} has stage 'build' but no value, and the environment variable "
                    f"{item.name} is not set",
                    file=bento.bento_yaml,
                    field=f"envs[{index}].value",
                    hint=f"export {item.name}=... before building (it is passed as a build "
                    "secret, never stored in the image), or give the entry a value",
                )
            if private is None:
                private = Path(tempfile.mkdtemp(prefix="pipeline-envs-"))
            file = private / item.name
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(item.value)
            secrets.append(SecretSpec(id=item.name, src=file))
        yield tuple(secrets)
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _scrub_build_values(bento: Bento, dest: Path) -> None:
    """Drop build-stage values from the context's copies of the bento's metadata.

    ``bento.yaml`` (and the project's ``bentofile.yaml`` / ``pyproject.toml`` that ``src/``
    carries when they were included) are copied into the image by ``COPY . ./``; the values of
    build-stage envs must not be (BentoML's images carry them)."""
    values = {e.value for e in bento.build_envs if e.value}
    if not values:
        return
    names = {e.name for e in bento.build_envs}
    bento_yaml = dest / "bento.yaml"
    if bento_yaml.is_file():
        data = yaml.safe_load(bento_yaml.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            _drop_values(data, names)
            docker = data.get("docker")
            if isinstance(docker, dict) and isinstance(docker.get("env"), dict):
                docker["env"] = {k: v for k, v in docker["env"].items() if k not in names} or None
            bento_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    bentofile = dest / "src" / "bentofile.yaml"
    if bentofile.is_file():
        try:
            data = yaml.safe_load(bentofile.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and _drop_values(data, names):
            bentofile.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    pyproject = dest / "src" / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8")
        for value in values:
            # a TOML string holding the value, in either quoting: replaced by an empty one
            for literal in (json.dumps(value), f"'{value}'"):
                text = text.replace(literal, '""')
        pyproject.write_text(text, encoding="utf-8")


def _drop_values(data: dict[str, Any], names: set[str]) -> bool:
    """Remove ``value`` from the build-stage ``envs`` entries of ``data``; whether any was."""
    dropped = False
    for item in data.get("envs") or ():
        if isinstance(item, dict) and item.get("name") in names and item.get("stage") == "build":
            dropped = item.pop("value", None) is not None or dropped
    return dropped


def _fill_context(bento: Bento, dest: Path, dockerfile: str) -> None:
    _copy_bento(bento, dest)
    _scrub_build_values(bento, dest)
    requirements = dest / REQUIREMENTS_PATH
    if not requirements.is_file():
        requirements.parent.mkdir(parents=True, exist_ok=True)
        lines = requirement_lines(bento)
        requirements.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    script = bento.docker.setup_script
    if script:
        source = (bento.path / script).resolve()
        if not source.is_file() or not source.is_relative_to(bento.path.resolve()):
            raise ConfigError(
                "setup_script not found in the bento",
                file=bento.bento_yaml,
                field="docker.setup_script",
            )
        target = dest / SETUP_SCRIPT_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        if source != (bento.path / SETUP_SCRIPT_PATH).resolve():
            shutil.copy2(source, target)
        target.chmod(0o755)
    entrypoint = dest / ENTRYPOINT_PATH
    entrypoint.parent.mkdir(parents=True, exist_ok=True)
    entrypoint.write_text(entrypoint_script(), encoding="utf-8")
    entrypoint.chmod(0o755)
    (dest / "Dockerfile").write_text(dockerfile, encoding="utf-8")


def check_output_dir(dest: str | os.PathLike[str]) -> Path:
    """``dest`` as an absolute path, if :func:`write_context` may write there: it does not exist
    (nor as a dangling symlink) or is an empty directory, and the nearest existing directory
    above it is a writable directory. A ConfigError naming ``dest`` otherwise (exit 2)."""
    target = user_path(dest, field="--output").absolute()
    field = "-o/--output"
    if target.is_symlink() and not target.exists():
        raise ConfigError(
            "output path is a symlink to nothing; remove it or pass another",
            file=target,
            field=field,
        )
    kind = kind_of(target)
    if kind not in (None, "dir") or (kind is None and os.path.lexists(target)):
        raise ConfigError("output path exists and is not a directory", file=target, field=field)
    if kind == "dir":
        try:
            empty = not any(target.iterdir())
        except OSError as exc:
            raise ConfigError(
                f"cannot read the output directory: {exc.strerror}", file=target, field=field
            ) from None
        if not empty:
            raise ConfigError(
                "output directory is not empty; refusing to write into it",
                file=target,
                field=field,
                hint="pass a new or empty directory",
            )
    parent = target.parent
    while kind_of(parent) is None and parent != parent.parent:
        if os.path.lexists(parent):
            break
        parent = parent.parent
    if kind_of(parent) != "dir":
        raise ConfigError(
            f"cannot create the output directory: {str(parent)!r} is not a directory",
            file=target,
            field=field,
        )
    try:  # really try: permissions, read-only mounts and pseudo file systems all say no here
        Path(tempfile.mkdtemp(prefix=".pipeline-probe-", dir=parent)).rmdir()
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output directory in {str(parent)!r}: {exc.strerror or exc}",
            file=target,
            field=field,
        ) from None
    return target


def write_context(bento: Bento, dest: str | os.PathLike[str], dockerfile: str) -> Path:
    """Write a self-contained build context to ``dest`` (which must not exist or be empty):
    the bento's files, ``Dockerfile`` and ``env/docker/entrypoint.sh``. All or nothing: it is
    assembled in a sibling temporary directory and renamed into place."""
    target = check_output_dir(dest)
    try:
        created = make_dirs(target.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output directory: {exc.strerror or exc}", file=target
        ) from None
    try:
        _fill_context(bento, staging, dockerfile)
        staging.chmod(0o755)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        remove_created(created)
        if isinstance(exc, OSError):  # a full disk, a quota, a file that cannot be read
            raise _context_write_error(exc, target, staging) from None
        raise
    return target


def _context_write_error(exc: OSError, target: Path, staging: Path) -> ConfigError:
    """Why the context could not be written, naming the file it was at (exit 2)."""
    written = exc.filename2 or exc.filename  # a copy names its source first
    where = ""
    if written:
        path = Path(os.fsdecode(written))
        where = f" (at {path.relative_to(staging) if path.is_relative_to(staging) else path})"
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return ConfigError(
        f"cannot write the build context: {exc.strerror or exc}{where}; nothing was written",
        file=target,
        hint="free some space on that file system, or write somewhere else (export: -o DIR; "
        "a build's context: TMPDIR)"
        if full
        else None,
    )


@contextmanager
def temporary_context(bento: Bento, dockerfile: str) -> Iterator[Path]:
    """A build context in a temporary directory, removed on exit."""
    holder = Path(tempfile.mkdtemp(prefix="bento-context-"))
    try:
        yield write_context(bento, holder / "context", dockerfile)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


__all__ = [
    "build_env_secrets",
    "check_output_dir",
    "temporary_context",
    "write_context",
]
