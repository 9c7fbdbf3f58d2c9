"""Real BentoML projects and bentos become images that answer exactly as BentoML's own do.

For every project in tests/fixtures/bentoml: BentoML's own CLI (1.4.40, or 1.2.20 for the spec-1
bento; venvs from scripts/lib/bentoml-venvs.sh) runs `bentoml build` into a temporary
BENTOML_HOME and `bentoml containerize` (docker) for the reference image. We build the same
project with `python -m pipeline build` from its directory and from BentoML's stored bento, on
docker (every project) and podman (a representative subset). Each image runs with a plain
`<engine> run -d -p 127.0.0.1:PORT:3000 IMAGE` (no command override), gets the same POST, and
must answer what BentoML's image answers. The service reports env vars, files and binaries the
project's feature puts in the image, and the reference answer is checked for that evidence
first, so an equal answer means the feature works in our image too.

All images are built once, concurrently, in the session fixture `images` (only the cases the
selected tests need); every image and container is removed at the end.
"""

from __future__ import annotations

import filecmp
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from realbentokit import (
    FIXTURES,
    PROJECTS,
    REQUEST,
    VERSIONS,
    Case,
    Outcome,
    answer_of,
    bentoml_build,
    bentoml_containerize,
    missing_venv,
    pipeline_build,
    remove_image,
)

from tests.conftest import in_ci

pytestmark = pytest.mark.slow

# Concurrent image builds: this machine has 2 cores and other builds may run beside us.
BUILD_WORKERS = int(os.environ.get("PIPELINE_REALBENTO_WORKERS", "3"))

PODMAN_SUBSET = {
    ("packages", "project"),
    ("packages", "store"),
    ("envs", "store"),
    ("dockerfile-template", "store"),
    ("bentoml-1.2", "store"),
}

# Known gaps of ours, each a strict xfail (an XPASS fails: remove the entry when it is fixed).
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def _cases() -> list[Case]:
    cases = []
    for project in PROJECTS:
        for source in ("project", "store"):
            cases.append(Case(project, source, "docker"))
            if (project, source) in PODMAN_SUBSET:
                cases.append(Case(project, source, "podman"))
    return cases


CASES = _cases()


def _param(case: Case) -> object:
    marks: list[pytest.MarkDecorator] = [getattr(pytest.mark, case.engine)]
    reason = KNOWN_GAPS.get((case.project, case.source))
    if reason:
        marks.append(pytest.mark.xfail(reason=reason, strict=True))
    return pytest.param(case, marks=marks, id=case.id)


def _require_venvs() -> None:
    for line in ("1.4", "1.2"):
        reason = missing_venv(line)
        if reason:
            if in_ci():
                pytest.fail(f"BentoML {line}: {reason} (CI=true)", pytrace=False)
            pytest.skip(f"BentoML {line}: {reason}")


# -- the fixture projects themselves ---------------------------------------------------------------


def test_every_project_has_the_shared_service() -> None:
    """One service.py for all (so their answers are comparable); a copy per project because
    `bentoml build` wants it in the build directory."""
    for project in PROJECTS.values():
        assert filecmp.cmp(
            FIXTURES / "service.py", project.path / "service.py", shallow=False
        ), f"{project.path}/service.py differs from {FIXTURES}/service.py"
    assert sorted(PROJECTS) == sorted(
        p.name for p in FIXTURES.iterdir() if (p / "bentofile.yaml").is_file()
    )


def test_setup_script_is_executable() -> None:
    # BentoML refuses a setup_script that is not executable
    assert os.access(FIXTURES / "setup-script" / "setup.sh", os.X_OK)


# -- session: BentoML's bentos and images, ours ----------------------------------------------------


@pytest.fixture(scope="session")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml-home")


@pytest.fixture(scope="session")
def bentos(bentoml_home: Path) -> dict[str, str]:
    """Every project built by BentoML's own `bentoml build`: project name -> bento tag."""
    _require_venvs()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {n: pool.submit(bentoml_build, p, bentoml_home) for n, p in PROJECTS.items()}
        return {name: future.result() for name, future in futures.items()}


class Images:
    """BentoML's reference images (docker) and ours, built concurrently on first use; answers
    cached. Only the cases of the tests selected in this session are built."""

    def __init__(self, bentos: dict[str, str], home: Path, ours_home: Path, cases: list[Case]):
        self.bentos, self.home, self.ours_home = bentos, home, ours_home
        self.reference: dict[str, Future[Outcome]] = {}
        self.ours: dict[Case, Future[Outcome]] = {}
        self._answers: dict[tuple[str, str], dict[str, object]] = {}
        self._pool = ThreadPoolExecutor(max_workers=BUILD_WORKERS)
        self.started = time.monotonic()
        # references first (every case compares with one), then ours, project by project so
        # the first build of a layer set warms the cache for the next
        for name in PROJECTS:
            self.reference[name] = self._pool.submit(
                bentoml_containerize, PROJECTS[name], bentos[name], home
            )
        for case in cases:
            source = str(PROJECTS[case.project].path) if case.source == "project" else None
            self.ours[case] = self._pool.submit(
                pipeline_build,
                case,
                source or bentos[case.project],
                ours_home / case.id if source else home,
            )

    def reference_answer(self, project: str) -> dict[str, object]:
        outcome = self.reference[project].result()
        assert outcome.tag, outcome.error
        key = ("reference", project)
        if key not in self._answers:
            self._answers[key] = answer_of("docker", outcome.tag)
        return self._answers[key]

    def our_image(self, case: Case) -> str:
        outcome = self.ours[case].result()
        assert outcome.tag, outcome.error
        return outcome.tag

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        summary = []
        for name, future in self.reference.items():
            outcome = future.result()
            summary.append(f"ref {name} {outcome.seconds:.0f}s")
            if outcome.tag:
                remove_image("docker", outcome.tag)
        for case, future in self.ours.items():
            outcome = future.result()
            summary.append(f"{case.id} {outcome.seconds:.0f}s")
            if outcome.tag:
                remove_image(case.engine, outcome.tag)
        took = time.monotonic() - self.started
        print(f"\nrealbento builds ({took:.0f}s wall): " + ", ".join(summary))


@pytest.fixture(scope="session")
def images(
    request: pytest.FixtureRequest,
    bentos: dict[str, str],
    bentoml_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Images]:
    selected = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.path == Path(__file__) and "case" in params:
            selected.append(params["case"])
    built = Images(bentos, bentoml_home, tmp_path_factory.mktemp("ours-home"), selected)
    try:
        yield built
    finally:
        built.close()


# -- tests -----------------------------------------------------------------------------------------


def test_bentoml_stores_each_spec(bentos: dict[str, str], bentoml_home: Path) -> None:
    """BentoML 1.4 stores spec-2 bentos (`image:`) unless an option needs spec 1, 1.2 always
    spec 1 (`docker:`), each pinning its own version."""
    for name, tag in bentos.items():
        bento_name, version = tag.split(":")
        meta = yaml.safe_load(
            (bentoml_home / "bentos" / bento_name / version / "bento.yaml").read_text()
        )
        project = PROJECTS[name]
        assert meta["bentoml_version"] == VERSIONS[project.line]
        if project.spec == 1:
            assert meta.get("spec", 1) == 1 and "docker" in meta and "image" not in meta, name
        else:
            assert meta["spec"] == 2 and "image" in meta, name


def expected_evidence(project: str) -> dict[str, object]:
    """What BentoML's image must report for the project's feature to be in effect."""
    env: dict[str, object] = dict.fromkeys(
        ("REALBENTO_ALL", "REALBENTO_BUILD", "REALBENTO_RUNTIME", "REALBENTO_TEMPLATE")
    )
    files: dict[str, object] = dict.fromkeys(
        ("/etc/realbento-setup-script", "/etc/realbento-template")
    )
    binaries = {"jq": False}
    if project == "system-packages":
        binaries["jq"] = True
    if project == "setup-script":
        files["/etc/realbento-setup-script"] = "setup-script ran as uid=0"
    if project == "envs":  # only stage `all` is baked; build and runtime ones are not
        env["REALBENTO_ALL"] = "baked-for-all"
    if project == "dockerfile-template":
        env["REALBENTO_TEMPLATE"] = "from-the-template"
        files["/etc/realbento-template"] = "written by bentoml's template"
    return {
        "camel": "HelloWorld",
        "data": REQUEST["data"],
        "bentoml": VERSIONS[PROJECTS[project].line],
        "env": env,
        "files": files,
        "binaries": binaries,
    }


@pytest.mark.docker
@pytest.mark.parametrize("project", list(PROJECTS))
def test_bentoml_image_shows_the_feature(images: Images, project: str) -> None:
    """The reference: BentoML's own image, run with no command, answers with the evidence of
    the project's feature (so comparing with it tests the feature)."""
    assert images.reference_answer(project) == expected_evidence(project)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_our_image_answers_like_bentoml(images: Images, case: Case) -> None:
    tag = images.our_image(case)
    assert answer_of(case.engine, tag) == images.reference_answer(case.project)
