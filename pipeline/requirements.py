"""A project's Python requirements, stored the way ``bentoml build`` stores them.

A bento keeps two files under ``env/python/``:

- ``requirements.in``: what the user asked for (``python.requirements_txt``, else
  ``python.packages``, after the index options), plus ``bentoml==<version>`` when the service
  needs BentoML;
- ``requirements.txt``: the same, locked by ``uv pip compile`` (every package pinned, the index
  URL on top) unless ``python.lock_packages`` is false, when it is a copy of the ``.in`` file.

and, when locked, ``build-from-source.txt`` (:data:`SOURCE_BUILDS_PATH`): the locked
requirements that have no wheel, one per line, empty when every one has.

The pure parts (composing the text, deciding the pin, the uv argv) are plain functions; only
:func:`lock` and :func:`source_builds` run a process.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from attrs import frozen

from pipeline.backends.process import ProbeResult, probe
from pipeline.config import Bento, PythonOptions
from pipeline.diskcache import JsonCache, digest
from pipeline.errors import ConfigError, PipelineError
from pipeline.pins import is_requirement
from pipeline.pins import mentions_bentoml as mentions_bentoml
from pipeline.pins import names_bentoml_by_url as names_bentoml_by_url
from pipeline.pins import pinned_bentoml_version as pinned_bentoml_version
from pipeline.services import python_trees

#: the bentoml version pinned when none is installed beside us and none is asked for
DEFAULT_BENTOML_VERSION = "1.4.40"
#: the environment variable that chooses the pinned bentoml version
BENTOML_VERSION_ENV = "PIPELINE_BENTOML_VERSION"

_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([.-]?(a|b|rc|post|dev)[0-9]*)*(\+[A-Za-z0-9.]+)?$")


@frozen
class BentomlPin:
    """The ``bentoml==X`` line added to a bento, and where its version came from."""

    version: str
    source: str  # "--bentoml-version", "$PIPELINE_BENTOML_VERSION", "installed", "default"

    @property
    def requirement(self) -> str:
        return f"bentoml=={self.version}"


def check_bentoml_version(version: str, *, option: str) -> str:
    version = version.strip()
    if not _VERSION.match(version):
        raise ConfigError(
            f"{version!r} is not a bentoml version (expected e.g. '{DEFAULT_BENTOML_VERSION}')",
            field=option,
        )
    return version


def installed_bentoml_version() -> str | None:
    """The version of a bentoml distribution installed beside this tool (never imported)."""
    try:
        return importlib.metadata.version("bentoml")
    except importlib.metadata.PackageNotFoundError:
        return None


def choose_bentoml_pin(explicit: str | None = None) -> BentomlPin:
    """``explicit`` (``bento build --bentoml-version``), else ``$PIPELINE_BENTOML_VERSION``, else
    the bentoml installed in this environment (as ``bentoml build`` pins its own version), else
    :data:`DEFAULT_BENTOML_VERSION`."""
    if explicit:
        return BentomlPin(
            check_bentoml_version(explicit, option="--bentoml-version"), "--bentoml-version"
        )
    from_env = os.environ.get(BENTOML_VERSION_ENV, "").strip()
    if from_env:
        return BentomlPin(
            check_bentoml_version(from_env, option=f"${BENTOML_VERSION_ENV}"),
            f"${BENTOML_VERSION_ENV}",
        )
    installed = installed_bentoml_version()
    if installed:
        return BentomlPin(installed, "installed")
    return BentomlPin(DEFAULT_BENTOML_VERSION, "default")


def _imports_bentoml(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        if any(module.split(".")[0] == "bentoml" for module in modules):
            return True
    return False


def imports_bentoml(files: Iterable[Path]) -> bool:
    """Whether any of the Python ``files`` imports bentoml (files that do not parse are skipped:
    the service check reports a broken service module on its own)."""
    return any(_imports_bentoml(tree) for tree in python_trees(files))


def index_lines(python: PythonOptions) -> list[str]:
    """The index options as requirement-file lines (what uv locks against and emits)."""
    lines: list[str] = []
    if python.index_url:
        lines.append(f"--index-url {python.index_url}")
    if python.no_index:
        lines.append("--no-index")
    lines += [f"--trusted-host {host}" for host in python.trusted_host]
    lines += [f"--extra-index-url {url}" for url in python.extra_index_url]
    lines += [f"--find-links {link}" for link in python.find_links]
    return lines


def requirements_in(
    user_lines: Sequence[str], python: PythonOptions, pin: BentomlPin | None
) -> str:
    """The ``requirements.in`` text: index options, the user's lines, then the bentoml pin."""
    lines = [*index_lines(python), *user_lines]
    if pin is not None and not names_bentoml_by_url(user_lines):
        lines.append(pin.requirement)
    return "\n".join(lines) + "\n" if lines else ""


def has_requirements(text: str) -> bool:
    return any(is_requirement(line) for line in text.splitlines())


def find_uv() -> str:
    """The uv binary: the one installed with this package (the ``uv`` wheel), else on PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        found = None
    else:
        try:
            found = find_uv_bin()
        except FileNotFoundError:
            found = None
    found = found or shutil.which("uv")
    if not found:
        raise PipelineError(
            "uv is needed to lock python requirements but was not found",
            field="python.lock_packages",
            hint="pip install uv, or set python.lock_packages: false in bentofile.yaml",
        )
    return str(found)


def lock_argv(uv: str, source: Path, dest: Path, python_version: str | None) -> list[str]:
    """``uv pip compile``: a universal lock (valid on every platform the bento may be built for)
    for the bento's Python, with the index options it used written on top."""
    argv = [
        uv,
        "pip",
        "compile",
        str(source),
        f"--output-file={dest}",
        "--universal",
        "--no-header",
        "--no-annotate",
        "--emit-index-url",
        "--emit-find-links",
        "--quiet",
    ]
    if python_version:
        argv.append(f"--python-version={python_version}")
    return argv


# written by `bento build` beside the lock: one locked requirement per line that has no wheel
SOURCE_BUILDS_PATH = Path("env/python/build-from-source.txt")
LOCKED_PATH = Path("env/python/requirements.txt")


def lock(
    source: Path, dest: Path, *, python_version: str | None, cwd: Path, bentofile: Path
) -> tuple[str, ...]:
    """Lock ``source`` into ``dest`` with uv; a failure names the bentofile and how to opt out.

    Returns the locked requirements that have no wheel (the image build builds them from
    source, so the build stage installs its compilers up front, as a cached layer): the lock
    is resolved again with wheels only, pinned to what was locked."""
    uv = find_uv()
    done = _run_uv(lock_argv(uv, source, dest, python_version), cwd)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise ConfigError(
            f"locking the python requirements with uv failed:\n{tail}",
            file=bentofile,
            field="python",
            hint="fix the requirement, or keep them as given with python.lock_packages: false",
        )
    wheels_only = _run_uv(_wheels_only_argv(uv, dest, python_version), cwd)
    if wheels_only.returncode == 0:
        return ()
    names = _WHEELS_REQUIRED.findall(wheels_only.stderr or "")
    return tuple(dict.fromkeys(names)) or ("(unknown: the lock needs building from source)",)


def _wheels_only_argv(uv: str, locked: Path, python_version: str | None) -> list[str]:
    argv = [uv, "pip", "compile", str(locked), "--universal", "--no-build", "--quiet"]
    if python_version:
        argv.append(f"--python-version={python_version}")
    return argv


# `name[extras]==1.2.3`, with markers, hashes and a comment allowed
_PINNED = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[^\s;,#]+"
    r"\s*(;[^#]*?)?(\s+--hash=\S+)*\s*(#.*)?$"
)
# the only options a lock may carry: where its packages come from
_INDEX_OPTIONS = frozenset(
    {"--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--no-index", "--trusted-host"}
)


def is_locked(text: str) -> bool:
    """Whether a requirements text pins every requirement to one version (and includes
    nothing else: no ``-r``, ``-e``, paths or URLs)."""
    pinned = 0
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if re.split(r"[=\s]", line, maxsplit=1)[0] not in _INDEX_OPTIONS:
                return False
            continue
        if not _PINNED.match(line):
            return False
        pinned += 1
    return pinned > 0


_CHECKED = JsonCache("source-builds", entries=256)
# what changes where uv looks for packages besides the file itself
_INDEX_ENV = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_EXTRA_INDEX_URL",
              "UV_FIND_LINKS", "UV_NO_INDEX", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")  # fmt: skip
_CHECK_TIMEOUT = 60.0


def bento_source_builds(bento: Bento) -> tuple[str, ...]:
    """:func:`source_builds` of ``bento`` for its Python version (what the renderer is told:
    ``RenderOptions.source_builds``)."""
    return source_builds(bento.path, python_version=bento.docker.python_version)


def source_builds(bento_dir: Path, *, python_version: str | None) -> tuple[str, ...]:
    """The locked requirements of a stored bento that have no wheel, so its image build builds
    them from source (and the build stage installs its compilers first, as a cached layer).

    The record ``bento build`` wrote, else (a bento BentoML stored, or an older one of ours) a
    wheels-only ``uv pip compile`` of its lock on this machine, cached on disk by the lock's
    content, the Python version and the index settings. Empty when every requirement has a
    wheel, and when that cannot be known here (no lock, no uv, no index): the build then
    finds out itself, with a wheels-only attempt before the compilers.
    """
    record = bento_dir / SOURCE_BUILDS_PATH
    if record.is_file():
        return tuple(record.read_text(encoding="utf-8", errors="replace").split())
    try:
        text = (bento_dir / LOCKED_PATH).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    if not is_locked(text):
        return ()
    env = sorted((name, os.environ[name]) for name in _INDEX_ENV if name in os.environ)
    key = digest([1, text, python_version, env])
    known = _CHECKED.get(key)
    if isinstance(known, list) and all(isinstance(name, str) for name in known):
        return tuple(known)
    try:
        uv = find_uv()
    except PipelineError:
        return ()
    argv = _wheels_only_argv(uv, bento_dir / LOCKED_PATH, python_version)
    done = probe(argv, cwd=bento_dir, timeout=_CHECK_TIMEOUT)
    if done.returncode is None:  # uv did not start, or did not finish in time
        return ()
    if done.returncode == 0:
        names: tuple[str, ...] = ()
    else:
        names = tuple(dict.fromkeys(_WHEELS_REQUIRED.findall(done.stderr or "")))
        if not names:
            return ()  # failed for another reason (offline, a bad pin): unknown, not cached
    _CHECKED.put(key, list(names))
    return names


# uv's hint when --no-build cannot be satisfied: "Wheels are required for `netifaces` because ..."
_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([^`]+)`")


def _run_uv(argv: Sequence[str], cwd: Path) -> ProbeResult:
    done = probe(argv, cwd=cwd, timeout=None)
    if done.returncode is None:  # no timeout: uv could not start (stderr says why)
        raise PipelineError(f"cannot run uv to lock python requirements: {done.stderr}")
    return done
