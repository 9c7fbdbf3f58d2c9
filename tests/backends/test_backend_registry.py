"""Registry, plugin API, entry points and backend selection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pipeline
from pipeline.backends import registry
from pipeline.backends.base import Health
from pipeline.backends.executor import ExternalExecutor
from pipeline.errors import BackendError
from pipeline.executor import Executor
from pipeline.request import BuildRequest, SecretSpec


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    before = dict(registry._registered)
    yield
    registry._registered.clear()
    registry._registered.update(before)


def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*registry.ENV_VARS, "DOCKER_BUILDKIT"):
        monkeypatch.delenv(var, raising=False)


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(BackendError) as info:
        registry.get_backend("dockr")
    text = str(info.value)
    assert "unknown backend 'dockr'" in text
    assert "did you mean 'docker'" in text
    for name in ("docker", "buildx", "podman", "buildah", "nerdctl", "buildctl", "dagger"):
        assert repr(name) in text


def test_register_backend_like_bentoml() -> None:
    seen: dict[str, Any] = {}

    def construct_build_args(**options: Any) -> list[str]:
        seen.update(options)
        return ["build", "-t", options["tag"][0], options["context_path"]]

    spec = pipeline.register_backend(
        "mybuilder",
        binary="/usr/bin/true",
        buildkit_support=True,
        health=lambda: True,
        construct_build_args=construct_build_args,
        env={"X": "1"},
    )
    assert registry.get_backend("mybuilder") is spec
    assert "mybuilder" in registry.available_backends()
    request = BuildRequest(
        context=Path("/c"),
        tags=("a:b",),
        build_args={"K": "V"},
        secrets=(SecretSpec(id="s", src=Path("/f")),),
        opts=(("network", "host"), ("squash", None)),
    )
    argv = ExternalExecutor(spec).argv(request)
    assert argv == ["/usr/bin/true", "build", "-t", "a:b", "/c"]
    assert seen["build_arg"] == {"K": "V"}
    assert seen["secret"] == ("id=s,src=/f",)
    assert seen["network"] == "host" and seen["squash"] is True
    assert spec.health() == Health(True, "ok")
    assert spec.env == {"X": "1"}


def test_plugin_argv_must_be_a_list_not_a_shell_string() -> None:
    spec = registry.register_backend(
        "shelly",
        binary="sh",
        buildkit_support=False,
        health=lambda: True,
        construct_build_args=lambda **_: "build .",
    )
    with pytest.raises(BackendError, match="never a shell string"):
        spec.construct_build_args(BuildRequest(context=Path("/c")))


def test_plugin_without_kwargs_refuses_options_it_cannot_take() -> None:
    def narrow(*, context_path: str, tag: tuple[str, ...]) -> list[str]:
        return ["build", context_path]

    spec = registry.register_backend(
        "narrow", binary="x", buildkit_support=False, health=lambda: True,
        construct_build_args=narrow,
    )  # fmt: skip
    assert spec.construct_build_args(BuildRequest(context=Path("/c"))) == ["x", "build", "/c"]
    with pytest.raises(BackendError, match="does not take option"):
        spec.construct_build_args(BuildRequest(context=Path("/c"), target="t"))


def test_a_plugin_without_buildkit_refuses_secrets_before_it_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    script = tmp_path / "engine.sh"
    script.write_text(f"#!/bin/sh\ntouch {ran}\n")
    script.chmod(0o755)
    registry.register_backend(
        "plain", binary=str(script), buildkit_support=False, health=lambda: True,
        construct_build_args=lambda **kwargs: ["build", kwargs["context_path"]],
    )  # fmt: skip
    executor = registry.get_executor("plain")
    request = BuildRequest(context=tmp_path, secrets=(SecretSpec(id="tok", env="HOME"),))
    for thorough in (True, False):
        with pytest.raises(BackendError, match="declares buildkit_support=False") as caught:
            executor.check(request, thorough=thorough)
        assert caught.value.field == "--secret"
    assert executor.check(BuildRequest(context=tmp_path)) is not None  # no secret: fine
    assert not ran.exists()


def test_every_executor_answers_the_whole_protocol() -> None:
    """Callers use an executor as the protocol says, with no probing: each built-in, a
    plugin and Dagger have every member, with the values the renderer and the CLI need."""
    registry.register_backend(
        "proto", binary="x", buildkit_support=False, health=lambda: True,
        construct_build_args=lambda **kwargs: ["build", kwargs["context_path"]],
    )  # fmt: skip
    for name in (*registry.BUILTIN, "proto", "dagger"):
        executor = registry.get_executor(name)
        assert isinstance(executor, Executor), name
        assert isinstance(executor.renders_mounts, bool)
    docker, podman = registry.get_executor("docker"), registry.get_executor("podman")
    assert docker.renders_mounts and docker.max_locked_cache_mounts is None
    assert podman.max_locked_cache_mounts == 1  # buildah's deadlock on two locked mounts
    assert not registry.get_executor("proto").renders_mounts
    assert docker.run_hint("app:1") == "docker run --rm -p 127.0.0.1:3000:3000 app:1"
    assert registry.get_executor("dagger").run_hint("app:1") is None
    assert registry.get_executor("dagger").buildable_platforms() == ()


def test_plugin_health_failures_are_reasons_not_crashes(tmp_path: Path) -> None:
    def broken() -> bool:
        raise RuntimeError("boom")

    spec = registry.register_backend(
        "broken", binary=sys.executable, buildkit_support=False, health=broken,
        construct_build_args=lambda **_: [],
    )  # fmt: skip
    health = spec.health()
    assert not health.ok and "RuntimeError: boom" in health.reason
    missing = registry.register_backend(
        "missing", binary="no-such-binary-xyz", buildkit_support=False, health=lambda: True,
        construct_build_args=lambda **_: [],
    )  # fmt: skip
    assert missing.health() == Health(False, "no-such-binary-xyz is not on PATH")


def test_register_backend_rejects_bad_names() -> None:
    with pytest.raises(BackendError, match="reserved"):
        registry.register_backend(
            "dagger", binary="x", buildkit_support=True, health=lambda: True,
            construct_build_args=lambda **_: [],
        )  # fmt: skip
    with pytest.raises(BackendError, match="letters"):
        registry.register_backend(
            "a b", binary="x", buildkit_support=True, health=lambda: True,
            construct_build_args=lambda **_: [],
        )  # fmt: skip


def test_entry_points_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        def __init__(self, name: str, obj: Any) -> None:
            self.name, self.value, self._obj = name, f"plugin:{name}", obj

        def load(self) -> Any:
            return self._obj

    def from_mapping() -> dict[str, Any]:
        return dict(
            binary="true",
            buildkit_support=False,
            health=lambda: True,
            construct_build_args=lambda **_: ["build"],
        )

    def broken() -> None:
        raise ImportError("missing dependency")

    eps = [FakeEntryPoint("epbackend", from_mapping), FakeEntryPoint("broken", broken)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    with pytest.warns(pipeline.errors.PipelineWarning, match="broken.*missing dependency"):
        names = registry.load_entry_points(force=True)
    assert names == ["epbackend"]
    assert registry.get_backend("epbackend").plugin


def test_pyproject_declares_the_entry_point_group() -> None:
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert f'[project.entry-points."{registry.ENTRY_POINT_GROUP}"]' in text


def test_explicit_backend_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    monkeypatch.setenv("PIPELINE_BACKEND", "podman")
    assert registry.select_backend("buildah").name == "buildah"
    selection = registry.select_backend()
    assert (selection.name, selection.source) == ("podman", "PIPELINE_BACKEND")


def test_bentoml_env_var_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    monkeypatch.setenv("BENTOML_CONTAINERIZE_BACKEND", "buildx")
    selection = registry.select_backend()
    assert (selection.name, selection.source) == ("buildx", "BENTOML_CONTAINERIZE_BACKEND")


def test_unknown_backend_from_env_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    monkeypatch.setenv("PIPELINE_BACKEND", "kaniko")
    with pytest.raises(BackendError, match="unknown backend 'kaniko'"):
        registry.select_backend()


def test_docker_buildkit_0_selects_the_classic_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    selection = registry.select_backend("docker")
    assert selection.buildkit is False
    spec = registry.get_backend("docker")
    assert spec.env == {"DOCKER_BUILDKIT": "0"} and not spec.dockerfile_mounts
    monkeypatch.setenv("DOCKER_BUILDKIT", "1")
    assert registry.select_backend("docker").buildkit is True


def test_auto_selection_takes_the_first_healthy_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    healthy = {"podman"}

    def fake_get_backend(name: str, *, environ: Any = None) -> Any:
        spec = real_get_backend(name, environ=environ)
        import attrs

        ok = name in healthy
        return attrs.evolve(spec, health=lambda: Health(ok, "ok" if ok else f"{name} is down"))

    real_get_backend = registry.get_backend
    monkeypatch.setattr(registry, "get_backend", fake_get_backend)
    selection = registry.select_backend()
    assert (selection.name, selection.source) == ("podman", "auto")
    healthy.clear()
    with pytest.raises(BackendError) as info:
        registry.select_backend()
    text = str(info.value)
    assert "no usable build engine" in text
    assert text.index("docker is down") < text.index("buildctl is down")


def test_dagger_resolves_lazily() -> None:
    try:
        executor = registry.get_executor("dagger")
    except BackendError as exc:  # the dagger helper's module is absent in this install
        assert "dagger executor is not available" in str(exc)
    else:
        assert executor.name == "dagger"


def test_dagger_missing_is_a_clear_backend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pipeline.dagger.executor", None)
    with pytest.raises(BackendError, match="dagger executor is not available"):
        registry.get_executor("dagger")


def test_lazy_public_api() -> None:
    assert pipeline.register_backend is registry.register_backend
    assert pipeline.get_backend is registry.get_backend


def test_health_is_falsy_when_the_engine_is_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Health(False, "daemon down")
    assert Health(True, "ok")
    monkeypatch.setenv("PATH", "/nonexistent")
    health = registry.get_backend("docker").health()
    assert health.ok is False and not health
    assert bool(registry.get_backend("podman").health()) is False
