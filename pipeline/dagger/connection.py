"""Getting a Dagger session: attach to a running one, or start one through the ``dagger`` CLI.

Order (first match wins):

1. ``DAGGER_SESSION_PORT`` + ``DAGGER_SESSION_TOKEN`` (set by ``dagger run`` and in modules);
2. ``_EXPERIMENTAL_DAGGER_CLI_BIN``;
3. ``dagger`` on ``PATH`` (the SDK itself never looks there);
4. the CLI the SDK downloaded earlier (``$XDG_CACHE_HOME/dagger/dagger-<version>``);
5. the SDK's download from dl.dagger.io - only when a quick probe shows it is reachable (and
   ``PIPELINE_DAGGER_DOWNLOAD`` is not ``0``: set that on air-gapped machines).

When none works the user gets a :class:`~pipeline.errors.BackendError` within seconds that says
why and names the other backends, instead of the SDK retrying a download for minutes.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from pipeline.errors import BackendError

if TYPE_CHECKING:
    import dagger

# The SDK is imported only once a session is really wanted: importing it takes about a second,
# and the no-session error should come before that.
try:
    CLI_VERSION = importlib.metadata.version("dagger-io")  # the SDK pins its CLI to this
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - broken install
    CLI_VERSION = "0.21.11"

#: Backends to suggest when Dagger is not usable (kept in sync with pipeline/backends by hand:
#: importing the registry here would make an error message depend on plugin loading).
OTHER_BACKENDS: tuple[str, ...] = ("docker", "buildx", "podman", "buildah", "nerdctl", "buildctl")

CLI_ENV = "_EXPERIMENTAL_DAGGER_CLI_BIN"
DOWNLOAD_ENV = "PIPELINE_DAGGER_DOWNLOAD"
PORT_ENV = "DAGGER_SESSION_PORT"
TOKEN_ENV = "DAGGER_SESSION_TOKEN"

#: Seconds the download probe may take before we call dl.dagger.io unreachable.
PROBE_TIMEOUT = 3.0
#: Seconds to establish the HTTP connection to an existing session.
CONNECT_TIMEOUT = 5.0

_DOWNLOAD_URL = "https://dl.dagger.io/dagger/releases/{version}/checksums.txt"


def _hint() -> str:
    return (
        "install the dagger CLI (https://docs.dagger.io/install) or run under `dagger run`; "
        f"or build with another backend: --backend {' | '.join(OTHER_BACKENDS)} "
        "(`python -m pipeline backends` lists what this machine has)"
    )


def sdk_cache_cli(version: str = CLI_VERSION) -> Path:
    """Where the SDK keeps the CLI it downloads (same rule as ``dagger.provisioning``)."""
    env = os.environ.get("XDG_CACHE_HOME", "").strip()
    if env:
        base = Path(env).expanduser()
    else:
        import platformdirs

        base = platformdirs.user_cache_path()
    return base / "dagger" / f"dagger-{version}"


def find_cli() -> str | None:
    """The ``dagger`` CLI to start a session with, or ``None`` (see the module docstring)."""
    explicit = os.environ.get(CLI_ENV)
    if explicit:
        return explicit
    on_path = shutil.which("dagger")
    if on_path:
        return on_path
    cached = sdk_cache_cli()
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    return None


def attached() -> bool:
    """True when the environment points at a running session (``dagger run``, module runtime)."""
    return bool(os.environ.get(PORT_ENV))


async def download_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the SDK could download its CLI (one HEAD request, bounded by ``timeout``)."""
    import httpx

    url = _DOWNLOAD_URL.format(version=CLI_VERSION)

    def probe() -> bool:
        try:
            response = httpx.head(url, timeout=timeout, follow_redirects=True)
        except (httpx.HTTPError, OSError):
            return False
        return response.status_code < 400

    # DNS resolution can block past httpx's timeout: abandon the thread instead of waiting.
    with anyio.move_on_after(timeout + 0.5):
        return await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    return False


async def ensure_available() -> str | None:
    """Check a session can be had, fast. Returns the CLI to start (``None`` when attaching or
    when the SDK will download it); raises :class:`BackendError` otherwise."""
    if attached():
        if not os.environ.get(TOKEN_ENV):
            raise BackendError(
                f"{PORT_ENV} is set but {TOKEN_ENV} is not: both come from `dagger run`",
                field=TOKEN_ENV,
                hint=_hint(),
            )
        try:
            int(os.environ[PORT_ENV])
        except ValueError:
            raise BackendError(
                f"{PORT_ENV}={os.environ[PORT_ENV]!r} is not a port number",
                field=PORT_ENV,
                hint=_hint(),
            ) from None
        return None
    cli = find_cli()
    if cli is not None:
        if not (Path(cli).is_file() and os.access(cli, os.X_OK)):
            raise BackendError(
                f"the dagger CLI {cli!r} does not exist or is not executable",
                field=CLI_ENV if os.environ.get(CLI_ENV) else None,
                hint=_hint(),
            )
        return cli
    if os.environ.get(DOWNLOAD_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        why = f"downloads are disabled by {DOWNLOAD_ENV}={os.environ[DOWNLOAD_ENV]}"
    elif await download_reachable():
        return None  # the SDK downloads dagger-<version> into its cache
    else:
        why = "dl.dagger.io is unreachable"
    raise BackendError(
        "the dagger backend needs a Dagger engine session, and there is none: no "
        f"{PORT_ENV}/{TOKEN_ENV}, no `dagger` CLI on PATH or in {CLI_ENV}, and the SDK cannot "
        f"download dagger {CLI_VERSION} ({why})",
        hint=_hint(),
    )


@contextlib.contextmanager
def _cli_env(cli: str | None) -> Iterator[None]:
    """Point the SDK at ``cli`` for the duration of provisioning."""
    if cli is None or os.environ.get(CLI_ENV) == cli:
        yield
        return
    previous = os.environ.get(CLI_ENV)
    os.environ[CLI_ENV] = cli
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CLI_ENV, None)
        else:
            os.environ[CLI_ENV] = previous


_quiet_users = 0
_quiet_saved_level = logging.NOTSET


@contextlib.contextmanager
def quiet_transport_logs() -> Iterator[None]:
    """Keep gql's request/response debug logs off: request bodies carry secret plaintext.

    Counted, so overlapping sessions (concurrent builds in one process) restore the level only
    when the last one ends.
    """
    global _quiet_users, _quiet_saved_level
    logger = logging.getLogger("gql")
    if _quiet_users == 0:
        _quiet_saved_level = logger.level
        logger.setLevel(max(logger.level, logging.WARNING))
    _quiet_users += 1
    try:
        yield
    finally:
        _quiet_users -= 1
        if _quiet_users == 0:
            logger.setLevel(_quiet_saved_level)


@contextlib.asynccontextmanager
async def session(*, log_output: TextIO | None = sys.stderr) -> AsyncIterator[dagger.Client]:
    """A connected client of its own for the duration of the block.

    Each build gets an isolated connection (``dagger.Connection``), not the SDK's process-wide
    ``dagger.dag``: concurrent builds in one process must not close each other's session, and
    a failed connection must not stick to the next one. ``log_output`` receives the engine's
    progress when we start the session ourselves. Connection problems become
    :class:`BackendError`; errors from inside the block propagate.
    """
    cli = await ensure_available()
    import dagger

    config = dagger.Config(
        timeout=dagger.Timeout(None, connect=CONNECT_TIMEOUT),
        retry=None,
        log_output=None if attached() else log_output,
    )
    with quiet_transport_logs():
        async with contextlib.AsyncExitStack() as stack:
            try:
                with _cli_env(cli):  # read by the SDK while it provisions, not later
                    client = await stack.enter_async_context(dagger.Connection(config))
            except (dagger.ProvisionError, dagger.ClientConnectionError) as exc:
                where = (
                    f"the session at 127.0.0.1:{os.environ[PORT_ENV]} ({PORT_ENV})"
                    if attached()
                    else f"a session started with {cli or 'the downloaded dagger CLI'}"
                )
                raise BackendError(
                    f"cannot connect to {where}: {_first_line(str(exc))}", hint=_hint()
                ) from None
            yield client


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no details"
