"""Which of BentoML's containerize options each engine honours: a table, and the check.

``BuildRequest`` carries BentoML's ``--network``, ``--pull``, ``--ssh``, ``--add-host``,
``--iidfile``, ``--metadata-file``, ``-q/--quiet`` and ``--run-as-root``. Each engine maps the
ones it has onto its own command line (see the engine modules); :func:`check_request` refuses,
before anything is built (and for ``--dry-run``), an option the chosen engine lacks, naming it
by its CLI flag and listing the engines that have it.

Some options are ours to honour on every external engine: ``--iidfile``/``--metadata-file``
are written by the executor from the result (:mod:`pipeline.backends.userfiles`), ``--quiet``
keeps engine output off the terminal (the CLI prints only the id), ``--run-as-root`` runs the
engine's commands through ``sudo -E`` (as they are when we are root already).
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.errors import ConfigError, allowed
from pipeline.request import BuildRequest

#: BuildRequest field -> the CLI flag users know it by (BentoML's spelling).
FLAGS: Mapping[str, str] = {
    "network": "--network",
    "pull": "--pull",
    "ssh": "--ssh",
    "add_hosts": "--add-host",
    "iidfile": "--iidfile",
    "metadata_file": "--metadata-file",
    "quiet": "--quiet",
    "run_as_root": "--run-as-root",
}

_EVERY = frozenset(FLAGS)

#: Engine -> the fields it honours. Plugins (registered backends) are not listed: they get
#: these options as keyword arguments and refuse the ones their construct_build_args lacks.
SUPPORT: Mapping[str, frozenset[str]] = {
    "docker": _EVERY,  # --ssh needs BuildKit: the classic builder refuses it
    "buildx": _EVERY,
    "podman": _EVERY,
    "buildah": _EVERY,
    "nerdctl": _EVERY - {"add_hosts"},  # nerdctl build has no --add-host
    "buildctl": _EVERY,  # network/add-host/pull as dockerfile frontend --opt values
    # Dagger's dockerBuild takes none of network/pull/add-host; --ssh and sudo are not wired
    "dagger": frozenset({"iidfile", "metadata_file", "quiet"}),
}


def requested_fields(request: BuildRequest) -> list[str]:
    """The BentoML options this request sets (``--network default`` is the engine default)."""
    found = []
    if request.network is not None and request.network != "default":
        found.append("network")
    for name in ("pull", "ssh", "add_hosts", "iidfile", "metadata_file", "quiet", "run_as_root"):
        if getattr(request, name):
            found.append(name)
    return found


def check_request(request: BuildRequest, backend: str | None) -> None:
    """ConfigError (exit 2) for an option ``backend`` does not have; plugins (``None`` or a
    name not in :data:`SUPPORT`) pass through."""
    supported = None if backend is None else SUPPORT.get(backend)
    if supported is None:
        return
    for name in requested_fields(request):
        if name in supported:
            continue
        flag = FLAGS[name]
        having = [engine for engine, fields in SUPPORT.items() if name in fields]
        raise ConfigError(
            f"the {backend} backend has no {flag}; backends that have it: {allowed(having)}",
            field=flag,
        )
