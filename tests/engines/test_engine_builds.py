"""Real engines: build the examples, run them, look inside the images (test bed engines).

Each test is marked with its engine; tests/conftest.py skips it (or fails it under CI=true) when
the engine is absent. Assertions are about the built image and the running container, not argv.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import urllib.request
from pathlib import Path

import anyio
import pytest
from enginekit import (
    DOCKER_CLIS,
    FAILING_STEP,
    HELLO,
    RUNNER,
    docker_containers_running,
    failing_project,
    history,
    image_exists,
    marked,
    pipeline_cli,
    project_with_step,
    remove_image,
    run_in_image,
    saved_image_contains,
    serve_and_get,
    sh,
    unique_tag,
    use_cli,
)

import pipeline
from pipeline.backends import flags, verify, workingcontainers
from pipeline.backends.base import native_platform
from pipeline.bento import build_bento
from pipeline.errors import BackendError, BuildError
from pipeline.graph import Stage, default_graph

ENGINES = [pytest.param(name, marks=getattr(pytest.mark, name)) for name in RUNNER]
# The core tests also run `docker` through the distribution's own CLI (Debian 12: docker.io
# 20.10, without `build --metadata-file`/`--push`/`--load`) when it is not the first on PATH.
CORE_ENGINES = [*ENGINES, *DOCKER_CLIS]


@pytest.fixture(autouse=True)
def _isolated(isolated_build_env: Path) -> Path:
    """Own store and own temp dir: afterwards the temp dir must be empty (no context left)."""
    return isolated_build_env


@pytest.mark.slow
@pytest.mark.parametrize("engine", CORE_ENGINES)
def test_hello_builds_runs_and_answers_http(
    engine: str, tags: list[tuple[str, str]], _isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = use_cli(engine, monkeypatch)
    runner, tag = RUNNER[engine], unique_tag(engine, "hello")
    tags.append((runner, tag))
    lines: list[str] = []
    result = pipeline.build(HELLO, backend=engine, tags=[tag], on_output=lines.append)
    assert result.backend == engine and result.tags == (tag,)
    assert result.image_id and result.image_id.startswith("sha256:")
    assert lines, "engine output was not streamed"
    assert image_exists(runner, tag)
    status, body = serve_and_get(runner, tag)
    assert status == 200
    assert '"message": "hello from bento-pipeline"' in body
    assert list(_isolated.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("engine", CORE_ENGINES)
def test_failing_build_leaves_no_tag_and_no_context(
    engine: str,
    tags: list[tuple[str, str]],
    tmp_path: Path,
    _isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = use_cli(engine, monkeypatch)
    runner, tag = RUNNER[engine], unique_tag(engine, "fails")
    tags.append((runner, tag))
    project = failing_project(tmp_path)
    build_ids: list[str] = []  # podman/buildah mark their working containers with it

    def new_build_id() -> str:
        build_ids.append(real_build_id())
        return build_ids[-1]

    real_build_id = workingcontainers.new_build_id
    monkeypatch.setattr(workingcontainers, "new_build_id", new_build_id)
    with pytest.raises(BuildError) as info:
        pipeline.build(project, backend=engine, tags=[tag], progress="plain", no_cache=True)
    # the failed step's container is not left behind (only this build's count: other builds
    # may run beside this one)
    if runner == "podman":
        assert len(build_ids) == 1 and marked(build_ids[0]) == []
    else:
        assert docker_containers_running(FAILING_STEP) == set()
    error = info.value
    assert error.backend == engine and error.exit_code == 1
    assert error.step is not None and "exit 3" in error.step
    assert error.origin is not None and "dockerfile_template" in error.origin
    assert error.output_tail
    assert not image_exists(runner, tag)
    assert list(_isolated.iterdir()) == []


@pytest.mark.docker
def test_platform_the_engine_cannot_build_is_refused_before_building() -> None:
    with pytest.raises(BackendError) as info:
        pipeline.build(HELLO, backend="docker", platforms=["linux/s390x"])
    text = str(info.value)
    assert "cannot build for linux/s390x" in text and "linux/amd64" in text
    assert info.value.exit_code == 2


@pytest.mark.docker
def test_docker_driver_refuses_a_multi_platform_image() -> None:
    with pytest.raises(BackendError, match="several platforms"):
        pipeline.build(HELLO, backend="docker", platforms=["linux/amd64", "linux/arm64"])


@pytest.mark.docker
@pytest.mark.slow
def test_classic_builder_builds_without_buildkit(
    tags: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = unique_tag("docker", "classic")
    tags.append(("docker", tag))
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    lines: list[str] = []
    pipeline.build(HELLO, backend="docker", tags=[tag], on_output=lines.append)
    assert any(line.startswith("Step 1/") for line in lines), "not the classic builder"
    assert serve_and_get("docker", tag)[0] == 200


@pytest.mark.docker
@pytest.mark.slow
def test_classic_builder_failure_leaves_no_container(
    tags: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The classic builder keeps a failed RUN's container unless told not to (--force-rm)."""
    tag = unique_tag("docker", "classic-fails")
    tags.append(("docker", tag))
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    with pytest.raises(BuildError):
        pipeline.build(failing_project(tmp_path), backend="docker", tags=[tag], no_cache=True)
    assert docker_containers_running(FAILING_STEP) == set(), "the failed step's container is left"
    assert not image_exists("docker", tag)


def _proxy_ca() -> Path | None:
    """The CA of a TLS-intercepting proxy, if this machine has one (else the test skips)."""
    configured = os.environ.get("PIPELINE_TEST_CA_CERT")
    candidates = [configured] if configured else []
    candidates += [
        "/usr/local/share/ca-certificates/sandboxing-egress-ca.crt",
        "/usr/local/share/ca-certificates/custom-ca.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_ca_cert_is_trusted_during_installs_and_not_shipped(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path, _isolated: Path
) -> None:
    cert = _proxy_ca()
    if cert is None:
        pytest.skip("no proxy CA certificate on this machine (set PIPELINE_TEST_CA_CERT)")
    runner, tag = RUNNER[engine], unique_tag(engine, "cacert")
    tags.append((runner, tag))
    project = tmp_path / "withdeps"
    project.mkdir()
    (project / "service.py").write_text("import six\nsvc = None\n")
    (project / "bentofile.yaml").write_text(
        'service: "service:svc"\nname: withdeps\ninclude: ["*.py"]\n'
        "python:\n  packages:\n    - six\n"
    )
    pipeline.build(project, backend=engine, tags=[tag], ca_cert=cert)
    # the package was downloaded through the proxy, trusting the cert...
    out = run_in_image(runner, tag, "/app/.venv/bin/python", "-c", "import six; print('ok')")
    assert out.strip() == "ok"
    # ...which is in no layer, no history entry and not at the secret's path
    body = [line for line in cert.read_text().splitlines() if line and "-----" not in line]
    needle = body[len(body) // 2].encode()
    # (the test bed's base image may trust the same CA already: only new files count)
    ours = _inner_paths(saved_image_contains(runner, tag, needle, tmp_path))
    base = _inner_paths(saved_image_contains(runner, "python:3.11-slim", needle, tmp_path))
    assert ours <= base, f"the CA cert landed in the image: {sorted(ours - base)}"
    assert needle.decode() not in history(runner, tag)
    check = "if test -e /run/secrets/ca_cert; then echo present; else echo absent; fi"
    assert run_in_image(runner, tag, "sh", "-c", check).strip() == "absent"
    assert list(_isolated.iterdir()) == []


def _inner_paths(hits: list[str]) -> set[str]:
    """File paths inside layers (``layer.tar!path`` -> ``path``)."""
    return {hit.split("!", 1)[1] for hit in hits if "!" in hit}


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.registry
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("podman", marks=pytest.mark.podman),
        pytest.param("buildah", marks=pytest.mark.buildah),
    ],
)
def test_multi_platform_manifest_list_is_pushed(
    engine: str, registry_url: str, _isolated: Path
) -> None:
    # the store holds only the amd64 base under its name, as after any native build: the arm64
    # entry must still be an arm64 image (buildah once reused the amd64 base for both)
    base = "docker.io/library/python:3.11-slim"
    sh("podman", "rmi", "-f", base, check=False)
    sh("podman", "pull", "-q", "--platform", "linux/amd64", base)
    name, version = f"pipeline-test-multi-{engine}", secrets.token_hex(4)
    tag = f"{registry_url}/{name}:{version}"
    try:
        for _ in range(2):  # a rebuild of the same tag: still one entry per platform
            result = pipeline.build(
                HELLO, backend=engine, tags=[tag], platforms="linux/amd64,linux/arm64", push=True
            )
        assert result.platforms == ("linux/amd64", "linux/arm64")
        assert result.verified == "registry"
        request = urllib.request.Request(
            f"http://{registry_url}/v2/{name}/manifests/{version}",
            headers={
                "Accept": "application/vnd.oci.image.index.v1+json, "
                "application/vnd.docker.distribution.manifest.list.v2+json"
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            index = json.loads(response.read())
            assert result.digest == response.headers["Docker-Content-Digest"]
        archs = sorted(m["platform"]["architecture"] for m in index["manifests"])
        assert archs == ["amd64", "arm64"]
        # the result names each platform's own manifest, as the registry's index does
        assert result.platform_digests == {
            f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
            for m in index["manifests"]
        }
        # each entry's binaries, read from the registry's layers, are of its architecture
        entries, _ = verify.registry_entries(tag)
        assert sorted((e.config, e.elf) for e in entries) == [
            ("linux/amd64", "linux/amd64"),
            ("linux/arm64", "linux/arm64"),
        ]
    finally:
        sh(RUNNER[engine], "manifest", "rm", tag, check=False)


@pytest.mark.docker
@pytest.mark.slow
def test_cli_json_result_and_summary_line(tmp_path: Path) -> None:
    tag = unique_tag("docker", "cli")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    try:
        done = pipeline_cli(
            "build", str(HELLO), "--backend", "docker", "-t", tag, "--output", "json", env=env
        )
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["tags"] == [tag] and data["backend"] == "docker"
        assert data["image_id"].startswith("sha256:")
        assert data["run"] == f"docker run --rm -p 127.0.0.1:3000:3000 {tag}"
        again = pipeline_cli(
            "build", str(HELLO), "--backend", "docker", "-t", tag, "--progress", "quiet", env=env
        )
        assert again.returncode == 0, again.stderr
        (line,) = again.stdout.splitlines()
        assert line.startswith(f"built {tag} with docker in ")
        assert line.endswith(f"run it: docker run --rm -p 127.0.0.1:3000:3000 {tag}")
    finally:
        remove_image("docker", tag)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "plain", "tty", "quiet"])
def test_cli_progress_modes(mode: str, tmp_path: Path) -> None:
    """Each --progress mode builds and shows on stderr what docs/build.md says (not a tty here:
    tty falls back to plain instead of the engine failing with 'not a console')."""
    tag = unique_tag("docker", f"progress-{mode}")
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    try:
        done = pipeline_cli(
            "build", str(HELLO), "--backend", "docker", "-t", tag, "--progress", mode, env=env
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"built {tag} with docker in ")
        engine_lines = [line for line in done.stderr.splitlines() if line.startswith("#")]
        if mode == "quiet":
            assert done.stderr == ""
        elif mode == "auto":
            assert engine_lines == []
            assert any(line.startswith("  [") for line in done.stderr.splitlines())
        else:
            assert any(" DONE " in line or line.endswith(" CACHED") for line in engine_lines)
    finally:
        remove_image("docker", tag)


@pytest.mark.docker
@pytest.mark.slow
def test_cli_build_failure_names_step_origin_and_output(tmp_path: Path) -> None:
    """Exit 1; on stderr the failing step, the template that made it and the engine's last
    lines; nothing on stdout (even with --output json) and no tag left."""
    tag = unique_tag("docker", "clifail")
    project = failing_project(tmp_path)
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    done = pipeline_cli(
        "build", str(project), "--backend", "docker", "-t", tag, "--output", "json",
        "--no-cache", env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert "error: docker: build failed (exit 1)" in done.stderr
    assert "  failing step: " in done.stderr and "exit 3" in done.stderr
    produced = done.stderr.split("  produced by: ", 1)[1].split("\n", 1)[0]
    # the exact block and template line (failing_project's step is line 4 of its template)
    assert re.fullmatch(
        r"block SETUP_BENTO_COMPONENTS in template /\S+/Dockerfile\.template:4 "
        r"\(docker\.dockerfile_template\)",
        produced,
    ), produced
    tail = done.stderr.split("  last engine output:\n", 1)[1]
    assert "about-to-fail" in tail
    assert "Traceback" not in done.stderr
    assert not image_exists("docker", tag)


@pytest.mark.docker
@pytest.mark.slow
def test_a_user_stage_added_to_the_graph_lands_in_the_image(tags: list[tuple[str, str]]) -> None:
    from pipeline.graph import Stage, default_graph

    graph = default_graph().add(
        Stage("marker", instructions=["RUN echo built-by-graph > /home/bentoml/graph-marker"]),
        before="entrypoint",
    )
    tag = unique_tag("docker", "graph")
    tags.append(("docker", tag))
    pipeline.build(HELLO, backend="docker", tags=[tag], graph=graph)
    marker = run_in_image("docker", tag, "cat", "/home/bentoml/graph-marker")
    assert marker.strip() == "built-by-graph"


@pytest.mark.podman
@pytest.mark.slow
def test_opt_with_a_value_reaches_podman_as_one_flag(tags: list[tuple[str, str]]) -> None:
    """``--opt layers=true``: as two items podman reads ``--layers`` and then ``true`` as a
    second context argument and refuses the build; ``--layers=true`` builds."""
    tag = unique_tag("podman", "opt")
    tags.append(("podman", tag))
    result = pipeline.build(HELLO, backend="podman", tags=[tag], opts=["layers=true"])
    assert "--layers=true" in result.argv
    assert image_exists("podman", tag)


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("docker", marks=pytest.mark.docker),
        *DOCKER_CLIS,
        pytest.param("podman", marks=pytest.mark.podman),
    ],
)
def test_users_iidfile_and_metadata_file_are_written(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--opt iidfile=F`` (BentoML's spelling) beside our own hidden --iidfile: both get the id."""
    engine = use_cli(engine, monkeypatch)
    runner, tag = RUNNER[engine], unique_tag(engine, "iidfile")
    tags.append((runner, tag))
    iidfile, metadata = tmp_path / "image.id", tmp_path / "metadata.json"
    result = pipeline.build(
        HELLO,
        backend=engine,
        tags=[tag],
        opts=[f"iidfile={iidfile}", f"metadata-file={metadata}"],
    )
    assert result.argv.count("--iidfile") == 1
    inspected = sh(runner, "image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    actual = f"sha256:{inspected.removeprefix('sha256:')}"  # podman prints the bare hex
    assert result.image_id == actual
    assert f"sha256:{iidfile.read_text().strip().removeprefix('sha256:')}" == actual
    # the engine's own metadata (buildx's docker driver: the id as containerimage.digest), or
    # ours where the CLI has no --metadata-file (containerimage.config.digest)
    data = json.loads(metadata.read_text())
    assert actual in (data.get("containerimage.digest"), data.get("containerimage.config.digest"))


def _build_with(engine: str, project: Path, tag: str, **fields: object) -> pipeline.BuildResult:
    """Build ``project`` with BuildRequest fields set directly (the CLI/API set them the same)."""
    from attrs import evolve

    from pipeline import api

    prepared = api.prepare(project, backend=engine, tags=[tag], progress="plain")
    with api.build_request(prepared) as built:
        request = evolve(built, **fields)
        plan = api.compute_plan(prepared, request)
        inputs = api.build_inputs(request, plan)
        return anyio.run(lambda: prepared.selection.executor.build(plan, inputs))


def _host_interfaces() -> set[str]:
    """Interfaces only the host has (a build container's own namespace has lo and eth0)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return {line.split(":")[0].strip() for line in lines} - {"lo", "eth0"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("podman", marks=pytest.mark.podman),
    ],
)
def test_add_host_reaches_the_run_steps(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path
) -> None:
    host = f"myhost-{secrets.token_hex(4)}"  # also keeps the RUN step out of the build cache
    project = project_with_step(tmp_path, f"RUN getent hosts {host} > /tmp/added-host", name="ah")
    runner, tag = RUNNER[engine], unique_tag(engine, "addhost")
    tags.append((runner, tag))
    result = _build_with(engine, project, tag, add_hosts=(f"{host}:10.11.12.13",))
    assert f"{host}:10.11.12.13" in result.argv
    assert run_in_image(runner, tag, "cat", "/tmp/added-host").split() == ["10.11.12.13", host]


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("podman", marks=pytest.mark.podman),
    ],
)
def test_network_host_runs_the_steps_in_the_hosts_network(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path
) -> None:
    only_host = _host_interfaces()
    if not only_host:
        pytest.skip("this host has no interface a build container would not have")
    marker = secrets.token_hex(4)
    step = f"RUN cat /proc/net/dev > /tmp/netdev-{marker}"
    project = project_with_step(tmp_path, step, name="nethost")
    runner, tag = RUNNER[engine], unique_tag(engine, "nethost")
    tags.append((runner, tag))
    _build_with(engine, project, tag, network="host")
    seen = run_in_image(runner, tag, "cat", f"/tmp/netdev-{marker}")
    names = {line.split(":")[0].strip() for line in seen.splitlines()[2:]}
    assert names & only_host, f"the RUN step saw {sorted(names)}, not the host's network"
    # ...and without --network host it does not (the check can tell them apart)
    other = unique_tag(engine, "nethost-default")
    tags.append((runner, other))
    (project / "Dockerfile.template").write_text(
        (project / "Dockerfile.template").read_text().replace(marker, f"{marker}-default")
    )
    _build_with(engine, project, other)
    seen = run_in_image(runner, other, "cat", f"/tmp/netdev-{marker}-default")
    assert not {line.split(":")[0].strip() for line in seen.splitlines()[2:]} & only_host


@pytest.mark.slow
@pytest.mark.parametrize("engine", CORE_ENGINES)
def test_a_cached_rebuild_runs_only_the_engines_build_command(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No health, flag or capability probe on the way of a plain build (docs/backends.md,
    "What runs before a build"): every engine process is logged by a wrapper on PATH."""
    engine = use_cli(engine, monkeypatch)
    runner, tag = RUNNER[engine], unique_tag(engine, "probes")
    tags.append((runner, tag))
    binary = "docker" if engine == "buildx" else engine
    real = shutil.which(binary)
    assert real is not None
    log = tmp_path / "calls"
    wrapper = tmp_path / "wrap" / binary
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    bento = build_bento(HELLO).path  # one stored bento: the second build is a no-op
    first = pipeline.build(bento, backend=engine, tags=[tag])
    assert any(call.endswith("--help") for call in log.read_text().splitlines())
    log.write_text("")
    flags.clear_cache()  # as a new process would start: only the disk cache is left
    second = pipeline.build(bento, backend=engine, tags=[tag])
    calls = log.read_text().splitlines()
    build_word = "buildx build" if engine == "buildx" else "build"
    assert len(calls) == 1 and calls[0].startswith(f"{build_word} "), calls
    assert second.image_id == first.image_id and second.platforms == first.platforms


@pytest.mark.docker
def test_an_unreachable_engine_is_named_after_the_build_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The health probe left out of a build's way still explains an engine that is down."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(BackendError, match="cannot reach the docker daemon") as raised:
        pipeline.build(HELLO, backend="docker")
    assert raised.value.exit_code == 2


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("podman", marks=pytest.mark.podman),
        pytest.param("buildah", marks=pytest.mark.buildah),
    ],
)
def test_a_plain_build_is_for_this_machine_whatever_the_store_holds(
    engine: str, tags: list[tuple[str, str]]
) -> None:
    """containers-storage keeps one image per name: after an arm64 build (a matrix cell, a
    pull) `FROM python:3.11-slim` is the arm64 image unless the build says which platform."""
    base = "docker.io/library/python:3.11-slim"
    native = native_platform()
    foreign = "linux/arm64" if native != "linux/arm64" else "linux/amd64"
    tag = unique_tag(engine, "native")
    tags.append(("podman", tag))
    sh("podman", "pull", "-q", "--platform", foreign, base)
    try:
        result = pipeline.build(HELLO, backend=engine, tags=[tag])
        assert result.platforms == (native,)
        inspect = sh("podman", "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", tag)
        assert inspect.stdout.strip() == native
        machine = run_in_image(
            "podman", tag, "python", "-c", "import platform; print(platform.machine())"
        )
        assert machine.strip() == platform.machine()
    finally:
        sh("podman", "pull", "-q", "--platform", native, base)  # the store as other tests expect


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_check_secrets_fails_a_build_that_bakes_a_secret_in(
    engine: str, tags: list[tuple[str, str]], tmp_path: Path
) -> None:
    """--check-secrets: a step that writes the secret into a layer (and a later one deletes it
    again) fails the build and leaves no tag; the same build using the secret properly passes."""
    runner = RUNNER[engine]
    value = f"tok-{secrets.token_hex(12)}"
    source = tmp_path / "token"
    source.write_text(value + "\n")
    mount = "RUN --mount=type=secret,id=tok"
    leaky = default_graph().add(
        Stage("leak", instructions=[f"{mount} cat /run/secrets/tok > /leak", "RUN rm /leak"]),
        before="entrypoint",
    )
    careful = default_graph().add(
        Stage("use", instructions=[f"{mount} test -s /run/secrets/tok"]), before="entrypoint"
    )
    bento = build_bento(HELLO).path
    bad, good = unique_tag(engine, "leak"), unique_tag(engine, "careful")
    tags += [(runner, bad), (runner, good)]
    options = {"secrets": [f"id=tok,src={source}"], "check_secrets": True}
    with pytest.raises(BuildError, match="secrets found in the built image") as raised:
        pipeline.build(bento, backend=engine, tags=[bad], graph=leaky, **options)
    assert "'tok' in " in str(raised.value) and value not in str(raised.value)
    assert not image_exists(runner, bad)
    result = pipeline.build(bento, backend=engine, tags=[good], graph=careful, **options)
    assert result.image_id and image_exists(runner, good)
