"""The interface every executor implements: external-engine backends and the Dagger pipeline.

An executor receives one :class:`~pipeline.request.BuildRequest` and returns one
:class:`~pipeline.request.BuildResult`. It never re-parses bento config: everything it needs is
in the request. ``on_output`` receives engine output line by line (already secret-free) for live
progress; executors also keep the last lines for error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from pipeline.request import BuildRequest, BuildResult

OutputSink = Callable[[str], None]


@runtime_checkable
class Executor(Protocol):
    name: str

    async def build(
        self, request: BuildRequest, *, on_output: OutputSink | None = None
    ) -> BuildResult: ...

    def dry_run(self, request: BuildRequest) -> str:
        """What :meth:`build` would run (argv or API operations), as printable text."""
        ...

    def check(self, request: BuildRequest, *, thorough: bool = True) -> object:
        """Refuse what this engine cannot build here (a BackendError/ConfigError, exit 2):
        ``thorough`` checks everything a real build would find out (``--dry-run``)."""
        ...
