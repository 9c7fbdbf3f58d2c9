"""Optional build flags are probed per engine binary, and argv falls back when one is missing."""

from __future__ import annotations

import json
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


def _counting_engine(directory: Path, help_text: str) -> tuple[Path, Path]:
    """A fake `docker` whose every run appends a line to ``calls``."""
    directory.mkdir(parents=True, exist_ok=True)
    calls = directory / "calls"
    script = directory / "docker"
    script.write_text(f"#!/bin/sh\necho run >> {calls}\ncat <<'EOF'\n{help_text}\nEOF\n")
    script.chmod(0o755)
    return script, calls


def _runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_probes_are_kept_on_disk_across_processes_until_an_input_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, calls = _counting_engine(tmp_path / "bin", DOCKER_20_HELP)
    config = tmp_path / "dockercfg"
    (config / "cli-plugins").mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    flags.clear_cache()
    assert probe_build_flags(("docker", "build")).has("--iidfile")
    assert _runs(calls) == 1
    flags.clear_cache()  # a new process: memory empty, disk kept
    assert probe_build_flags(("docker", "build")).has("--iidfile")
    assert _runs(calls) == 1
    # a buildx plugin appears in the CLI's plugin dir: `docker build` may now be buildx
    plugin = config / "cli-plugins" / "docker-buildx"
    plugin.write_text("#!/bin/sh\n")
    flags.clear_cache()
    probe_build_flags(("docker", "build"))
    assert _runs(calls) == 2
    # the CLI's config changes (aliases, plugin dirs)
    (config / "config.json").write_text('{"aliases": {"builder": "buildx"}}')
    flags.clear_cache()
    probe_build_flags(("docker", "build"))
    assert _runs(calls) == 3
    # another environment for the probe is another answer
    flags.clear_cache()
    probe_build_flags(("docker", "build"), env={"DOCKER_BUILDKIT": "0"})
    assert _runs(calls) == 4
    flags.clear_cache()


def test_an_unreadable_or_corrupt_disk_cache_costs_only_a_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, calls = _counting_engine(tmp_path / "bin", DOCKER_20_HELP)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "probes.json").write_text("{not json")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(cache))
    flags.clear_cache()
    assert probe_build_flags(("docker", "build")).has("--iidfile")
    assert json.loads((cache / "probes.json").read_text())  # replaced by a valid one
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(blocked / "cache"))
    flags.clear_cache()
    assert probe_build_flags(("docker", "build")).has("--iidfile")  # no error, just a probe
    assert _runs(calls) == 2
    flags.clear_cache()


def test_a_failed_probe_is_not_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "bin"
    directory.mkdir()
    script = directory / "docker"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{DOCKER_20_HELP}\nEOF\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    flags.clear_cache()
    probe_build_flags(("docker", "build"))
    assert not (tmp_path / "cache" / "probes.json").exists()
    flags.clear_cache()
