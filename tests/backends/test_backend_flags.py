"""Optional build flags are probed per engine binary, and argv falls back when one is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.backends import docker, flags, podman
from pipeline.backends.executor import ExternalExecutor
from pipeline.backends.flags import BuildFlags, parse_help, probe_build_flags
from pipeline.errors import BackendError
from pipeline.request import BuildRequest

CTX = Path("/tmp/ctx")

# `docker build --help` of Debian 12's docker.io 20.10 CLI (trimmed)
DOCKER_20_HELP = """
Usage:  docker build [OPTIONS] PATH | URL | -

Options:
      --add-host list           Add a custom host-to-IP mapping (host:ip)
      --build-arg list          Set build-time variables
      --cache-from strings      Images to consider as cache sources
  -f, --file string             Name of the Dockerfile (Default is
                                'PATH/Dockerfile')
      --iidfile string          Write the image ID to the file
      --label list              Set metadata for an image
      --network string          Set the networking mode for the RUN
                                instructions during build (default "default")
      --no-cache                Do not use cache when building the image
  -o, --output stringArray      Output destination (format:
                                type=local,dest=path)
      --platform string         Set platform if server is multi-platform
      --progress string         Set type of progress output (auto, plain,
                                tty). Use plain to show container output
      --pull                    Always attempt to pull a newer version of
  -q, --quiet                   Suppress the build output and print image
      --secret stringArray      Secret file to expose to the build (only
                                if BuildKit enabled):
                                id=mysecret,src=/local/secret
      --ssh stringArray         SSH agent socket or keys to expose to the
  -t, --tag list                Name and optionally a tag in the
      --target string           Set the target build stage to build.
"""
DOCKER_20 = BuildFlags(parse_help(DOCKER_20_HELP), "/usr/bin/docker")


def test_help_flags_are_parsed_without_continuation_lines() -> None:
    names = parse_help(DOCKER_20_HELP)
    assert {"--iidfile", "--quiet", "--file", "--tag", "--secret", "--ssh"} <= names
    assert "--metadata-file" not in names and "--push" not in names
    # `id=mysecret,src=...` and `'PATH/Dockerfile')` continuation lines are no flags
    assert all(name.startswith("--") for name in names) and len(names) == 17


def test_old_docker_cli_gets_no_flag_it_lacks() -> None:
    request = BuildRequest(context=CTX, tags=("r/a:1",), push=True, load=True)
    argv = docker.construct_build_args(
        request, iidfile="/i", metadata_file="/m.json", flags=DOCKER_20
    )
    assert "--metadata-file" not in argv and "--push" not in argv and "--load" not in argv
    assert argv[argv.index("--iidfile") + 1] == "/i"
    # ...and pushes afterwards with `docker push`
    assert docker.push_commands(request, None, flags=DOCKER_20) == [["docker", "push", "r/a:1"]]
    assert docker.push_commands(request, None) == []  # a CLI with `build --push`
    current = docker.construct_build_args(request, iidfile="/i", metadata_file="/m.json")
    assert "--metadata-file" in current and "--push" in current and "--load" in current


def test_old_docker_cli_refuses_what_has_no_fallback() -> None:
    with pytest.raises(BackendError) as info:
        docker.construct_build_args(
            BuildRequest(context=CTX, cache_to=("type=inline",)), flags=DOCKER_20
        )
    assert info.value.field == "--cache-to" and "/usr/bin/docker" in str(info.value)
    assert "buildx" in str(info.value)


def test_executor_passes_probed_flags_and_push_fallback() -> None:
    executor = ExternalExecutor(docker.SPEC)
    request = BuildRequest(context=CTX, tags=("r/a:1",), push=True)
    argv = executor.argv(request, iidfile="/i", metadata_file="/m", flags=DOCKER_20)
    assert "--metadata-file" not in argv and "--push" not in argv
    assert executor.push_commands(request, flags=DOCKER_20) == [["docker", "push", "r/a:1"]]
    # no --iidfile on the binary: the id is asked from the engine by tag
    no_iid = BuildFlags(DOCKER_20.names - {"--iidfile"} if DOCKER_20.names else None)
    assert executor._asks_for_image_id(BuildRequest(context=CTX, tags=("a:1",)), no_iid)
    assert not executor._asks_for_image_id(BuildRequest(context=CTX, tags=("a:1",)), DOCKER_20)
    assert docker.image_id_command("a:1") == [
        "docker",
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "a:1",
    ]


def test_podman_without_iidfile_flag() -> None:
    argv = podman.construct_build_args(
        BuildRequest(context=CTX), iidfile="/i", flags=BuildFlags(frozenset({"--file"}))
    )
    assert "--iidfile" not in argv


def _fake_engine(directory: Path, help_text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "docker"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{help_text}\nEOF\n")
    script.chmod(0o755)
    return script


def test_probe_is_per_binary_path_and_cached_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags.clear_cache()
    old = _fake_engine(tmp_path / "old", DOCKER_20_HELP)
    new = _fake_engine(tmp_path / "new", DOCKER_20_HELP + "      --metadata-file string   x\n")
    system = os.environ["PATH"]  # the fake engines run `cat`
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{new.parent}{os.pathsep}{system}")
    first = probe_build_flags(("docker", "build"))
    assert first.binary == str(old) and not first.has("--metadata-file")
    assert probe_build_flags(("docker", "build")) is first  # cached
    monkeypatch.setenv("PATH", f"{new.parent}{os.pathsep}{old.parent}{os.pathsep}{system}")
    assert probe_build_flags(("docker", "build")).has("--metadata-file")
    # an upgraded binary (new mtime) is probed again
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{system}")
    _fake_engine(old.parent, DOCKER_20_HELP + "      --push   x\n")
    stat = old.stat()
    os.utime(old, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert probe_build_flags(("docker", "build")).has("--push")
    flags.clear_cache()


def test_missing_binary_assumes_every_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert probe_build_flags(("docker", "build")) == flags.ALL
    assert flags.ALL.has("--anything")


@pytest.mark.skipif(
    not Path("/usr/bin/docker").is_file() or shutil.which("docker") == "/usr/bin/docker",
    reason="needs the distribution's docker CLI at /usr/bin/docker besides another one",
)
def test_the_distribution_docker_cli_is_probed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian 12's docker.io (20.10): the flags the bug was about are really absent there."""
    monkeypatch.setenv("PATH", f"/usr/bin{os.pathsep}{os.environ['PATH']}")
    probed = probe_build_flags(docker.BUILD_COMMAND, env=docker.ENV)
    assert probed.binary == "/usr/bin/docker"
    assert probed.has("--iidfile") and probed.has("--secret")
    argv = ExternalExecutor(docker.SPEC).argv(
        BuildRequest(context=CTX), iidfile="/i", metadata_file="/m", flags=probed
    )
    assert ("--metadata-file" in argv) == probed.has("--metadata-file")
