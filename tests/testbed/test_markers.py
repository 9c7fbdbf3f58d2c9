"""tests/conftest.py itself: an absent engine skips its tests, except in CI, where an engine
the test bed provides must be there (Dagger is never provided, so it still skips)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

TESTS = """
import pytest

@pytest.mark.docker
def test_needs_docker():
    pass

@pytest.mark.dagger
def test_needs_dagger():
    pass

def test_needs_nothing():
    pass

def test_registry_fixture(registry_url):
    assert registry_url == "127.0.0.1:5000"
"""


@pytest.fixture
def absent_engines(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(
        CONFTEST.read_text()
        + "\nfor _name in PROBES:\n"
        + "    PROBES[_name] = lambda _n=_name: f'{_n} is absent in this test'\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    docker: d\n    dagger: d\n    registry: r\n")
    pytester.makepyfile(TESTS)
    return pytester


def test_absent_engine_skips_with_reason(
    absent_engines: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = absent_engines.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(["*docker: docker is absent in this test*"])


def test_absent_testbed_engine_fails_in_ci(
    absent_engines: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = absent_engines.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1, errors=2)  # errors fail the run
    result.stdout.fnmatch_lines(
        ["*docker: docker is absent in this test (CI=true: the test bed should provide it)*"]
    )
    result.stdout.fnmatch_lines(["*dagger: dagger is absent in this test*"])


GROUPED = """
import os

import pytest

def _worker(name):
    with open(os.environ["GROUP_RECORD"], "a") as handle:
        handle.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.podman
@pytest.mark.parametrize("i", range(4))
def test_podman(i):
    _worker("containers")

@pytest.mark.buildah
@pytest.mark.parametrize("i", range(2))
def test_buildah(i):
    _worker("containers")

@pytest.mark.docker
@pytest.mark.parametrize("i", range(4))
def test_docker(i):
    _worker("docker")
"""


def test_each_engine_family_runs_in_one_worker(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `-n 2 --dist loadgroup` (scripts/test) all tests of one engine family run in one
    worker, so two builds of one family never run at once."""
    pytester.makeconftest(
        CONFTEST.read_text() + "\nfor _name in PROBES:\n    PROBES[_name] = lambda: None\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    docker: d\n    podman: p\n    buildah: b\n")
    pytester.makepyfile(GROUPED)
    record = tmp_path / "workers.txt"
    monkeypatch.setenv("GROUP_RECORD", str(record))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "xdist")
    result.assert_outcomes(passed=10)
    lines = record.read_text().split("\n")
    workers: dict[str, set[str]] = {}
    for line in filter(None, lines):
        family, worker = line.split()
        workers.setdefault(family, set()).add(worker)
    assert sorted(workers) == ["containers", "docker"]
    assert all(len(found) == 1 for found in workers.values()), workers
