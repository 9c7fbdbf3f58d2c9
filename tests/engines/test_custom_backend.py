"""examples/custom-backend end to end: a wrapper script registered as a backend, on real docker.

Once through the Python API (``register_backend``), once as a plugin found through the
``bento_pipeline.backends`` entry point by ``python -m pipeline`` in a fresh process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import (
    HELLO,
    ROOT,
    SECRET_MOUNT,
    image_exists,
    pipeline_cli,
    remove_image,
    run_in_image,
    serve_and_get,
    unique_tag,
)

import pipeline
from pipeline.backends import registry

EXAMPLE = ROOT / "examples" / "custom-backend"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture()
def custom_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import custom_backend as module

    module.register()
    yield module
    registry.unregister_backend(module.NAME)


def test_registered_wrapper_backend_builds_a_working_image(custom_backend: object) -> None:
    tag = unique_tag("wrapped", "hello")
    lines: list[str] = []
    try:
        result = pipeline.build(
            HELLO, backend="wrapped-docker", tags=[tag], progress="plain", on_output=lines.append
        )
        assert result.backend == "wrapped-docker"
        assert result.argv[0].endswith("examples/custom-backend/wrapper.sh")
        assert any(line.startswith("custom-backend: docker build") for line in lines)
        assert image_exists("docker", tag)
        status, body = serve_and_get("docker", tag)
        assert status == 200 and "hello from bento-pipeline" in body
    finally:
        remove_image("docker", tag)


def test_secrets_reach_the_build_through_the_plugin(custom_backend: object, tmp_path: Path) -> None:
    tag = unique_tag("wrapped", "secret")
    secret = tmp_path / "creds"
    secret.write_text("plugin-secret-value-123")
    try:
        pipeline.build(
            SECRET_MOUNT,
            backend="wrapped-docker",
            tags=[tag],
            secrets=[f"id=aws,src={secret}"],
            no_cache=True,
        )
        digest = run_in_image("docker", tag, "cat", "/home/bentoml/bento/secret.sha256").strip()
        assert digest == hashlib.sha256(b"plugin-secret-value-123").hexdigest()
    finally:
        remove_image("docker", tag)


def _plugin_env(tmp_path: Path) -> dict[str, str]:
    """A dist-info declaring the entry point, on PYTHONPATH: what `pip install` would leave."""
    site = tmp_path / "site"
    dist = site / "bento_pipeline_wrapped_docker-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bento-pipeline-wrapped-docker\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[bento_pipeline.backends]\nwrapped-docker = custom_backend:backend\n"
    )
    path = os.pathsep.join([str(site), str(EXAMPLE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "BENTOML_HOME": str(tmp_path / "store")}


def test_entry_point_plugin_is_found_by_the_cli(tmp_path: Path) -> None:
    env = _plugin_env(tmp_path)
    listed = pipeline_cli("backends", "--json", "wrapped-docker", env=env)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "wrapped-docker" and entry["plugin"] and entry["available"]

    tag = unique_tag("wrapped", "cli")
    try:
        built = pipeline_cli(
            "build", str(HELLO), "--backend", "wrapped-docker", "-t", tag, "--progress", "plain",
            env=env,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        assert "custom-backend: docker build" in built.stderr
        assert f"built {tag} with wrapped-docker" in built.stdout
        assert serve_and_get("docker", tag)[0] == 200
    finally:
        remove_image("docker", tag)
