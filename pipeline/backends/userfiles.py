"""The user's own ``--iidfile`` and ``--metadata-file``, honoured beside the executor's.

Executors pass a private ``--iidfile`` (and ``--metadata-file``) of their own to learn the
image id and digest. A user asking for the same files (``BuildRequest.iidfile`` /
``metadata_file``, or BentoML-style ``--opt iidfile=FILE``) must not end up with two
``--iidfile`` flags on the command line: :func:`absorb_file_opts` moves such ``--opt`` values
into the request fields, and :func:`write_user_files` writes the result there after a
successful build: the image id (or, for a pushed-only image, the digest) into the iidfile;
the engine's own metadata JSON into the metadata file, or where the engine (or its CLI
version) has no ``--metadata-file``, the BuildKit keys we know (``containerimage.config.
digest``, ``containerimage.digest``, ``image.name``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from attrs import evolve

from pipeline.errors import ConfigError, PipelineWarning
from pipeline.paths import user_path
from pipeline.request import BuildRequest, BuildResult

_FILE_OPTS = {
    "iidfile": "iidfile",
    "metadata-file": "metadata_file",
    "metadata_file": "metadata_file",
}


def absorb_file_opts(request: BuildRequest) -> BuildRequest:
    """``--opt iidfile=F`` / ``--opt metadata-file=F`` -> the request's fields (pure)."""
    found: dict[str, Any] = {}
    rest: list[tuple[str, str | None]] = []
    for key, value in request.opts:
        name = _FILE_OPTS.get(key.lstrip("-"))
        if name is None:
            rest.append((key, value))
            continue
        flag = "--" + name.replace("_", "-")
        if not value:
            raise ConfigError(f"--opt {key} needs a file ({key}=FILE)", field=flag)
        found[name] = user_path(value, field=flag)
    if not found:
        return request
    for name, path in found.items():
        given = getattr(request, name)
        if given is not None and Path(given) != path:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(
                f"{flag} is given twice: {str(given)!r} and --opt {str(path)!r}", field=flag
            )
    opts: Any = tuple(rest)  # attrs' tuple converter confuses mypy
    return evolve(request, opts=opts, **found)


def check_user_files(request: BuildRequest) -> None:
    """Refuse, before building, a file that could not be written afterwards."""
    for flag, path in (("--iidfile", request.iidfile), ("--metadata-file", request.metadata_file)):
        if path is None:
            continue
        parent = Path(path).absolute().parent
        if not parent.is_dir():
            raise ConfigError(
                f"cannot write {str(path)!r}: directory {str(parent)!r} does not exist",
                field=flag,
            )
        if Path(path).is_dir():
            raise ConfigError(f"{str(path)!r} is a directory, not a file", field=flag)


def metadata_from_result(result: BuildResult) -> dict[str, str]:
    """BuildKit's metadata keys for what the result knows (nothing invented)."""
    data: dict[str, str] = {}
    if result.image_id:
        data["containerimage.config.digest"] = result.image_id
    if result.digest:
        data["containerimage.digest"] = result.digest
    if result.tags:
        data["image.name"] = ",".join(result.tags)
    return data


def write_user_files(
    request: BuildRequest, result: BuildResult, *, engine_metadata: Path | None = None
) -> None:
    """Write the user's iidfile / metadata file after a successful build."""
    if request.iidfile is not None:
        value = result.image_id or result.digest
        if value is None:
            warnings.warn(
                f"--iidfile {str(request.iidfile)!r}: {result.backend} reported no image id "
                "or digest for this build, so the file was not written",
                PipelineWarning,
                stacklevel=2,
            )
        else:
            _write(request.iidfile, value, "--iidfile")
    if request.metadata_file is not None:
        text = None
        if engine_metadata is not None:
            try:
                text = engine_metadata.read_text()
            except OSError:
                text = None
        if not text:
            text = json.dumps(metadata_from_result(result), indent=2) + "\n"
        _write(request.metadata_file, text, "--metadata-file")


def _write(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror}", field=flag) from None
