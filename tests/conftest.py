"""Engine availability for every test (see docs/testbed.md).

Tests marked ``docker``, ``buildx``, ``buildah``, ``podman``, ``arm64``, ``registry``,
``registry_auth`` or ``dagger`` need that engine. Each engine is probed once per session with a
cheap command. A missing engine skips its tests with a one-line reason, except under
``CI=true``, where an engine the test bed (``scripts/testbed up``) provides is expected and its
absence fails the test.

Under ``pytest -n N --dist loadgroup`` (what ``scripts/test`` runs) the tests of each engine
family run one after another in one worker: ``containers`` (podman, buildah, and the BentoML
comparison, which also removes and builds their base images) and ``docker`` (docker, buildx,
the registries, qemu); the tests that need no engine are spread over every worker.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

pytest_plugins = ("pytester",)

REGISTRY = "127.0.0.1:5000"
# The test bed's registry that wants htpasswd credentials (scripts/testbed writes these to its
# env file; the defaults are where it puts them)
AUTH_REGISTRY = os.environ.get("PIPELINE_TESTBED_AUTH_REGISTRY", "127.0.0.1:5001")
AUTH_USER = os.environ.get("PIPELINE_TESTBED_AUTH_USER", "ci")
AUTH_PASSWORD_FILE = Path(
    os.environ.get(
        "PIPELINE_TESTBED_AUTH_PASSWORD_FILE", "/run/pipeline-testbed/registry-auth/password"
    )
)
# Engines the test bed brings up; in CI their absence is a failure. Dagger is not among them.
TESTBED_ENGINES = frozenset(
    {"docker", "buildx", "buildah", "podman", "arm64", "registry", "registry_auth"}
)


def _run_ok(*argv: str, timeout: float = 20) -> str | None:
    """None when ``argv`` succeeds, else a one-line reason."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not installed"
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"`{' '.join(argv)}` timed out after {timeout:.0f}s"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"`{' '.join(argv)}` failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
    return None


def _probe_docker() -> str | None:
    return _run_ok("docker", "info", "--format", "{{.ServerVersion}}")


def _probe_buildx() -> str | None:
    return _probe_docker() or _run_ok("docker", "buildx", "version")


def _probe_buildah() -> str | None:
    return _run_ok("buildah", "version")


def _probe_podman() -> str | None:
    return _run_ok("podman", "info", "--format", "{{.Host.OCIRuntime.Name}}")


def _probe_arm64() -> str | None:
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if os.uname().machine == "aarch64":
        return None
    try:
        state = entry.read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        return "no qemu-aarch64 binfmt_misc entry (apt-get install qemu-user-static)"
    return None if state == "enabled" else "qemu-aarch64 binfmt is disabled"


def _probe_registry() -> str | None:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=3):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return f"no registry on {REGISTRY} ({getattr(exc, 'reason', exc)})"


def _probe_registry_auth() -> str | None:
    """The auth registry answers 401 without credentials and 200 with the test bed's."""
    try:
        password = AUTH_PASSWORD_FILE.read_text()
    except OSError as exc:
        return f"no password file for the registry on {AUTH_REGISTRY} ({exc.strerror})"
    url = f"http://{AUTH_REGISTRY}/v2/"
    try:
        urllib.request.urlopen(url, timeout=3).close()
        return f"the registry on {AUTH_REGISTRY} does not ask for credentials"
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            return f"the registry on {AUTH_REGISTRY} answers HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"no registry on {AUTH_REGISTRY} ({getattr(exc, 'reason', exc)})"
    basic = base64.b64encode(f"{AUTH_USER}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {basic}"})
    try:
        urllib.request.urlopen(request, timeout=3).close()
    except (urllib.error.URLError, OSError) as exc:
        return f"the registry on {AUTH_REGISTRY} refuses the test bed's credentials ({exc})"
    return None


def _probe_dagger() -> str | None:
    if os.environ.get("DAGGER_SESSION_PORT") or os.environ.get("_EXPERIMENTAL_DAGGER_CLI_BIN"):
        return None
    return _run_ok("dagger", "version")


PROBES: dict[str, Callable[[], str | None]] = {
    "docker": _probe_docker,
    "buildx": _probe_buildx,
    "buildah": _probe_buildah,
    "podman": _probe_podman,
    "arm64": _probe_arm64,
    "registry": _probe_registry,
    "registry_auth": _probe_registry_auth,
    "dagger": _probe_dagger,
}


@functools.cache
def engine_missing(name: str) -> str | None:
    """Why engine ``name`` cannot be used here (probed once per session), or None."""
    return PROBES[name]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_engine(name: str) -> None:
    """Skip (or in CI, for test-bed engines, fail) the current test when ``name`` is missing."""
    reason = engine_missing(name)
    if reason is None:
        return
    if in_ci() and name in TESTBED_ENGINES:
        pytest.fail(f"{name}: {reason} (CI=true: the test bed should provide it)", pytrace=False)
    pytest.skip(f"{name}: {reason}")


CONTAINERS_FAMILY = frozenset({"podman", "buildah"})
DOCKER_FAMILY = frozenset({"docker", "buildx", "registry", "registry_auth", "arm64", "dagger"})
REALBENTO = Path(__file__).parent / "realbento"


def engine_group(item: pytest.Item) -> str | None:
    """The serial group an engine test runs in (see the module docstring); None: no engine."""
    marks = {mark.name for mark in item.iter_markers()}
    if marks & CONTAINERS_FAMILY or REALBENTO in item.path.parents:
        return "containers"
    if marks & DOCKER_FAMILY:
        return "docker"
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        group = engine_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in PROBES:
        if item.get_closest_marker(name) is not None:
            require_engine(name)


@pytest.fixture(scope="session")
def available_engines() -> frozenset[str]:
    """The engines usable in this session (no skipping; for tests that adapt)."""
    return frozenset(name for name in PROBES if engine_missing(name) is None)


@pytest.fixture(scope="session")
def registry_url() -> str:
    """The test bed's plain-HTTP registry, ``127.0.0.1:5000`` (skips/fails when it is down)."""
    require_engine("registry")
    return REGISTRY


class AuthRegistry(NamedTuple):
    """The test bed's htpasswd registry: ``address`` (``127.0.0.1:5001``), user, password."""

    address: str
    user: str
    password: str


@pytest.fixture(scope="session")
def auth_registry() -> AuthRegistry:
    """The registry that wants credentials (skips/fails like a ``registry_auth`` marker)."""
    require_engine("registry_auth")
    return AuthRegistry(AUTH_REGISTRY, AUTH_USER, AUTH_PASSWORD_FILE.read_text())


@pytest.fixture()
def isolated_build_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Own bento store (``BENTOML_HOME``), own ``tempfile.tempdir`` (returned: a test can check
    that no build context is left in it) and no backend choice from the environment."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    for var in ("PIPELINE_BACKEND", "BENTOML_CONTAINERIZE_BACKEND", "DOCKER_BUILDKIT"):
        monkeypatch.delenv(var, raising=False)
    return private_tmp
