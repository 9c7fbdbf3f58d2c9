"""Real engines push to the test bed's htpasswd registry (127.0.0.1:5001) with the credentials a
user's login leaves in an auth file, and the tool reads the result back with the same ones.

Each engine gets its credentials from a temporary file the way its users' logins leave them:
docker and buildx from ``$DOCKER_CONFIG/config.json``; podman from ``$REGISTRY_AUTH_FILE``;
buildah from ``$DOCKER_CONFIG`` (its default ``--authfile`` too), so the read-back finds both
kinds without a docker config in the home directory. One build per engine, then the same
(cached) build with a wrong password, and with no credentials for the registry: exit 1, one
clear error naming the registry, no traceback, no password anywhere in the output.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from enginekit import DOCKER_CLIS, HELLO, RUNNER, pipeline_cli, remove_image, use_cli

if TYPE_CHECKING:
    from conftest import AuthRegistry

ENGINES = [pytest.param(name, marks=getattr(pytest.mark, name)) for name in RUNNER]
# where each engine's credentials come from in these tests
AUTH_VARIABLE = {
    "docker": "DOCKER_CONFIG",
    "buildx": "DOCKER_CONFIG",
    "podman": "REGISTRY_AUTH_FILE",
    "buildah": "DOCKER_CONFIG",
}
LOGIN = {"docker": "docker", "buildx": "docker", "podman": "podman", "buildah": "buildah"}
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def auth_env(
    engine: str, directory: Path, registry: str, user: str, password: str
) -> dict[str, str]:
    """An environment whose only credentials are ``user:password`` for ``registry``, in a file
    under ``directory`` (as `docker login` / `podman login` write it)."""
    directory.mkdir()
    config = directory / "config.json"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
    config.chmod(0o600)
    variable = AUTH_VARIABLE[engine]
    # nothing of this machine's own logins (os.environ has the test's BENTOML_HOME)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE")}
    env[variable] = str(config if variable == "REGISTRY_AUTH_FILE" else directory)
    return env


def served_digest(registry: AuthRegistry, repository: str, tag: str) -> str:
    """What the registry serves under ``repository:tag`` (read with the test bed's password)."""
    basic = base64.b64encode(f"{registry.user}:{registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{registry.address}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES, "Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Docker-Content-Digest"])


@pytest.mark.slow
@pytest.mark.registry_auth
@pytest.mark.parametrize("engine", [*ENGINES, *DOCKER_CLIS])
def test_push_with_login_credentials_and_refusal_of_wrong_ones(
    engine: str,
    auth_registry: AuthRegistry,
    isolated_build_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = use_cli(engine, monkeypatch)
    repository = f"pipeline-test-auth-{engine}"
    version = secrets.token_hex(4)
    tag = f"{auth_registry.address}/{repository}:{version}"
    build = (
        "build", str(HELLO), "--backend", engine, "-t", tag, "--push",
        # an explicit platform: the pushed result is read back from the registry and checked
        "--platform", "linux/amd64", "--output", "json",
    )  # fmt: skip
    wrong = "wrong-" + secrets.token_hex(8)
    try:
        env = auth_env(engine, tmp_path / "good", auth_registry.address, auth_registry.user,
                       auth_registry.password)  # fmt: skip
        done = pipeline_cli(*build, env=env)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        # the engine's digest is what the registry serves, and we read it back ourselves
        assert result["digest"] == served_digest(auth_registry, repository, version)
        assert result["verified"] == "registry"
        assert "could not read" not in done.stderr
        for text in (done.stdout, done.stderr):
            assert auth_registry.password not in text

        env = auth_env(engine, tmp_path / "bad", auth_registry.address, auth_registry.user, wrong)
        refused = pipeline_cli(*build, env=env)
        assert refused.returncode == 1, refused.stderr
        assert refused.stdout == ""
        # progress lines, then the error
        first = refused.stderr.split("\nerror: ", 1)[-1].split("\n", 1)[0]
        assert first.startswith(
            f"{engine}: push to {auth_registry.address} failed: the registry refused "
            "authentication ("
        ), first
        assert f"with the credentials for {auth_registry.address} in {tmp_path / 'bad'}" in first
        assert f"(user {auth_registry.user}); the built tags were removed" in first
        hint = f"  hint: check that user and password, then log in again: `{LOGIN[engine]} login "
        assert hint + f"{auth_registry.address}`" in refused.stderr
        assert "Traceback" not in refused.stderr
        for text in (refused.stdout, refused.stderr):
            assert wrong not in text and auth_registry.password not in text
            assert base64.b64encode(f"{auth_registry.user}:{wrong}".encode()).decode() not in text

        # no entry for the registry at all: the same error, saying where none was found
        env = auth_env(engine, tmp_path / "none", "127.0.0.1:5999", auth_registry.user, wrong)
        missing = pipeline_cli(*build, env=env)
        assert missing.returncode == 1, missing.stderr
        first = missing.stderr.split("\nerror: ", 1)[-1].split("\n", 1)[0]
        assert first.startswith(
            f"{engine}: push to {auth_registry.address} failed: the registry refused "
            f"authentication ("
        ), first
        assert f"no credentials for {auth_registry.address} in {tmp_path / 'none'}" in first
        assert f"  hint: log in first: `{LOGIN[engine]} login {auth_registry.address}`" in (
            missing.stderr
        )
        assert "Traceback" not in missing.stderr
    finally:
        remove_image(RUNNER[engine], tag)
