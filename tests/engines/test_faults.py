"""Faults on real engines (docs/hardening.md, "Faults"): each ends with a clear error and exit
code, no tag on a partial result, no temp file or working container left, and a rerun that
succeeds once the fault is gone.

The slow step is ``RUN sleep $PAUSE`` with ``ARG PAUSE=0``: the faulted build passes
``--build-arg PAUSE=<marker>`` (its `sleep <marker>` is how the test knows the step runs), the
rerun leaves it out and sleeps for nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from enginekit import (
    DOCKER_CLIS,
    HELLO,
    ROOT,
    RUNNER,
    free_port,
    image_exists,
    marked,
    pipeline_cli,
    project_with_step,
    remove_image,
    sh,
    sleeping,
    unique_tag,
    use_cli,
)

from pipeline.backends import basepulls, workingcontainers
from pipeline.backends.base import native_platform
from pipeline.backends.verify import ContainersStore
from pipeline.stepheaders import numbered_step

DOCKER = pytest.param("docker", marks=pytest.mark.docker)
PODMAN = pytest.param("podman", marks=pytest.mark.podman)
BUILDAH = pytest.param("buildah", marks=pytest.mark.buildah)
BASE = "docker.io/library/python:3.11-slim"


class SlowBuild:
    """``python -m pipeline build`` of a project whose last step sleeps, as a subprocess in its
    own session with a private TMPDIR and store; stderr is collected as it comes."""

    def __init__(self, engine: str, root: Path) -> None:
        self.engine = engine
        self.marker = f"{1000 + secrets.randbelow(8000)}.5"
        self.project = project_with_step(
            root, "ARG PAUSE=0\nRUN sleep $PAUSE", name=f"slow{secrets.token_hex(3)}"
        )
        self.tmp = root / "clitmp"
        self.tmp.mkdir()
        self.env = {**os.environ, "BENTOML_HOME": str(root / "store"), "TMPDIR": str(self.tmp)}
        self.tag = unique_tag(engine, "fault")
        self.stderr: list[str] = []
        argv = [
            "build", str(self.project), "--backend", engine, "-t", self.tag,
            "--progress", "plain", "--build-arg", f"PAUSE={self.marker}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *argv],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=lambda: self.stderr.extend(self.proc.stderr or ()), daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + 240
        while not sleeping(self.marker):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail("the slow step never ran:\n" + "".join(self.stderr[-20:]))
            time.sleep(0.3)

    def engine_pid(self) -> int:
        """The engine's build process: the CLI's child ``<binary> build ...``."""
        binary = "docker" if self.engine == "docker" else self.engine
        for pid, argv in _children(self.proc.pid):
            if argv[:1] and Path(argv[0]).name == binary and "build" in argv[1:3]:
                return pid
        raise AssertionError(f"no `{binary} build` child of the CLI ({self.proc.pid})")

    def wait(self) -> tuple[int, str, str]:
        try:
            out = self.proc.stdout.read() if self.proc.stdout else ""
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(timeout=10)
        return self.proc.returncode, out, "".join(self.stderr)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def step_stops(self) -> bool:
        deadline = time.monotonic() + 60
        while sleeping(self.marker):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
        return True

    def left_in_tmpdir(self) -> list[str]:
        # buildah's kept cache-mount directory is a cache, meant to outlive the build
        return [p.name for p in self.tmp.iterdir() if not p.name.startswith("buildah-cache")]

    def rerun(self) -> subprocess.CompletedProcess[str]:
        """The same build without the slow step's pause."""
        return pipeline_cli(
            "build", str(self.project), "--backend", self.engine, "-t", self.tag,
            "--progress", "quiet", env=self.env,
        )  # fmt: skip


def _children(parent: int) -> list[tuple[int, list[str]]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append((int(entry), [a.decode(errors="replace") for a in argv if a]))
    return found


def _build_id(pid: int) -> str:
    """The id a podman/buildah build marks its working containers with (from its argv)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    prefix = f"{workingcontainers.MARKER_ARG}="
    found = [item.removeprefix(prefix) for item in argv if item.startswith(prefix)]
    assert found, f"no {prefix}... build arg in {argv}"
    return found[0]


def _error_line(stderr: str) -> str:
    return next((line for line in stderr.splitlines() if line.startswith("error: ")), "")


# -- 1. the engine killed mid-build, 2. Ctrl-C ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", [DOCKER, PODMAN, BUILDAH])
def test_a_killed_engine_is_named_and_leaves_nothing_behind(engine: str, tmp_path: Path) -> None:
    build = SlowBuild(engine, tmp_path)
    try:
        pid = build.engine_pid()
        build_id = _build_id(pid) if engine != "docker" else None
        if build_id is not None:  # the build's working containers are there, and marked
            assert marked(build_id), "the running build's working containers carry no id"
        os.kill(pid, signal.SIGKILL)
        code, out, err = build.wait()
    finally:
        build.kill()
    assert code == 1, err
    assert _error_line(err) == (
        f"error: {engine}: the engine process was killed by signal SIGKILL (exit -9)"
    ), err
    assert "failing step: " in err and "sleep" in err.split("failing step: ", 1)[1]
    assert "Traceback" not in err and out == ""
    assert build.step_stops(), "the build step kept running after its engine was killed"
    assert not image_exists(RUNNER[engine], build.tag)
    assert build.left_in_tmpdir() == []
    if build_id is not None:
        assert marked(build_id) == [], "the killed build's working containers were left"
    again = build.rerun()
    try:
        assert again.returncode == 0, again.stderr
        assert image_exists(RUNNER[engine], build.tag)
    finally:
        remove_image(RUNNER[engine], build.tag)


@pytest.mark.slow
@pytest.mark.parametrize("engine", [DOCKER, PODMAN, BUILDAH])
def test_ctrl_c_stops_the_build_and_removes_its_working_containers(
    engine: str, tmp_path: Path
) -> None:
    build = SlowBuild(engine, tmp_path)
    try:
        pid = build.engine_pid()
        build_id = _build_id(pid) if engine != "docker" else None
        held = marked(build_id) if build_id is not None else []
        if build_id is not None:
            assert held, "the running build's working containers carry no id"
        os.kill(build.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        code, out, err = build.wait()
    finally:
        build.kill()
    assert code == 130, err
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err
    assert build.step_stops(), "the build step kept running after Ctrl-C"
    if build_id is not None:
        assert marked(build_id) == [], f"working containers left: {held}"
        left = set(sh("podman", "ps", "-a", "-q", "--no-trunc", "--external").stdout.split())
        assert not left & set(held)
    assert not image_exists(RUNNER[engine], build.tag)
    assert build.left_in_tmpdir() == []
    again = build.rerun()
    try:
        assert again.returncode == 0, again.stderr
    finally:
        remove_image(RUNNER[engine], build.tag)


# -- 3. the daemon unreachable ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", [DOCKER, pytest.param("buildx", marks=pytest.mark.buildx)])
def test_an_unreachable_daemon_is_named_before_anything_runs(engine: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "store"),
        "DOCKER_HOST": "unix:///nonexistent.sock",
    }
    tag = unique_tag(engine, "nodaemon")
    started = time.monotonic()
    done = pipeline_cli("build", str(HELLO), "--backend", engine, "-t", tag, env=env)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    line = _error_line(done.stderr)
    assert line.startswith(f"error: backend '{engine}' is not usable: "), done.stderr
    reason = "cannot reach the docker daemon" if engine == "docker" else "cannot reach its builder"
    assert reason in line and "unix:///nonexistent.sock" in line
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert elapsed < 15, f"took {elapsed:.1f}s to say the daemon is down"
    del env["DOCKER_HOST"]
    again = pipeline_cli("build", str(HELLO), "--backend", engine, "-t", tag, env=env)
    try:
        assert again.returncode == 0, again.stderr
    finally:
        remove_image("docker", tag)


# -- 4. the registry down during the push -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.registry
@pytest.mark.parametrize("engine", [DOCKER, *DOCKER_CLIS, PODMAN, BUILDAH])
def test_a_push_to_a_registry_that_is_down_removes_the_built_tags(
    engine: str, tmp_path: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = use_cli(engine, monkeypatch)
    runner = RUNNER[engine]
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    name, version = f"pipeline-test-down-{engine}", secrets.token_hex(4)
    tag = f"{down}/{name}:{version}"
    done = pipeline_cli("build", str(HELLO), "--backend", engine, "-t", tag, "--push", env=env)
    assert done.returncode == 1, done.stderr
    line = _error_line(done.stderr)
    assert line.startswith(f"error: {engine}: push to {down} failed"), done.stderr
    assert "the registry cannot be reached (connection refused)" in line
    assert line.endswith("the built tags were removed")
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not image_exists(runner, tag), "the tag of the unpushed image was left"
    good = f"{registry_url}/{name}:{version}"
    again = pipeline_cli("build", str(HELLO), "--backend", engine, "-t", good, "--push", env=env)
    try:
        assert again.returncode == 0, again.stderr
        request = urllib.request.Request(
            f"http://{registry_url}/v2/{name}/manifests/{version}",
            method="HEAD",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json, "
                "application/vnd.docker.distribution.manifest.v2+json"
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        remove_image(runner, good)


# -- 5. a full disk -------------------------------------------------------------------------------


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "tiny"
    where.mkdir()
    mounted = sh("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where), check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        sh("umount", str(where), check=False)


def _leave_free(disk: Path, free: int) -> Path:
    """Fill ``disk`` until ``free`` bytes are left (tmpfs counts whole pages)."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    info = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, info.f_bavail * info.f_frsize - free))
    return filler


def test_export_onto_a_full_disk_writes_nothing(tiny_disk: Path, tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    filler = _leave_free(tiny_disk, 8192)
    done = pipeline_cli("export", str(HELLO), "-o", str(tiny_disk / "ctx"), env=env)
    assert done.returncode == 2, done.stderr
    line = _error_line(done.stderr)
    assert line.startswith(
        f"error: {tiny_disk / 'ctx'}: cannot write the build context: No space left on device"
    ), done.stderr
    assert line.endswith("nothing was written") and "Traceback" not in done.stderr
    assert sorted(os.listdir(tiny_disk)) == ["filler"]  # no ctx, no .ctx.* staging directory
    filler.unlink()
    again = pipeline_cli("export", str(HELLO), "-o", str(tiny_disk / "ctx"), env=env)
    assert again.returncode == 0, again.stderr
    assert (tiny_disk / "ctx" / "Dockerfile").is_file()


def test_a_bento_build_onto_a_full_disk_stores_nothing(tiny_disk: Path) -> None:
    """Every amount of free space from none to enough: each build stores the whole bento (and
    `latest`) or nothing, with one clear error."""
    home = tiny_disk / "home"
    env = {**os.environ, "BENTOML_HOME": str(home)}
    outcomes = []
    for free in range(0, 28 * 1024, 4096):
        shutil.rmtree(home, ignore_errors=True)
        filler = _leave_free(tiny_disk, free)
        done = pipeline_cli("bento", "build", str(HELLO), env=env)
        assert "Traceback" not in done.stderr, (free, done.stderr)
        names = home / "bentos" / "hello"
        left = sorted(p.name for p in names.iterdir()) if names.is_dir() else []
        assert not [name for name in left if name.startswith(".")], (free, left)
        if done.returncode == 0:
            version = (names / "latest").read_text()
            assert (names / version / "bento.yaml").is_file() and left == ["latest", version]
        else:
            assert done.returncode == 2, done.stderr
            assert "nothing was written: [Errno 28] No space left on device" in done.stderr
            assert left == [], (free, left)
        outcomes.append(done.returncode)
        filler.unlink()
    assert 2 in outcomes and outcomes[-1] == 0, outcomes
    again = pipeline_cli("bento", "build", str(HELLO), env=env)
    assert again.returncode == 0, again.stderr


# -- 6. a closed stdout ---------------------------------------------------------------------------


def _to_closed_pipe(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline ARGV | head -c0``: stdout is a pipe nobody reads any more."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *argv],
            stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, timeout=300,
            check=False,
        )  # fmt: skip
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv",
    [
        ("bento", "list", "-o", "json"),
        ("plan", str(HELLO), "-o", "json"),
        ("dockerfile", str(HELLO)),
    ],
    ids=["bento-list", "plan", "dockerfile"],
)
def test_a_closed_stdout_stops_quietly(argv: tuple[str, ...], tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    done = _to_closed_pipe(*argv, env=env)
    assert done.returncode == 141 and done.stderr == "", done.stderr


@pytest.mark.slow
@pytest.mark.docker
def test_a_build_whose_reader_left_still_builds_and_stops_quietly(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    tag = unique_tag("docker", "closedpipe")
    try:
        argv = ("build", str(HELLO), "--backend", "docker", "-t", tag, "-o", "json")
        done = _to_closed_pipe(*argv, "--progress", "quiet", env=env)
        assert done.returncode == 141 and done.stderr == "", done.stderr
        assert image_exists("docker", tag)  # built: only the report was lost
    finally:
        remove_image("docker", tag)


# -- 7. two processes, two platforms, one base image name -------------------------------------


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.parametrize("engine", [PODMAN, BUILDAH])
def test_builds_in_two_processes_take_turns_at_pulling_the_base(
    engine: str, tmp_path: Path
) -> None:
    """Two plain builds of one project, amd64 and arm64, with the base image absent: each pulls
    its own architecture under one name. The test holds the pull lock first, so both must wait
    for it; then one build's FROM phase ends before the other's begins, and both images are of
    their architecture."""
    sh("podman", "rmi", "-f", BASE, check=False)
    lock = basepulls.BasePullLock()
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "store")}
    builds: dict[str, tuple[subprocess.Popen[str], list[tuple[float, str]]]] = {}
    tags = {arch: unique_tag(engine, f"turns-{arch}") for arch in ("amd64", "arm64")}
    try:
        assert anyio.run(lock.acquire), f"cannot take {lock.path}"
        for arch, tag in tags.items():
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "build", str(HELLO), "--backend", engine,
                 "--platform", f"linux/{arch}", "-t", tag, "--progress", "plain"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            lines: list[tuple[float, str]] = []
            reader = threading.Thread(target=_stamp, args=(proc, lines), daemon=True)
            reader.start()
            builds[arch] = (proc, lines)
        deadline = time.monotonic() + 120
        while not all(_waited(lines) for _, lines in builds.values()):
            assert time.monotonic() < deadline, "a build did not wait for the pull lock"
            assert all(proc.poll() is None for proc, _ in builds.values())
            time.sleep(0.2)
        lock.release()
        for proc, lines in builds.values():
            assert proc.wait(timeout=300) == 0, "".join(line for _, line in lines[-20:])
        froms = basepulls.from_count(pipeline_cli("dockerfile", str(HELLO), env=env).stdout)
        windows = sorted(_from_phase(lines, froms) for _, lines in builds.values())
        (_, first_done), (second_start, _) = windows
        assert second_start >= first_done, f"the FROM phases overlapped: {windows}"
        store = ContainersStore("podman")
        for arch, tag in tags.items():
            (entry,) = store.entries(tag, [f"linux/{arch}"])
            assert (entry.config, entry.elf) == (f"linux/{arch}", f"linux/{arch}")
    finally:
        lock.release()
        for proc, _ in builds.values():
            if proc.poll() is None:
                proc.kill()
        for tag in tags.values():
            remove_image("podman", tag)
        sh("podman", "pull", "-q", "--platform", native_platform(), BASE)  # as others expect


def _stamp(proc: subprocess.Popen[str], lines: list[tuple[float, str]]) -> None:
    for line in proc.stderr or ():
        lines.append((time.monotonic(), line))


def _waited(lines: list[tuple[float, str]]) -> bool:
    return any("waiting for another build to pull its base images" in line for _, line in lines)


def _from_phase(lines: list[tuple[float, str]], froms: int) -> tuple[float, float]:
    """When the build's first FROM step started and when its FROM phase ended."""
    phase = basepulls.FromPhase(froms)
    start = next(t for t, line in lines if "FROM " in line and numbered_step(line))
    end = next(t for t, line in lines if phase.see(line))
    return start, end
