"""Finding what a stopped podman/buildah build left (pipeline/backends/workingcontainers.py):
its marked working containers in a store laid out as containers-storage lays it out, and its
orphaned RUN step by the pid file of the step's bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.backends.workingcontainers import (
    MARKER_ARG,
    marked_containers,
    parse_store,
    stop_orphaned_steps,
)


def _container(root: Path, cid: str, args: object) -> None:
    userdata = root / "overlay-containers" / cid / "userdata"
    userdata.mkdir(parents=True)
    (userdata / "buildah.json").write_text(json.dumps({"Args": args, "container-id": cid}))


def test_only_the_containers_of_this_build_are_found(tmp_path: Path) -> None:
    _container(tmp_path, "aaa", {MARKER_ARG: "mine", "TARGETARCH": "amd64"})
    _container(tmp_path, "bbb", {MARKER_ARG: "other", "TARGETARCH": "amd64"})
    _container(tmp_path, "ccc", {"TARGETARCH": "amd64"})  # a build without the marker
    _container(tmp_path, "ddd", None)
    (tmp_path / "overlay-containers" / "eee").mkdir()  # a podman container: no buildah state
    broken = tmp_path / "overlay-containers" / "fff" / "userdata"
    broken.mkdir(parents=True)
    (broken / "buildah.json").write_text("{not json")
    _container(tmp_path, "ggg", {MARKER_ARG: "mine"})
    assert marked_containers("overlay", tmp_path, "mine") == ["aaa", "ggg"]
    assert marked_containers("overlay", tmp_path, "nobody") == []
    assert marked_containers("vfs", tmp_path, "mine") == []  # no such driver directory


def test_the_store_is_read_from_the_engines_info() -> None:
    assert parse_store("overlay\n/var/lib/containers/storage\n") == (
        "overlay",
        Path("/var/lib/containers/storage"),
    )
    assert parse_store("overlay\n/home/me/my storage\n") == ("overlay", Path("/home/me/my storage"))
    assert parse_store("") is None
    assert parse_store("overlay\nrelative/path") is None


def test_a_pid_file_of_a_process_outside_the_bundles_cgroup_is_never_signalled(
    tmp_path: Path,
) -> None:
    """A pid file whose process is not in that bundle's cgroup (a pid reused since) is left."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        bundle = tmp_path / "buildah123456"
        bundle.mkdir()
        (bundle / "pid").write_text(str(bystander.pid))
        (tmp_path / "buildah-cache").mkdir()  # not a bundle
        assert stop_orphaned_steps(tmp_path, wait=0) == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
