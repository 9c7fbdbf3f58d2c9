"""Finding a Dagger session: attach, start through a CLI, or fail fast with a clear error."""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

import anyio
import pytest

from pipeline.dagger import connection
from pipeline.dagger.executor import DaggerExecutor
from pipeline.errors import BackendError
from pipeline.request import BuildRequest


@pytest.fixture
def request_(tmp_path: Path) -> BuildRequest:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return BuildRequest(context=tmp_path)


def test_no_session_no_cli_fails_fast_and_names_other_backends(
    no_dagger: None, request_: BuildRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(timeout: float = connection.PROBE_TIMEOUT) -> bool:
        return False

    monkeypatch.setattr(connection, "download_reachable", unreachable)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        anyio.run(DaggerExecutor(log_output=None).run, request_)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "no `dagger` CLI on PATH" in message
    assert "dl.dagger.io is unreachable" in message
    for other in ("docker", "buildx", "podman", "buildah"):
        assert other in message


def test_download_probe_is_bounded(no_dagger: None) -> None:
    # real network: on this machine dl.dagger.io is unreachable; elsewhere it may answer
    started = time.monotonic()
    anyio.run(connection.download_reachable)
    assert time.monotonic() - started < connection.PROBE_TIMEOUT + 1.5


def test_cli_on_path_is_used_and_sdk_gets_it(
    no_dagger: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = tmp_path / "bin" / "dagger"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\nexit 1\n")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{cli.parent}{os.pathsep}{os.environ['PATH']}")
    assert connection.find_cli() == str(cli)
    assert anyio.run(connection.ensure_available) == str(cli)


def test_failing_cli_session_is_a_backend_error(
    no_dagger: None, request_: BuildRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a `dagger` that exits at once, as when the engine cannot start
    cli = tmp_path / "dagger"
    cli.write_text("#!/bin/sh\necho 'engine: cannot start' >&2\nexit 1\n")
    cli.chmod(0o755)
    monkeypatch.setenv("_EXPERIMENTAL_DAGGER_CLI_BIN", str(cli))
    started = time.monotonic()
    with pytest.raises(BackendError, match="cannot connect to a session started with") as info:
        anyio.run(DaggerExecutor(log_output=None).run, request_)
    assert time.monotonic() - started < 5
    assert info.value.hint and "--backend" in info.value.hint


def test_missing_explicit_cli_is_a_backend_error(
    no_dagger: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("_EXPERIMENTAL_DAGGER_CLI_BIN", str(tmp_path / "nope"))
    with pytest.raises(BackendError, match="does not exist or is not executable"):
        anyio.run(connection.ensure_available)


def test_port_without_listener_fails_fast(
    no_dagger: None, request_: BuildRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DAGGER_SESSION_PORT", str(port))
    monkeypatch.setenv("DAGGER_SESSION_TOKEN", "t")
    started = time.monotonic()
    with pytest.raises(BackendError, match=f"127.0.0.1:{port}"):
        anyio.run(DaggerExecutor(log_output=None).run, request_)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("port", "token", "complaint"),
    [("1234", None, "DAGGER_SESSION_TOKEN is not"), ("http", "t", "is not a port number")],
)
def test_half_configured_session_env(
    no_dagger: None,
    monkeypatch: pytest.MonkeyPatch,
    port: str,
    token: str | None,
    complaint: str,
) -> None:
    monkeypatch.setenv("DAGGER_SESSION_PORT", port)
    if token:
        monkeypatch.setenv("DAGGER_SESSION_TOKEN", token)
    with pytest.raises(BackendError, match=complaint):
        anyio.run(connection.ensure_available)


def test_dagger_on_path_starts_a_session_the_sdk_uses(
    no_dagger: None,
    dagger_schema: str,
    request_: BuildRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole provisioning path with a stand-in `dagger` CLI on PATH: it answers `dagger
    session` like the real one (one JSON line with port and token, then waits for stdin to
    close), pointing at the contract server."""
    from dagger_contract import ContractServer

    with ContractServer(dagger_schema, token="cli-started-token") as server:
        calls = tmp_path / "calls"
        cli = tmp_path / "bin" / "dagger"
        cli.parent.mkdir()
        cli.write_text(
            "#!/bin/sh\n"
            f'echo "$@" > {calls}\n'
            'echo "engine: session started" >&2\n'
            f'echo \'{{"port": {server.port}, "session_token": "{server.token}"}}\'\n'
            "cat > /dev/null\n"
        )
        cli.chmod(0o755)
        monkeypatch.setenv("PATH", f"{cli.parent}{os.pathsep}{os.environ['PATH']}")
        engine_log = io.StringIO()

        anyio.run(DaggerExecutor(log_output=engine_log).run, request_)

        assert calls.read_text().startswith("session --label dagger.io/sdk.name:python")
        assert len(server.calls("dockerBuild")) == 1
        assert server.rejected() == []
    assert "engine: session started" in engine_log.getvalue()
    assert "_EXPERIMENTAL_DAGGER_CLI_BIN" not in os.environ  # restored after the build


def test_constants_match_the_sdk_and_the_backend_registry() -> None:
    from dagger._engine._version import CLI_VERSION as SDK_CLI_VERSION

    from pipeline.backends.registry import BUILTIN

    assert connection.CLI_VERSION == SDK_CLI_VERSION  # the CLI the SDK would download
    assert tuple(BUILTIN) == connection.OTHER_BACKENDS  # what the error message suggests
