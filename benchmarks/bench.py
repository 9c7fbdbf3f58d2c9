"""Build the same bentos with bento-pipeline and with `bentoml containerize`, side by side.

    python benchmarks/bench.py [--rounds 3] [--bentos small,compiled] [--skip-matrix]
                               [--engine docker] [--skip-profile] [--report FILE]

What it does (issue 9; see benchmarks/README.md for results):

1. BentoML 1.4.40 in its own virtualenv (``--bentoml-venv``, else ``.venv-bentoml-1.4`` at the
   repository root when it has that version, else ``benchmarks/.venv-bentoml``, made with
   ``uv pip install`` and uv's shared cache). It is never a dependency of the product.
2. Each fixture project in ``benchmarks/bentos/<name>`` is copied to a temporary directory and
   ``bentoml build`` three times into a temporary ``BENTOML_HOME``: as is (``base``), after a
   one-line code change (``code``), after one more package (``dep``). Both tools build these
   same stored bentos.
3. Per round, per bento, per tool (the order alternates every round): empty the engine's build
   cache (``docker builder prune -af``) and remove both tools' images of that bento (base
   images stay), then time: cold build of ``base``, rebuild with ``code``, rebuild with ``dep``,
   no-op rebuild of ``dep``; the image size of ``base``; in the first round, run the ``dep``
   image (no command override), POST to its API and keep the answer. The engine floor (a
   trivial cached ``docker build`` of a two-line Dockerfile) is timed in every round.
4. ``python -m pipeline --help`` and ``bentoml --help`` wall times.
5. Unless ``--skip-matrix``: a 2-platform x 2-python matrix on podman
   (``python -m pipeline matrix``) against the sum of the same cells built one at a time
   (a one-cell ``matrix`` each: ``build`` has no ``--python``), both with ``--no-cache``.
6. Unless ``--skip-profile``: where a cached (no-op) build of ours spends its time.

Prints a markdown report (stdout, and ``--report FILE``): per bento a table
``measure | ours | bentoml | ratio | goal | met`` with medians, the per-round values, the
machine and the command line. Progress goes to stderr; engine logs to ``--work DIR``/logs.

Root is not needed, but the engines must be up (``scripts/testbed up``). The benchmark empties
the docker build cache: builds running at the same time lose their cache.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
FIXTURES = BENCH / "bentos"
BENTOML_VERSION = "1.4.40"
TOOLS = ("ours", "bentoml")
MEASURES = ("cold", "code", "dep", "noop")
FLOOR_DOCKERFILE = "FROM python:3.11-slim\nRUN echo bento-pipeline-bench-floor > /floor\n"
SERVE_TIMEOUT = 180.0


@dataclass(frozen=True)
class Fixture:
    """A project under benchmarks/bentos/, how to change it and how to ask it something."""

    name: str
    route: str
    payload: dict[str, Any]
    added_package: str
    code_line: tuple[str, str] = ('CODE_REVISION = "r0"', 'CODE_REVISION = "r1"')


FIXTURE_TABLE = {
    "small": Fixture("small", "/shout", {"text": "hello bench"}, added_package="tabulate"),
    "compiled": Fixture("compiled", "/interfaces", {"prefix": ""}, added_package="tabulate"),
}

# ours / bentoml ratio goals of issue 9
RATIO_GOALS = {"cold": 0.6, "code": 0.5, "dep": 0.5}
NOOP_ABOVE_FLOOR_GOAL = 0.15
SIZE_RATIO_GOAL = 0.5
MEASURE_NAMES = {
    "cold": "cold build",
    "code": "rebuild after a one-line code change",
    "dep": "rebuild after one dependency added",
    "noop": "no-op rebuild (everything cached)",
}


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and shows the log's tail."""


# --------------------------------------------------------------------------- processes


def log(message: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    logfile: Path | None = None,
    check: bool = True,
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run argv, return (wall seconds, the finished process); its output goes to logfile."""
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        logfile.write_text(
            f"$ {shlex.join(argv)}\n# exit {proc.returncode} in {elapsed:.2f}s\n"
            f"## stdout\n{proc.stdout}\n## stderr\n{proc.stderr}\n"
        )
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        where = f" (log: {logfile})" if logfile else ""
        raise BenchError(f"`{shlex.join(argv)}` exited {proc.returncode}{where}:\n{tail}")
    return elapsed, proc


def output(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    """First line of a probe's stdout, or a note that it failed (machine facts, versions)."""
    try:
        proc = subprocess.run(
            list(argv), env=env, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc.__class__.__name__})"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else f"unavailable (exit {proc.returncode})"


# --------------------------------------------------------------------------- BentoML venv


def find_uv() -> str:
    for candidate in (shutil.which("uv"), str(Path(sys.executable).parent / "uv")):
        if candidate and Path(candidate).exists():
            return candidate
    raise BenchError("uv not found: run from the project venv (PATH=.venv/bin:$PATH)")


def installed_bentoml(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    proc = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('bentoml'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def bentoml_venv(requested: Path | None) -> Path:
    """A venv with bentoml==1.4.40 (and uv, which `bentoml build` locks with)."""
    if requested is None:
        shared = REPO / ".venv-bentoml-1.4"
        if installed_bentoml(shared) == BENTOML_VERSION and (shared / "bin" / "uv").exists():
            return shared
        requested = BENCH / ".venv-bentoml"
    venv = requested.resolve()
    if installed_bentoml(venv) == BENTOML_VERSION and (venv / "bin" / "uv").exists():
        return venv
    uv = find_uv()
    log(f"installing bentoml=={BENTOML_VERSION} into {venv}")
    if not (venv / "bin" / "python").exists():
        run([uv, "venv", "--quiet", "--python", "3.11", str(venv)])
    run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            f"bentoml=={BENTOML_VERSION}",
            "uv",
        ]
    )
    return venv


# --------------------------------------------------------------------------- bentos


@dataclass(frozen=True)
class BentoSet:
    """The three stored bentos of one fixture: base, code change, dependency added."""

    fixture: Fixture
    tags: dict[str, str]  # "base" | "code" | "dep" -> name:version


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if text.count(old) != 1:
        raise BenchError(f"{path}: expected exactly one {old!r} to change")
    path.write_text(text.replace(old, new))


def bentoml_build(project: Path, bentoml: Path, env: dict[str, str], logfile: Path) -> str:
    _, proc = run([str(bentoml), "build", "--output", "tag"], env=env, cwd=project, logfile=logfile)
    found = re.search(r"__tag__:(\S+)", proc.stdout)
    if not found:
        raise BenchError(f"`bentoml build` in {project} printed no tag (log: {logfile})")
    return found.group(1)


def build_bentos(
    fixture: Fixture, work: Path, bentoml: Path, env: dict[str, str], logs: Path
) -> BentoSet:
    project = work / "projects" / fixture.name
    shutil.copytree(FIXTURES / fixture.name, project)
    tags = {"base": bentoml_build(project, bentoml, env, logs / f"{fixture.name}-bento-base.log")}
    edit(project / "service.py", *fixture.code_line)
    tags["code"] = bentoml_build(project, bentoml, env, logs / f"{fixture.name}-bento-code.log")
    edit(
        project / "bentofile.yaml",
        "  packages:\n",
        f"  packages:\n    - {fixture.added_package}\n",
    )
    tags["dep"] = bentoml_build(project, bentoml, env, logs / f"{fixture.name}-bento-dep.log")
    return BentoSet(fixture, tags)


# --------------------------------------------------------------------------- engine


@dataclass
class Engine:
    name: str
    env: dict[str, str]

    def docker(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], env=self.env, check=check)[1]

    def remove_images(self, images: Sequence[str]) -> None:
        if images:
            self.docker("image", "rm", "--force", *images)

    def prune_build_cache(self) -> None:
        self.docker("builder", "prune", "--all", "--force", check=True)

    def image_size(self, image: str) -> int:
        proc = self.docker("image", "inspect", "--format", "{{.Size}}", image, check=True)
        return int(proc.stdout.strip())

    def floor(self, context: Path, image: str, logs: Path, runs: int = 3) -> float:
        """Median of `runs` cached builds of a two-line Dockerfile (after one warm-up)."""
        argv = ["docker", "build", "-t", image, str(context)]
        env = {**self.env, "DOCKER_BUILDKIT": "1"}
        run(argv, env=env, logfile=logs / "floor-warmup.log")
        times = [run(argv, env=env, logfile=logs / f"floor-{i}.log")[0] for i in range(runs)]
        return statistics.median(times)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(engine: Engine, image: str, fixture: Fixture, logs: Path) -> tuple[bool, str]:
    """Run the image as is (no command), POST to its API; (answered, answer or error)."""
    port = free_port()
    proc = engine.docker("run", "-d", "-p", f"127.0.0.1:{port}:3000", image)
    if proc.returncode != 0:
        return False, f"docker run failed: {proc.stderr.strip()[-300:]}"
    container = proc.stdout.strip()
    url = f"http://127.0.0.1:{port}{fixture.route}"
    body = json.dumps(fixture.payload).encode()
    deadline = time.monotonic() + SERVE_TIMEOUT
    answer: str | None = None
    error = "no answer"
    try:
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = response.read().decode()
                    break
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}"
                if exc.code < 500:
                    break
            except (OSError, ConnectionError) as exc:
                error = f"{exc.__class__.__name__}: {exc}"
            state = engine.docker("inspect", "--format", "{{.State.Running}}", container)
            if state.stdout.strip() != "true":
                error = "the container exited"
                break
            time.sleep(1)
    finally:
        container_log = engine.docker("logs", container)
        (logs / f"serve-{image.replace('/', '_').replace(':', '_')}.log").write_text(
            container_log.stdout + container_log.stderr
        )
        engine.docker("rm", "--force", container)
    if answer is None:
        return False, error
    return True, answer


# --------------------------------------------------------------------------- measuring


@dataclass
class Results:
    """Every value measured for one bento; medians on demand."""

    fixture: Fixture
    times: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    sizes: dict[str, list[int]] = field(default_factory=dict)
    answers: dict[str, tuple[bool, str]] = field(default_factory=dict)
    steps: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    disturbed: list[str] = field(default_factory=list)

    def add_time(self, tool: str, measure: str, seconds: float) -> None:
        self.times.setdefault((tool, measure), []).append(seconds)

    def add_run(self, run: ToolRun) -> None:
        for measure, value in run.times.items():
            self.add_time(run.tool, measure, value)
            self.steps.setdefault((run.tool, measure), []).append(run.steps[measure])
        for measure, value in run.engine_times.items():
            self.add_time(f"{run.tool}-engine", measure, value)
        if run.size is not None:
            self.sizes.setdefault(run.tool, []).append(run.size)

    def median(self, tool: str, measure: str) -> float | None:
        values = self.times.get((tool, measure))
        return statistics.median(values) if values else None

    def ratio(self, measure: str) -> float | None:
        ours, theirs = self.median("ours", measure), self.median("bentoml", measure)
        return ours / theirs if ours is not None and theirs else None

    def size(self, tool: str) -> int | None:
        values = self.sizes.get(tool)
        return int(statistics.median(values)) if values else None


STEP_HEADER = re.compile(r"^#(\d+) \[(?!internal\])[^\]]*\] ", re.MULTILINE)
STEP_CACHED = re.compile(r"^#(\d+) CACHED$", re.MULTILINE)


def steps_run(engine_output: str) -> tuple[int, int]:
    """(steps that ran, steps) of a BuildKit plain-progress log ([internal] steps not counted).

    A rebuild that runs more steps than it should shows that the build cache went away in the
    meantime (another build on this engine pruned it): the time then is not a rebuild's.
    """
    from_steps = set(re.findall(r"^#(\d+) \[[^\]]*\] FROM ", engine_output, re.MULTILINE))
    steps = set(STEP_HEADER.findall(engine_output)) - from_steps  # FROM is never CACHED
    cached = set(STEP_CACHED.findall(engine_output)) & steps
    return len(steps) - len(cached), len(steps)


def image_name(run_id: str, tool: str, bento: str, measure: str) -> str:
    return f"pbench{run_id}-{tool}-{bento}:{measure}"


def tool_argv(tool: str, bento_tag: str, image: str, bentoml: Path) -> list[str]:
    # plain progress for both: the logs then show which steps ran and which were CACHED
    if tool == "ours":
        return [
            sys.executable,
            "-m",
            "pipeline",
            "build",
            bento_tag,
            "-t",
            image,
            "--progress=plain",
        ]
    return [str(bentoml), "containerize", bento_tag, "-t", image, "--progress=plain"]


@dataclass
class ToolRun:
    """One tool's cold -> code -> dep -> no-op sequence on one bento."""

    tool: str
    times: dict[str, float] = field(default_factory=dict)
    engine_times: dict[str, float] = field(default_factory=dict)
    steps: dict[str, tuple[int, int]] = field(default_factory=dict)
    size: int | None = None

    def disturbed(self) -> str | None:
        """Why this sequence is not a clean measurement (its cache vanished), or None."""
        ran, total = self.steps.get("noop", (0, 0))
        if ran:
            return f"the no-op rebuild ran {ran} of {total} steps"
        ran, total = self.steps.get("code", (0, 0))
        if total and ran == total:
            return f"the code-change rebuild ran all {total} steps"
        return None

    def summary(self) -> str:
        return ", ".join(
            f"{m} {self.times[m]:.1f}s ({self.steps[m][0]}/{self.steps[m][1]} steps ran)"
            for m in MEASURES
            if m in self.times
        )


def measure_tool(
    tool: str,
    bentos: BentoSet,
    *,
    round_index: int,
    attempt: int,
    run_id: str,
    engine: Engine,
    bentoml: Path,
    logs: Path,
) -> ToolRun:
    """One tool's sequence on one bento: cold, code change, dependency added, no-op."""
    name = bentos.fixture.name
    all_images = [image_name(run_id, t, name, m) for t in TOOLS for m in ("cold", "code", "dep")]
    engine.remove_images(all_images)
    engine.prune_build_cache()
    steps = [("cold", "base", "cold"), ("code", "code", "code"), ("dep", "dep", "dep")]
    steps.append(("noop", "dep", "dep"))  # the same bento and tag again
    result = ToolRun(tool)
    for measure, bento_key, image_key in steps:
        image = image_name(run_id, tool, name, image_key)
        argv = tool_argv(tool, bentos.tags[bento_key], image, bentoml)
        argv += ["--backend", engine.name]
        suffix = f"-r{round_index + 1}" + (f"-retry{attempt}" if attempt else "")
        logfile = logs / f"{name}-{tool}-{measure}{suffix}.log"
        cwd = REPO if tool == "ours" else logs
        log(f"{name}: {tool} {measure} (round {round_index + 1})")
        seconds, proc = run(argv, env=engine.env, cwd=cwd, logfile=logfile)
        result.times[measure] = seconds
        result.steps[measure] = steps_run(proc.stdout + proc.stderr)
        log(f"{name}: {tool} {measure} {seconds:.2f}s, steps ran {result.steps[measure]}")
        reported = re.search(r" in ([0-9.]+)s", proc.stdout) if tool == "ours" else None
        if reported:  # ours reports the engine's part: "built X with docker in 2.7s"
            result.engine_times[measure] = float(reported.group(1))
        if measure == "cold":
            result.size = engine.image_size(image)
    return result


def cli_wall_times(bentoml: Path, env: dict[str, str], runs: int = 5) -> dict[str, float]:
    commands = {
        "ours": [sys.executable, "-m", "pipeline", "--help"],
        "bentoml": [str(bentoml), "--help"],
    }
    medians = {}
    for tool, argv in commands.items():
        run(argv, env=env, cwd=REPO)  # warm the page cache
        medians[tool] = statistics.median(run(argv, env=env, cwd=REPO)[0] for _ in range(runs))
    return medians


# --------------------------------------------------------------------------- matrix


@dataclass
class MatrixResult:
    together: list[float] = field(default_factory=list)
    one_by_one: list[float] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)  # cell -> status (last round)
    notes: list[str] = field(default_factory=list)


def matrix_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"matrix printed no JSON (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        ) from exc
    if not isinstance(data, dict):
        raise BenchError("matrix JSON is not an object")
    return data


def measure_matrix(
    project: Path,
    *,
    platforms: Sequence[str],
    pythons: Sequence[str],
    rounds: int,
    run_id: str,
    env: dict[str, str],
    logs: Path,
) -> MatrixResult:
    """One matrix of platforms x pythons on podman against the same cells one at a time.

    The bento is stored by `python -m pipeline bento build` from the fixture project: a bento
    written by `bentoml build` 1.4 names its base image (image.base_image), so the matrix can
    only vary its platform.
    """
    result = MatrixResult()
    _, proc = run(
        [sys.executable, "-m", "pipeline", "bento", "build", str(project)],
        env=env,
        cwd=REPO,
        logfile=logs / "matrix-bento-build.log",
    )
    # the last line of stdout is the stored tag
    lines = proc.stdout.strip().splitlines()
    if not lines or ":" not in lines[-1]:
        raise BenchError(
            f"`pipeline bento build` printed no tag (log: {logs}/matrix-bento-build.log)"
        )
    tag = lines[-1].strip()
    base = [sys.executable, "-m", "pipeline", "matrix", tag, "--backend", "podman", "--no-cache"]
    base += ["--output", "json"]
    made: list[str] = []

    def together(r: int) -> None:
        template = f"localhost/pbench{run_id}-matrix:{{python}}-{{arch}}"
        argv = [*base, "--platform", ",".join(platforms), "--python", ",".join(pythons)]
        argv += ["-t", template]
        log(f"matrix: {len(platforms) * len(pythons)} cells together (round {r + 1})")
        seconds, proc = run(
            argv, env=env, cwd=REPO, logfile=logs / f"matrix-all-r{r + 1}.log", check=False
        )
        data = matrix_json(proc)
        for cell in data.get("cells", []):
            result.cells[cell["cell"]] = cell["status"]
            if cell.get("tag"):
                made.append(cell["tag"])
        result.together.append(seconds)
        log(f"matrix together: {seconds:.1f}s, {data.get('counts')}")

    def cells(r: int) -> None:
        total = 0.0
        for python in pythons:
            for plat in platforms:
                arch = plat.rsplit("/", 1)[-1]
                template = f"localhost/pbench{run_id}-cell:{{python}}-{{arch}}"
                argv = [*base, "--platform", plat, "--python", python, "-t", template]
                logfile = logs / f"matrix-cell-{python}-{arch}-r{r + 1}.log"
                seconds, proc = run(argv, env=env, cwd=REPO, logfile=logfile, check=False)
                for cell in matrix_json(proc).get("cells", []):
                    if cell.get("tag"):
                        made.append(cell["tag"])
                    if cell["status"] != "ok":
                        result.notes.append(f"one-by-one {cell['cell']}: {cell['status']}")
                total += seconds
                log(f"matrix cell {python} {arch}: {seconds:.1f}s")
        result.one_by_one.append(total)

    try:
        for r in range(rounds):
            for step in (together, cells) if r % 2 == 0 else (cells, together):
                step(r)
    finally:
        if made:
            subprocess.run(
                ["podman", "rmi", "--force", *sorted(set(made))], capture_output=True, check=False
            )
    return result


# --------------------------------------------------------------------------- profile


def profile_noop(
    bentos: BentoSet, *, run_id: str, engine: Engine, noop_median: float | None, logs: Path
) -> list[str]:
    """Where a cached build of ours spends its time: markdown lines."""
    name = bentos.fixture.name
    tag = bentos.tags["dep"]
    image = image_name(run_id, "ours", name, "profile")
    lines = [f"### Where a no-op rebuild of ours goes ({name})", ""]
    build = [sys.executable, "-m", "pipeline", "build", tag, "-t", image, "--backend", engine.name]
    run(build, env=engine.env, cwd=REPO, logfile=logs / "profile-warm.log")
    walls = [run(build, env=engine.env, cwd=REPO)[0] for _ in range(3)]
    context = logs.parent / "profile-context"
    shutil.rmtree(context, ignore_errors=True)
    run(
        [sys.executable, "-m", "pipeline", "export", tag, "-o", str(context)],
        env=engine.env,
        cwd=REPO,
        logfile=logs / "profile-export.log",
    )
    raw = ["docker", "build", "-t", image, "--progress=plain", str(context)]
    raw_env = {**engine.env, "DOCKER_BUILDKIT": "1"}
    run(raw, env=raw_env, logfile=logs / "profile-raw-warm.log")
    raw_walls = [run(raw, env=raw_env)[0] for _ in range(3)]
    help_walls = [run([sys.executable, "-m", "pipeline", "--help"], cwd=REPO)[0] for _ in range(3)]
    bare = [run([sys.executable, "-c", "pass"])[0] for _ in range(3)]
    wall, raw_wall = statistics.median(walls), statistics.median(raw_walls)
    help_wall, bare_wall = statistics.median(help_walls), statistics.median(bare)
    lines += [
        "| part | seconds |",
        "|---|---|",
        f"| `pipeline build` no-op, wall (median of 3 here) | {wall:.2f} |",
        f"| the same Dockerfile + context as a plain `docker build` (exported) | {raw_wall:.2f} |",
        f"| so: ours on top of the engine | {wall - raw_wall:.2f} |",
        f"| of which interpreter start (`python -c pass`) | {bare_wall:.2f} |",
        f"| of which `python -m pipeline --help` above a bare start (imports, CLI) | "
        f"{help_wall - bare_wall:.2f} |",
        f"| rest (resolve, render, context copy, probes, engine process) | "
        f"{wall - raw_wall - help_wall:.2f} |",
    ]
    if noop_median is not None:
        lines.append(f"| (no-op median in the table above) | {noop_median:.2f} |")
    lines.append("")

    # imports: top cumulative self+children of top-level packages
    _, proc = run([sys.executable, "-X", "importtime", "-m", "pipeline", "--help"], cwd=REPO)
    imports: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            module = parts[2]
            if not module.startswith("  "):  # a top-level import of its importer's chain
                imports.append((int(parts[1]), module.strip()))
    imports.sort(reverse=True)
    lines += ["`python -X importtime -m pipeline --help`, top imports (cumulative):", ""]
    lines += ["| module | ms |", "|---|---|"]
    lines += [f"| `{module}` | {us / 1000:.0f} |" for us, module in imports[:10]]
    lines.append("")

    # cProfile of one cached build
    profile_file = logs / "noop.prof"
    run(
        [sys.executable, "-m", "cProfile", "-o", str(profile_file), "-m", "pipeline", *build[3:]],
        env=engine.env,
        cwd=REPO,
        logfile=logs / "profile-cprofile.log",
    )
    lines += [
        "cProfile of one cached `pipeline build`: bento-pipeline's own functions, top 20 by "
        "cumulative time (time spent waiting for the engine and probe processes included):",
        "",
        "```",
    ]
    lines += pstats_top(profile_file, 20)
    lines += ["```", ""]
    if shutil.which("strace"):
        lines += child_processes(build, engine.env, logs)
    engine.remove_images([image])
    shutil.rmtree(context, ignore_errors=True)
    return lines


def pstats_top(path: Path, count: int) -> list[str]:
    import io
    import pstats

    stream = io.StringIO()
    stats = pstats.Stats(str(path), stream=stream)
    stats.sort_stats("cumulative").print_stats(r"/(pipeline|render)/", count)
    text = stream.getvalue().splitlines()
    start = next((i for i, line in enumerate(text) if line.lstrip().startswith("ncalls")), 0)
    root = str(REPO) + "/"
    return [line.rstrip().replace(root, "") for line in text[start:] if line.strip()]


STRACE_LINE = re.compile(r"^(\d+) (\d\d):(\d\d):(\d\d\.\d+) (.*)$")


def child_processes(build: Sequence[str], env: dict[str, str], logs: Path) -> list[str]:
    """Every process a cached build starts, when and for how long (from `strace -f`)."""
    trace = logs / "noop.strace"
    run(
        ["strace", "-f", "-q", "-s", "256", "-tt", "-e", "trace=execve", "-o", str(trace), *build],
        env=env,
        cwd=REPO,
        logfile=logs / "profile-strace.log",
    )
    started: dict[str, tuple[float, str]] = {}
    ended: dict[str, float] = {}
    for line in trace.read_text().splitlines():
        found = STRACE_LINE.match(line)
        if not found:
            continue
        pid, hh, mm, ss, rest = found.groups()
        at = int(hh) * 3600 + int(mm) * 60 + float(ss)
        if rest.startswith("execve(") and rest.rstrip().endswith("= 0") and pid not in started:
            argv = re.findall(r'"((?:[^"\\]|\\.)*)"', rest.split("[", 1)[-1].split("]", 1)[0])
            started[pid] = (at, " ".join(argv[:4]))
        elif "+++ exited with" in rest or "+++ killed by" in rest:
            ended[pid] = at
    if not started:
        return []
    origin = min(at for at, _ in started.values())
    end = max(ended.values(), default=origin)
    lines = [
        f"Processes of one cached `pipeline build` (`strace -f`; {end - origin:.2f} s in all):",
        "",
        "| starts at (s) | runs (s) | command |",
        "|---|---|---|",
    ]
    for pid, (at, command) in sorted(started.items(), key=lambda item: item[1][0]):
        runs = ended.get(pid, end) - at
        lines.append(f"| {at - origin:.2f} | {runs:.2f} | `{command[:90]}` |")
    return [*lines, ""]


# --------------------------------------------------------------------------- report


def seconds(value: float | None) -> str:
    if value is None:
        return "failed"
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def megabytes(value: int | None) -> str:
    return "failed" if value is None else f"{value / 1e6:,.0f} MB"


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours is not None and theirs else "-"


def yes_no(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "no")


def bento_table(results: Results, floor: float | None) -> list[str]:
    f = results.fixture
    lines = [
        f"### {f.name}",
        "",
        "| measure | ours | bentoml | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for measure in MEASURES:
        ours, theirs = results.median("ours", measure), results.median("bentoml", measure)
        if measure == "noop":
            above = None if ours is None or floor is None else ours - floor
            goal = f"ours above the engine floor <= {NOOP_ABOVE_FLOOR_GOAL} s" + (
                "" if above is None else f" (now {above:.2f} s)"
            )
            met: bool | None = None if above is None else above <= NOOP_ABOVE_FLOOR_GOAL
        else:
            goal = f"<= {RATIO_GOALS[measure]}x"
            found = results.ratio(measure)
            met = None if found is None else found <= RATIO_GOALS[measure]
        row = (MEASURE_NAMES[measure], seconds(ours), seconds(theirs), ratio(ours, theirs))
        lines.append("| " + " | ".join((*row, goal, yes_no(met))) + " |")
    lines.append(
        f"| engine floor (cached 2-line `docker build`) | {seconds(floor)} | - | - | - | - |"
    )
    ours_size, theirs_size = results.size("ours"), results.size("bentoml")
    served = {tool: results.answers.get(tool, (False, "not run")) for tool in TOOLS}
    same = (
        served["ours"][0] and served["bentoml"][0] and same_answer(*(a for _, a in served.values()))
    )
    size_ratio = ours_size / theirs_size if ours_size and theirs_size else None
    size_met = None if size_ratio is None else size_ratio <= SIZE_RATIO_GOAL and same
    lines.append(
        f"| image size (cold `base` image) | {megabytes(ours_size)} | {megabytes(theirs_size)} | "
        f"{ratio(ours_size, theirs_size)} | <= {SIZE_RATIO_GOAL}x, and the image still serves | "
        f"{yes_no(size_met)} |"
    )
    lines.append(
        f"| serves (`docker run` as is, POST {f.route}) | {yes_no(served['ours'][0])} | "
        f"{yes_no(served['bentoml'][0])} | "
        f"{'same answer' if same else 'answers differ or missing'} | both serve, same answer | "
        f"{yes_no(same)} |"
    )
    lines.append("")
    lines.append(
        f"answers: ours `{served['ours'][1][:200]}`; bentoml `{served['bentoml'][1][:200]}`"
    )
    lines.append("")
    lines.append(
        "per round (seconds, in order): "
        + "; ".join(
            f"{tool} {measure} "
            + "/".join(f"{v:.1f}" for v in results.times.get((tool, measure), []))
            for measure in MEASURES
            for tool in (*TOOLS, "ours-engine")
        )
    )
    lines.append("")
    lines.append(
        "engine steps that ran / steps (BuildKit, not CACHED), per round: "
        + "; ".join(
            f"{tool} {measure} "
            + " ".join(f"{ran}/{total}" for ran, total in results.steps.get((tool, measure), []))
            for measure in MEASURES
            for tool in TOOLS
        )
    )
    lines.append("")
    lines.append(
        "`ours-engine` is the build time ours reports itself (the engine process); the rest of "
        "ours' wall time is interpreter start, imports, resolving and rendering the bento, the "
        "context copy and the engine probes."
    )
    lines.append("")
    for failure in results.failures:
        lines.append(f"- FAILED: {failure}")
    for note in results.disturbed:
        lines.append(f"- redone, the build cache vanished mid-sequence: {note}")
    if results.failures or results.disturbed:
        lines.append("")
    return lines


def same_answer(a: str, b: str) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except json.JSONDecodeError:
        return a == b


def machine_lines(engine: Engine, bentoml: Path, args: argparse.Namespace) -> list[str]:
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    fmt = "{{.Server.Version}} (client {{.Client.Version}})"
    facts = [
        ("date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")),
        (
            "machine",
            f"{os.cpu_count()} CPUs (nproc), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()} {platform.machine()}",
        ),
        ("docker", output(["docker", "version", "--format", fmt], engine.env)),
        ("buildx", output(["docker", "buildx", "version"], engine.env)),
        ("podman", output(["podman", "--version"])),
        ("bentoml", output([str(bentoml), "--version"])),
        ("uv (host)", output([find_uv(), "--version"])),
        ("python (ours)", platform.python_version()),
        (
            "bento-pipeline",
            f"{REPO.name} @ {commit}"
            + (" + local changes" if dirty and "unavailable" not in dirty else ""),
        ),
        ("rounds", str(args.rounds)),
    ]
    command = shlex.join([sys.executable, *sys.argv])
    lines = ["| fact | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in facts]
    lines += ["", f"command: `{command}`", ""]
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="bento-pipeline against `bentoml containerize` on the same bentos",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per bento (default 3)")
    parser.add_argument(
        "--bentos",
        default="small,compiled",
        help=f"comma-separated fixtures of benchmarks/bentos ({', '.join(FIXTURE_TABLE)})",
    )
    parser.add_argument("--engine", default="docker", choices=["docker"], help="engine (docker)")
    parser.add_argument("--skip-matrix", action="store_true", help="skip the podman matrix part")
    parser.add_argument(
        "--only-matrix", action="store_true", help="run only the podman matrix part"
    )
    parser.add_argument("--matrix-bento", default="small", help="fixture for the matrix")
    parser.add_argument("--matrix-platforms", default="linux/amd64,linux/arm64")
    parser.add_argument("--matrix-python", default="3.11,3.13")
    parser.add_argument("--matrix-rounds", type=int, default=1, help="matrix rounds (default 1)")
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="redo a tool's sequence whose build cache vanished mid-way, e.g. pruned by "
        "another build on this engine (default 2)",
    )
    parser.add_argument("--skip-profile", action="store_true", help="skip the no-op profile")
    parser.add_argument(
        "--bentoml-venv", type=Path, help="venv with bentoml 1.4.40 (made if missing)"
    )
    parser.add_argument("--work", type=Path, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--report", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = [n.strip() for n in args.bentos.split(",") if n.strip()]
    unknown = [n for n in names if n not in FIXTURE_TABLE]
    if unknown or not names:
        parser.error(f"--bentos: unknown {unknown}; known: {', '.join(FIXTURE_TABLE)}")
    args.bento_names = [] if args.only_matrix else names
    if args.only_matrix:
        if args.skip_matrix:
            parser.error("--only-matrix and --skip-matrix exclude each other")
        args.skip_profile = True
    if args.matrix_bento not in FIXTURE_TABLE:
        parser.error(f"--matrix-bento: known: {', '.join(FIXTURE_TABLE)}")
    return args


@contextlib.contextmanager
def work_dir(requested: Path | None) -> Iterator[Path]:
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        yield requested.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run_id = str(os.getpid())
    venv = bentoml_venv(args.bentoml_venv)
    bentoml = venv / "bin" / "bentoml"
    report: list[str] = []
    with work_dir(args.work) as work:
        logs = work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "BENTOML_HOME": str(work / "bentoml-home"),
            "BENTOML_DO_NOT_TRACK": "True",
            # ours' probe, uv-check and compiled-template caches start empty in every run
            "PIPELINE_CACHE_DIR": str(work / "pipeline-cache"),
        }
        # both CLIs as users run them: with bytecode written once and then reused (a sandbox
        # or CI image may set this, making every start compile every module again)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for warm in (["python", "-m", "pipeline", "--help"], [str(bentoml), "--help"]):
            warm[0] = sys.executable if warm[0] == "python" else warm[0]
            run(warm, env=env, cwd=REPO)
        engine = Engine(args.engine, env)
        floor_context = work / "floor"
        floor_context.mkdir(exist_ok=True)
        (floor_context / "Dockerfile").write_text(FLOOR_DOCKERFILE)
        floor_image = f"pbench{run_id}-floor:latest"
        made_images: list[str] = [floor_image]
        floors: list[float] = []
        all_results: list[Results] = []
        try:
            sets = []
            for name in args.bento_names:
                log(f"{name}: bentoml build (base, code change, dependency added)")
                sets.append(build_bentos(FIXTURE_TABLE[name], work, bentoml, env, logs))
                log(f"{name}: {sets[-1].tags}")
            for index, bentos in enumerate(sets):
                results = Results(bentos.fixture)
                all_results.append(results)
                for r in range(args.rounds):
                    order = TOOLS if (r + index) % 2 == 0 else TOOLS[::-1]
                    for tool in order:
                        measure_with_retries(
                            tool, bentos, results, args, r, run_id, engine, bentoml, logs
                        )
                    floors.append(engine.floor(floor_context, floor_image, logs))
                    log(f"engine floor {floors[-1]:.2f}s")
                made_images += [
                    image_name(run_id, t, bentos.fixture.name, m)
                    for t in TOOLS
                    for m in ("cold", "code", "dep")
                ]
            floor = statistics.median(floors) if floors else None
            cli = cli_wall_times(bentoml, env)

            report += ["## Results", ""]
            report += machine_lines(engine, bentoml, args)
            for results in all_results:
                report += bento_table(results, floor)
            report += [
                "| CLI start | ours | bentoml | ratio |",
                "|---|---|---|---|",
                f"| `--help` wall time (median of 5) | {seconds(cli['ours'])} | "
                f"{seconds(cli['bentoml'])} | {ratio(cli['ours'], cli['bentoml'])} |",
                "",
                f"engine floor per round: {', '.join(f'{v:.2f}' for v in floors)} s",
                "",
            ]
            if args.skip_matrix:
                report += ["### matrix (podman): skipped (--skip-matrix)", ""]
            else:
                report += matrix_section(args, work, run_id, env, logs)
            if not args.skip_profile and sets:
                first = all_results[0]
                report += profile_noop(
                    sets[0],
                    run_id=run_id,
                    engine=engine,
                    noop_median=first.median("ours", "noop"),
                    logs=logs,
                )
        finally:
            engine.remove_images(made_images)
            text = "\n".join(report) + "\n"
            if report:
                print(text)
                if args.report:
                    args.report.write_text(text)
            if args.work is not None:
                log(f"logs kept in {logs}")
    return 0 if all(not r.failures for r in all_results) else 1


def measure_with_retries(
    tool: str,
    bentos: BentoSet,
    results: Results,
    args: argparse.Namespace,
    round_index: int,
    run_id: str,
    engine: Engine,
    bentoml: Path,
    logs: Path,
) -> None:
    """Measure one sequence; a disturbed one (its cache vanished) is redone up to --retries."""
    for attempt in range(args.retries + 1):
        try:
            run_ = measure_tool(
                tool,
                bentos,
                round_index=round_index,
                attempt=attempt,
                run_id=run_id,
                engine=engine,
                bentoml=bentoml,
                logs=logs,
            )
        except BenchError as exc:
            log(f"FAILED: {exc}")
            results.failures.append(f"{tool}, round {round_index + 1}: {exc}".splitlines()[0])
            return
        why = run_.disturbed()
        if why is None:
            break
        note = f"{tool}, round {round_index + 1}, attempt {attempt + 1}: {why}: {run_.summary()}"
        log(f"DISTURBED: {note}")
        results.disturbed.append(note)
        if attempt == args.retries:
            results.disturbed[-1] += " (kept: out of retries)"
    results.add_run(run_)
    if tool not in results.answers:
        image = image_name(run_id, tool, bentos.fixture.name, "dep")
        results.answers[tool] = serve(engine, image, bentos.fixture, logs)
        log(f"{bentos.fixture.name}: {tool} serves: {results.answers[tool]}")


def matrix_section(
    args: argparse.Namespace, work: Path, run_id: str, env: dict[str, str], logs: Path
) -> list[str]:
    platforms = [p.strip() for p in args.matrix_platforms.split(",") if p.strip()]
    pythons = [p.strip() for p in args.matrix_python.split(",") if p.strip()]
    project = work / "matrix-project"
    shutil.copytree(FIXTURES / args.matrix_bento, project)
    title = (
        f"### matrix (podman, --no-cache): {' x '.join((','.join(platforms), ','.join(pythons)))}"
    )
    try:
        m = measure_matrix(
            project,
            platforms=platforms,
            pythons=pythons,
            rounds=args.matrix_rounds,
            run_id=run_id,
            env=env,
            logs=logs,
        )
    except BenchError as exc:
        return [title, "", f"FAILED: {exc}", ""]
    together = statistics.median(m.together) if m.together else None
    one = statistics.median(m.one_by_one) if m.one_by_one else None
    lines = [
        title,
        "",
        f"bento: `{args.matrix_bento}`, stored by `python -m pipeline bento build` "
        "(a BentoML-built bento pins image.base_image, so only --platform could vary)",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| `pipeline matrix` (all cells, --concurrency 2) | {seconds(together)} |",
        f"| the same cells one by one (sum) | {seconds(one)} |",
        f"| ratio | {ratio(together, one)} |",
        "",
        "cells: " + ", ".join(f"{k} {v}" for k, v in m.cells.items()),
        "",
    ]
    lines += [f"- {note}" for note in m.notes]
    return [*lines, ""] if m.notes else lines


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
