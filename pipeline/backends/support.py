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
from pipeline.options import ENGINE_ORDER, ENGINES, option
from pipeline.request import BuildRequest

#: BentoML's containerize options: BuildRequest field -> the CLI flag users know it by.
_BENTOML = ("network", "pull", "ssh", "add_hosts", "iidfile", "metadata_file", "quiet",
            "run_as_root")  # fmt: skip
FLAGS: Mapping[str, str] = {name: option(name).flag for name in _BENTOML}

#: Engine -> the fields it honours, from each option's declared engines
#: (:data:`pipeline.options.OPTIONS`; docker's classic builder refuses --ssh itself).
#: Plugins (registered backends) are not listed: they get these options as keyword arguments
#: and refuse the ones their construct_build_args lacks.
SUPPORT: Mapping[str, frozenset[str]] = {
    engine: frozenset(name for name in _BENTOML if engine in (option(name).engines or ENGINES))
    for engine in ENGINE_ORDER
}


def requested_fields(request: BuildRequest) -> list[str]:
    """The BentoML options this request sets (``--network default`` is the engine default)."""
    found = []
    if request.network is not None and request.network != "default":
        found.append("network")
    for name in _BENTOML[1:]:
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
