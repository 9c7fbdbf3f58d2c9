"""The test bed's python:3.11-slim: a manifest list (amd64 + arm64) in the local registry, built
by ``python -m pipeline base-image --ca-cert <machine bundle>``. Each platform runs on docker and
podman, natively or under qemu, and reaches PyPI through the image's CA store."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

REPOSITORY = "library/python"
TAG = "3.11-slim"
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def registry_json(registry: str, path: str) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(f"http://{registry}/v2/{path}", headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def platform_digests(registry_url: str) -> dict[str, str]:
    """``{"linux/amd64": "sha256:...", ...}`` from the pushed manifest list."""
    index = registry_json(registry_url, f"{REPOSITORY}/manifests/{TAG}")
    assert index.get("manifests"), f"{REPOSITORY}:{TAG} is not a manifest list: {index}"
    return {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in index["manifests"]
    }


@pytest.mark.registry
def test_manifest_list_has_amd64_and_arm64(
    platform_digests: dict[str, str], registry_url: str
) -> None:
    assert set(platform_digests) == {"linux/amd64", "linux/arm64"}
    for platform, digest in platform_digests.items():
        manifest = registry_json(registry_url, f"{REPOSITORY}/manifests/{digest}")
        config = registry_json(registry_url, f"{REPOSITORY}/blobs/{manifest['config']['digest']}")
        assert f"{config['os']}/{config['architecture']}" == platform
        assert config["config"]["Cmd"] == ["python3"]
        assert "LANG=C.UTF-8" in config["config"]["Env"]


@pytest.mark.slow
@pytest.mark.registry
@pytest.mark.parametrize(
    "engine", [pytest.param(e, marks=getattr(pytest.mark, e)) for e in ("docker", "podman")]
)
@pytest.mark.parametrize(
    ("platform", "machine"),
    [
        pytest.param("linux/amd64", "x86_64", id="amd64"),
        pytest.param("linux/arm64", "aarch64", id="arm64", marks=pytest.mark.arm64),
    ],
)
def test_each_platform_runs_and_reaches_pypi(
    engine: str,
    platform: str,
    machine: str,
    platform_digests: dict[str, str],
    registry_url: str,
) -> None:
    # By digest, so the local python:3.11-slim tag other tests build from is left alone.
    ref = f"{registry_url}/{REPOSITORY}@{platform_digests[platform]}"
    script = (
        "uname -m; python --version; "
        "pip download --quiet --no-deps --dest /tmp/wheels six && ls /tmp/wheels"
    )
    proc = subprocess.run(
        [engine, "run", "--rm", "--platform", platform, ref, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.split()
    assert lines[0] == machine
    assert "3.11" in proc.stdout
    assert any(name.startswith("six-") and name.endswith(".whl") for name in lines)
