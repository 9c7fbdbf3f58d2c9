"""BentoML's containerize options on every engine: argv per engine, the support table, the check."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from pipeline.backends import buildah, buildctl, buildx, docker, nerdctl, podman, registry
from pipeline.backends.executor import ExternalExecutor
from pipeline.backends.support import FLAGS, SUPPORT, check_request, requested_fields
from pipeline.errors import BackendError, ConfigError
from pipeline.request import BuildRequest

CTX = Path("/tmp/ctx")
OPTIONS = dict(
    network="host",
    pull=True,
    ssh=("default", "git=/home/u/.ssh/id_ed25519"),
    add_hosts=("myhost:10.1.2.3", "other:10.9.9.9"),
)


def request(**overrides: object) -> BuildRequest:
    return BuildRequest(context=CTX, tags=("a:1",), **{**OPTIONS, **overrides})  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


@pytest.mark.parametrize(
    ("module", "pull"),
    [(docker, "--pull"), (buildx, "--pull"), (podman, "--pull=always"), (buildah, "--pull=always")],
)
def test_docker_spelled_engines_take_every_option(module: object, pull: str) -> None:
    argv = module.construct_build_args(request())  # type: ignore[attr-defined]
    assert "--network=host" in argv
    assert pairs(argv, "--add-host") == ["myhost:10.1.2.3", "other:10.9.9.9"]
    assert pairs(argv, "--ssh") == ["default", "git=/home/u/.ssh/id_ed25519"]
    assert argv.count(pull) == 1 and argv[-1] == "/tmp/ctx"
    if pull != "--pull":
        # podman/buildah: a bare `--pull` is their default "pull if missing"
        assert "--pull" not in argv


def test_network_default_is_the_engines_default() -> None:
    for module in (docker, podman, buildctl):
        argv = module.construct_build_args(BuildRequest(context=CTX, network="default"))  # type: ignore[attr-defined]
        assert not any("network" in a for a in argv), module.__name__
    assert requested_fields(BuildRequest(context=CTX, network="default")) == []


def test_classic_docker_refuses_ssh_and_keeps_the_rest() -> None:
    argv = docker.construct_classic_build_args(request(ssh=()))
    assert "--network=host" in argv and "--pull" in argv
    assert pairs(argv, "--add-host") == ["myhost:10.1.2.3", "other:10.9.9.9"]
    with pytest.raises(BackendError) as info:
        docker.construct_classic_build_args(request())
    assert info.value.field == "--ssh" and "BuildKit" in str(info.value)


def test_nerdctl_spelling_and_its_missing_add_host() -> None:
    argv = nerdctl.construct_build_args(request(add_hosts=()))
    assert "--network=host" in argv and "--pull=true" in argv
    assert pairs(argv, "--ssh") == ["default", "git=/home/u/.ssh/id_ed25519"]
    with pytest.raises(BackendError, match="--add-host"):
        nerdctl.construct_build_args(request())


def test_buildctl_maps_options_to_frontend_opts() -> None:
    argv = buildctl.construct_build_args(request())
    assert pairs(argv, "--opt")[1:] == [
        "force-network-mode=host",
        "add-hosts=myhost=10.1.2.3,other=10.9.9.9",
        "image-resolve-mode=pull",
    ]
    assert pairs(argv, "--ssh") == ["default", "git=/home/u/.ssh/id_ed25519"]


def test_check_request_names_the_flag_and_the_engines_that_have_it() -> None:
    with pytest.raises(ConfigError) as info:
        check_request(BuildRequest(context=CTX, add_hosts=("h:1.2.3.4",)), "nerdctl")
    error = info.value
    assert error.field == "--add-host" and error.exit_code == 2
    assert "nerdctl backend has no --add-host" in str(error)
    assert "'docker', 'buildx', 'podman', 'buildah' or 'buildctl'" in str(error)
    with pytest.raises(ConfigError) as dagger:
        check_request(BuildRequest(context=CTX, ssh=("default",)), "dagger")
    assert dagger.value.field == "--ssh" and "'dagger'" not in str(dagger.value)
    # what every engine has passes; plugins decide themselves
    check_request(BuildRequest(context=CTX, quiet=True, iidfile=Path("/x")), "dagger")
    check_request(BuildRequest(context=CTX, ssh=("default",)), None)
    check_request(BuildRequest(context=CTX, ssh=("default",)), "my-plugin")


def test_the_table_covers_every_field_and_engine() -> None:
    assert set(FLAGS) == {
        "network", "pull", "ssh", "add_hosts", "iidfile", "metadata_file", "quiet", "run_as_root",
    }  # fmt: skip
    assert set(SUPPORT) == {*registry.BUILTIN, "dagger"}
    assert all(fields <= set(FLAGS) for fields in SUPPORT.values())


def test_dry_run_checks_the_options_too() -> None:
    with pytest.raises(ConfigError, match="--add-host"):
        ExternalExecutor(nerdctl.SPEC).dry_run(BuildRequest(context=CTX, add_hosts=("h:1.2.3.4",)))


def test_run_as_root_prefixes_every_engine_command(monkeypatch: pytest.MonkeyPatch) -> None:
    executor = ExternalExecutor(podman.SPEC)
    rooted = BuildRequest(context=CTX, tags=("r/a:1",), push=True, run_as_root=True)
    assert executor.root_prefix(rooted, euid=1000) == ["sudo", "-E"]
    assert executor.root_prefix(rooted, euid=0) == []  # already root: run as is
    assert executor.root_prefix(BuildRequest(context=CTX), euid=1000) == []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert executor.argv(rooted)[:4] == ["sudo", "-E", "podman", "build"]
    assert executor.push_commands(rooted) == [["sudo", "-E", "podman", "push", "r/a:1"]]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert executor.argv(rooted)[:2] == ["podman", "build"]


def test_run_as_root_without_sudo_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendError) as info:
        ExternalExecutor(docker.SPEC).dry_run(BuildRequest(context=CTX, run_as_root=True))
    assert info.value.field == "--run-as-root" and "sudo" in str(info.value)


def test_quiet_keeps_engine_output_to_the_error_tail(tmp_path: Path) -> None:
    script = tmp_path / "engine.sh"
    script.write_text('#!/bin/sh\necho "#1 [1/1] RUN make"\necho "engine says hi"\nexit 0\n')
    script.chmod(0o755)
    spec = registry.register_backend(
        "quiet-script",
        binary=str(script),
        buildkit_support=True,
        health=lambda: True,
        construct_build_args=lambda **o: [str(script)],
    )
    try:
        executor = ExternalExecutor(spec)
        lines: list[str] = []
        result = anyio.run(
            lambda: executor.run(BuildRequest(context=tmp_path, quiet=True), on_output=lines.append)
        )
        assert lines == [] and "engine says hi" in result.log_tail
        anyio.run(lambda: executor.run(BuildRequest(context=tmp_path), on_output=lines.append))
        assert "engine says hi" in lines
    finally:
        registry.unregister_backend("quiet-script")


def test_plugins_get_bentomls_option_names() -> None:
    options = registry.request_options(request(iidfile=Path("/i"), quiet=True))
    assert options["network"] == "host" and options["pull"] is True
    assert options["add_host"] == ("myhost:10.1.2.3", "other:10.9.9.9")
    assert options["ssh"] == ("default", "git=/home/u/.ssh/id_ed25519")
    assert options["iidfile"] == "/i" and options["quiet"] is True
    # a plugin without a `network` parameter refuses it instead of dropping it
    spec = registry.register_backend(
        "narrow-opts", binary="true", buildkit_support=True, health=lambda: True,
        construct_build_args=lambda context_path, tag=(): ["build", context_path],
    )  # fmt: skip
    try:
        with pytest.raises(BackendError, match="network"):
            ExternalExecutor(spec).argv(BuildRequest(context=CTX, network="host"))
    finally:
        registry.unregister_backend("narrow-opts")
