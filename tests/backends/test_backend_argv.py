"""Pure argv construction for every built-in engine (no engine needed).

nerdctl and buildctl are not installable here, so their argv is checked against the flags their
documentation lists (nerdctl docs/command-reference.md `nerdctl build`; BuildKit README
`buildctl build`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.backends import buildah, buildctl, buildx, docker, nerdctl, podman
from pipeline.backends.base import native_platform
from pipeline.backends.executor import ExternalExecutor
from pipeline.errors import BackendError
from pipeline.request import BuildRequest, SecretSpec

CTX = Path("/tmp/ctx")


def full_request(**overrides: object) -> BuildRequest:
    values: dict[str, object] = dict(
        context=CTX,
        tags=("hello:1", "reg.local:5000/hello:latest"),
        platforms=("linux/amd64",),
        secrets=(SecretSpec(id="aws", src=Path("/run/creds")), SecretSpec(id="tok", env="TOKEN")),
        build_args={"A": "1", "B": "x y"},
        target="base",
        cache_from=("reg/app:cache",),
        cache_to=("type=inline",),
        labels={"team": "ml"},
        no_cache=True,
        progress="plain",
        opts=(("network", "host"), ("pull", None)),
    )
    values.update(overrides)
    return BuildRequest(**values)  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_docker_full_argv_is_exact() -> None:
    argv = docker.construct_build_args(full_request(), iidfile="/tmp/iid")
    assert argv == [
        "docker", "build",
        "--file", "/tmp/ctx/Dockerfile",
        "--tag", "hello:1", "--tag", "reg.local:5000/hello:latest",
        "--platform", "linux/amd64",
        "--secret", "id=aws,src=/run/creds", "--secret", "id=tok,env=TOKEN",
        "--build-arg", "A=1", "--build-arg", "B=x y",
        "--target", "base",
        "--cache-from", "reg/app:cache",
        "--cache-to", "type=inline",
        "--label", "team=ml",
        "--no-cache",
        "--progress=plain",
        "--iidfile", "/tmp/iid",
        "--network=host", "--pull",
        "/tmp/ctx",
    ]  # fmt: skip


def test_argv_never_contains_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "s3cr3t-value")
    for module in (docker, buildx, nerdctl, buildctl):
        argv = module.construct_build_args(full_request())  # type: ignore[attr-defined]
        assert not any("s3cr3t" in a for a in argv), module.__name__


def test_docker_minimal_argv() -> None:
    argv = docker.construct_build_args(BuildRequest(context=CTX, tags=("a:b",)))
    assert argv == [
        "docker", "build", "--file", "/tmp/ctx/Dockerfile", "--tag", "a:b",
        "--progress=plain", "/tmp/ctx",
    ]  # fmt: skip


def test_docker_push_load_output() -> None:
    assert "--push" in docker.construct_build_args(BuildRequest(context=CTX, push=True))
    assert "--load" in docker.construct_build_args(BuildRequest(context=CTX, load=True))
    argv = docker.construct_build_args(BuildRequest(context=CTX, output="type=local,dest=o"))
    assert pairs(argv, "--output") == ["type=local,dest=o"]


def test_docker_tty_progress_passed_through() -> None:
    argv = docker.construct_build_args(BuildRequest(context=CTX, progress="tty"))
    assert "--progress=tty" in argv
    argv = docker.construct_build_args(BuildRequest(context=CTX, progress="quiet"))
    assert "--progress=plain" in argv


def test_docker_classic_refuses_buildkit_only_options() -> None:
    plain = docker.construct_classic_build_args(BuildRequest(context=CTX, tags=("a",)))
    assert plain == [
        "docker", "build", "--file", "/tmp/ctx/Dockerfile", "--tag", "a", "--force-rm", "/tmp/ctx",
    ]  # fmt: skip
    with pytest.raises(BackendError, match="secrets need BuildKit"):
        docker.construct_classic_build_args(
            BuildRequest(context=CTX, secrets=(SecretSpec(id="a", src=Path("/f")),))
        )
    with pytest.raises(BackendError, match="--cache-to"):
        docker.construct_classic_build_args(BuildRequest(context=CTX, cache_to=("x",)))
    with pytest.raises(BackendError, match="one platform"):
        docker.construct_classic_build_args(
            BuildRequest(context=CTX, platforms=("linux/amd64", "linux/arm64"))
        )
    assert docker.CLASSIC.env == {"DOCKER_BUILDKIT": "0"}
    assert docker.SPEC.env == {"DOCKER_BUILDKIT": "1"}


def test_buildx_loads_single_platform_local_builds_only() -> None:
    argv = buildx.construct_build_args(BuildRequest(context=CTX, tags=("a",)))
    assert argv[:3] == ["docker", "buildx", "build"]
    assert "--load" in argv
    multi = buildx.construct_build_args(
        BuildRequest(context=CTX, platforms=("linux/amd64", "linux/arm64"), push=True)
    )
    assert "--load" not in multi and "--push" in multi
    assert pairs(multi, "--platform") == ["linux/amd64,linux/arm64"]
    exported = buildx.construct_build_args(BuildRequest(context=CTX, output="type=oci,dest=x"))
    assert "--load" not in exported


def test_podman_argv() -> None:
    argv = podman.construct_build_args(full_request(secrets=()), iidfile="/i")
    assert argv[:2] == ["podman", "build"]
    assert pairs(argv, "--tag") == ["hello:1", "reg.local:5000/hello:latest"]
    assert pairs(argv, "--cache-from") == ["reg/app:cache"]
    assert pairs(argv, "--cache-to") == ["type=inline"]
    assert pairs(argv, "--build-arg") == ["A=1", "B=x y"]
    assert pairs(argv, "--target") == ["base"]
    assert pairs(argv, "--label") == ["team=ml"]
    assert "--layers" in argv and "--no-cache" in argv
    assert pairs(argv, "--iidfile") == ["/i"]
    assert argv[argv.index("--network=host") : argv.index("--network=host") + 2] == [
        "--network=host",
        "--pull",
    ]
    assert not any(a.startswith("--progress") for a in argv)  # podman has no --progress
    assert argv[-1] == "/tmp/ctx"


@pytest.mark.parametrize("module", [podman, buildah])
def test_containers_engines_are_told_this_machines_platform(module: object) -> None:
    """containers-storage keeps one image per name: without --platform, a base image an arm64
    build left under its name would be used for a native build."""
    build = module.construct_build_args  # type: ignore[attr-defined]
    assert pairs(build(BuildRequest(context=CTX)), "--platform") == [native_platform()]
    chosen = BuildRequest(context=CTX, platforms=("linux/arm64",))
    assert pairs(build(chosen), "--platform") == ["linux/arm64"]
    own = build(BuildRequest(context=CTX, opts=(("platform", "linux/s390x"),)))
    assert pairs(own, "--platform") == [] and "--platform=linux/s390x" in own


@pytest.mark.parametrize("module", [docker, buildx, podman, buildah, nerdctl, buildctl])
def test_opt_with_a_value_is_one_argv_item(module: object) -> None:
    """``--opt pull=never`` is ``--pull=never``: as two items podman reads ``--pull`` (its
    optional value defaulting to true) and then ``never`` as the build context."""
    request = BuildRequest(
        context=CTX, tags=("a:1",), opts=(("pull", "never"), ("no_cache", None), ("x", "a=b"))
    )
    argv = module.construct_build_args(request)  # type: ignore[attr-defined]
    tail = argv[-3:] if module is buildctl else argv[-4:-1]  # the others end with the context
    assert tail == ["--pull=never", "--no-cache", "--x=a=b"]
    assert "never" not in argv and "--pull" not in argv


def test_podman_secrets_are_files_only() -> None:
    argv = podman.construct_build_args(
        BuildRequest(context=CTX, secrets=(SecretSpec(id="a", src=Path("/f")),))
    )
    assert pairs(argv, "--secret") == ["id=a,src=/f"]
    with pytest.raises(BackendError, match="temp file"):
        podman.construct_build_args(
            BuildRequest(context=CTX, secrets=(SecretSpec(id="a", env="X"),))
        )
    assert podman.SPEC.secret_env is False


def test_podman_multi_platform_uses_a_manifest_list_and_push_command() -> None:
    request = BuildRequest(
        context=CTX, tags=("r/app:1", "r/app:latest"), platforms=("linux/amd64", "linux/arm64")
    )
    argv = podman.construct_build_args(request, iidfile="/iid")
    assert "--iidfile" not in argv  # buildah: one image id file cannot hold several images
    assert pairs(argv, "--manifest") == ["r/app:1"]
    assert pairs(argv, "--tag") == ["r/app:latest"]
    assert podman.push_args("podman", request) == [
        ["podman", "manifest", "push", "--all", "r/app:1", "docker://r/app:1"],
        ["podman", "push", "r/app:latest"],
    ]
    with pytest.raises(BackendError, match="needs a --tag"):
        podman.construct_build_args(
            BuildRequest(context=CTX, platforms=("linux/amd64", "linux/arm64"))
        )


def test_podman_refuses_several_cache_sources() -> None:
    with pytest.raises(BackendError, match="single --cache-from"):
        podman.construct_build_args(BuildRequest(context=CTX, cache_from=("a", "b")))


def test_buildah_argv_and_env() -> None:
    argv = buildah.construct_build_args(BuildRequest(context=CTX, tags=("a:1",), target="t"))
    assert argv[:2] == ["buildah", "build"]
    assert pairs(argv, "--target") == ["t"]
    assert buildah.SPEC.env == {"BUILDAH_FORMAT": "oci", "DOCKER_BUILDKIT": "0"}
    assert buildah.SPEC.push_commands is not None and buildah.SPEC.run_command == "podman"


# nerdctl build: flags from docs/command-reference.md
NERDCTL_DOCUMENTED = {
    "--tag", "--file", "--target", "--build-arg", "--no-cache", "--output", "--progress",
    "--secret", "--cache-from", "--cache-to", "--platform", "--iidfile", "--label",
}  # fmt: skip


def test_nerdctl_uses_only_documented_flags() -> None:
    argv = nerdctl.construct_build_args(
        full_request(opts=(), output="type=local,dest=o"), iidfile="/i"
    )
    assert argv[:2] == ["nerdctl", "build"]
    flags = {a.split("=")[0] for a in argv if a.startswith("--")}
    assert flags <= NERDCTL_DOCUMENTED, flags - NERDCTL_DOCUMENTED
    assert pairs(argv, "--secret") == ["id=aws,src=/run/creds", "id=tok,env=TOKEN"]
    assert argv[-1] == "/tmp/ctx"


def test_nerdctl_pushes_with_a_separate_command() -> None:
    argv = nerdctl.construct_build_args(BuildRequest(context=CTX, tags=("a",), push=True))
    assert "--push" not in argv  # nerdctl build has no --push
    executor = ExternalExecutor(nerdctl.SPEC)
    one = BuildRequest(context=CTX, tags=("r/a:1", "r/a:latest"), push=True)
    # `nerdctl push` has no --digestfile and nerdctl no `manifest push` (command reference)
    assert executor.push_commands(one, digestfile="/d") == [
        ["nerdctl", "push", "r/a:1"],
        ["nerdctl", "push", "r/a:latest"],
    ]
    both = BuildRequest(
        context=CTX, tags=("r/a:1",), push=True, platforms=("linux/amd64", "linux/arm64")
    )
    assert executor.push_commands(both, digestfile="/d") == [
        ["nerdctl", "push", "--all-platforms", "r/a:1"]
    ]


def test_buildctl_argv_follows_the_buildkit_readme() -> None:
    argv = buildctl.construct_build_args(
        full_request(
            tags=("r/app:1",), push=True, opts=(), platforms=("linux/amd64", "linux/arm64")
        )
    )
    assert argv[:4] == ["buildctl", "build", "--frontend", "dockerfile.v0"]
    assert pairs(argv, "--local") == ["context=/tmp/ctx", "dockerfile=/tmp/ctx"]
    assert pairs(argv, "--opt") == [
        "filename=Dockerfile",
        "platform=linux/amd64,linux/arm64",
        "target=base",
        "build-arg:A=1",
        "build-arg:B=x y",
        "label:team=ml",
    ]
    assert pairs(argv, "--secret") == ["id=aws,src=/run/creds", "id=tok,env=TOKEN"]
    assert pairs(argv, "--import-cache") == ["type=registry,ref=reg/app:cache"]
    assert pairs(argv, "--export-cache") == ["type=inline"]
    assert pairs(argv, "--output") == ["type=image,name=r/app:1,push=true"]
    assert "--no-cache" in argv and "--progress=plain" in argv


def test_buildctl_several_tags_are_quoted_csv() -> None:
    argv = buildctl.construct_build_args(BuildRequest(context=CTX, tags=("a:1", "a:2")))
    assert pairs(argv, "--output") == ['type=image,"name=a:1,a:2"']
    none = buildctl.construct_build_args(BuildRequest(context=CTX))
    assert "--output" not in none


def test_buildctl_health_explains_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    health = buildctl.health()
    assert not health.ok and "buildctl is not installed" in health.reason
    assert not nerdctl.health().ok and "nerdctl is not installed" in nerdctl.health().reason


def test_buildctl_without_buildkitd_says_how_to_connect(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "buildctl"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    health = buildctl.health()
    assert not health.ok
    assert "buildkitd" in health.reason and "BUILDKIT_HOST" in health.reason
    assert "docker-container://buildkitd" in health.reason


def test_buildctl_worker_platforms_are_parsed() -> None:
    output = (
        "ID:\tabc\nPlatforms:\tlinux/amd64,linux/amd64/v2,linux/arm64\n"
        "GC Policy:\n\tAll:\tfalse\nID:\tdef\nPlatforms:\tlinux/arm64,linux/riscv64\n"
    )
    assert buildctl.worker_platforms(output) == (
        "linux/amd64",
        "linux/amd64/v2",
        "linux/arm64",
        "linux/riscv64",
    )


def test_digest_files() -> None:
    request = BuildRequest(context=CTX, tags=("r/a:1", "r/a:2"), push=True)
    argv = docker.construct_build_args(request, metadata_file="/m.json")
    assert pairs(argv, "--metadata-file") == ["/m.json"]
    assert pairs(buildx.construct_build_args(request, metadata_file="/m"), "--metadata-file") == [
        "/m"
    ]
    assert podman.push_args("buildah", request, digestfile="/d") == [
        ["buildah", "push", "--digestfile", "/d", "r/a:1"],
        ["buildah", "push", "r/a:2"],
    ]
    assert buildctl.construct_build_args(request, metadata_file="/m")[-2:] == [
        "--metadata-file",
        "/m",
    ]


def test_run_hint_only_where_the_image_lands_in_a_local_store() -> None:
    assert ExternalExecutor(docker.SPEC).run_hint("a:1") == (
        "docker run --rm -p 127.0.0.1:3000:3000 a:1"
    )
    assert ExternalExecutor(buildah.SPEC).run_hint("a:1") == (
        "podman run --rm -p 127.0.0.1:3000:3000 a:1"
    )
    # buildctl leaves the image in buildkitd: there is nothing local to run
    assert ExternalExecutor(buildctl.SPEC).run_hint("a:1") is None


@pytest.mark.parametrize("module", [podman, buildah], ids=["podman", "buildah"])
def test_a_multi_platform_build_drops_an_older_manifest_list_of_its_name_first(
    module: object,
) -> None:
    # `--manifest NAME` adds to an existing list: a rebuild would give four entries for two
    request = BuildRequest(
        context=CTX, tags=("r/app:1", "r/app:2"), platforms=("linux/amd64", "linux/arm64")
    )
    spec = module.SPEC  # type: ignore[attr-defined]
    executor = ExternalExecutor(spec)
    assert executor.prepare_commands(request) == [[spec.binary, "manifest", "rm", "r/app:1"]]
    assert executor.dry_run(request).splitlines()[0] == f"{spec.binary} manifest rm r/app:1 || true"
    # one platform: no list, nothing to drop
    single = BuildRequest(context=CTX, tags=("r/app:1",), platforms=("linux/amd64",))
    assert executor.prepare_commands(single) == []
