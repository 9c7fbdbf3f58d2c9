"""``python -m pipeline bento build|delete|prune`` as real processes: what an unchanged build,
delete and prune print, their exit codes, and what they leave in the store."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.cli.clirun import cli

FIXTURES = Path(__file__).parent.parent / "fixtures"


def put_bento(home: Path, name: str, version: str, created: str) -> Path:
    path = home / "bentos" / name / version
    (path / "src").mkdir(parents=True)
    (path / "bento.yaml").write_text(
        f"name: {name}\nversion: {version}\nservice: s:S\ncreation_time: '{created}'\n"
    )
    (path / "src" / "s.py").write_text("S = 1\n" * 300)  # with bento.yaml: 1.8 KiB
    return path


def versions(home: Path, name: str) -> list[str]:
    name_dir = home / "bentos" / name
    if not name_dir.is_dir():
        return []
    return sorted(p.name for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def svc(home: Path) -> Path:
    """svc:v1 < v2 < v3 by creation_time, `latest` names v3; other:x."""
    for index in (1, 2, 3):
        put_bento(home, "svc", f"v{index}", f"2024-0{index}-01T00:00:00+00:00")
    (home / "bentos" / "svc" / "latest").write_text("v3")
    put_bento(home, "other", "x", "2024-01-01T00:00:00+00:00")
    return home / "bentos" / "svc"


def test_building_an_unchanged_project_prints_the_same_tag(home: Path, tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "bentofile.yaml").write_text("service: app:Api\n")
    (project / "app.py").write_text("Api = 1\n")
    first = cli("bento", "build", str(project), home=home)
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("built api:")
    again = cli("bento", "build", str(project), home=home)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    tag = first.stdout.strip()
    assert again.stderr.startswith(f"unchanged: {tag} is already in the store")
    assert versions(home, "api") == [tag.split(":")[1]]


def test_delete_versions(home: Path, svc: Path) -> None:
    done = cli("bento", "delete", "svc:v1", "other:x", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "deleted svc:v1\ndeleted other:x\n"
    assert done.stderr == ""
    assert versions(home, "svc") == ["v2", "v3"]
    assert not (home / "bentos" / "other").exists()


def test_delete_by_name_says_which_version_and_repoints_latest(home: Path, svc: Path) -> None:
    done = cli("bento", "delete", "svc", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "deleted svc:v3\n"
    assert "svc names the latest version: deleting svc:v3 only" in done.stderr
    assert (svc / "latest").read_text() == "v2"
    get = cli("bento", "get", "svc", "-o", "path", home=home)
    assert get.stdout == f"{svc / 'v2'}\n"


def test_delete_by_path_inside_the_store(home: Path, svc: Path) -> None:
    done = cli("bento", "delete", str(svc / "v2"), home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "deleted svc:v2\n"
    assert versions(home, "svc") == ["v1", "v3"]


def test_delete_an_unknown_tag_deletes_nothing(home: Path, svc: Path) -> None:
    done = cli("bento", "delete", "svc:v1", "scv:v2", home=home)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: tag: no bento named 'scv'")
    assert "(did you mean 'svc'?)" in done.stderr and "Traceback" not in done.stderr
    assert versions(home, "svc") == ["v1", "v2", "v3"]  # svc:v1 too: all are found first
    version = cli("bento", "delete", "svc:v9", home=home)
    assert version.returncode == 2
    assert "bento 'svc' has no version 'v9'" in version.stderr
    assert "known versions of svc: v1, v2, v3" in version.stderr


def test_delete_refuses_a_directory_outside_the_store(
    home: Path, svc: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    shutil.copytree(svc / "v1", mine)
    done = cli("bento", "delete", str(mine), home=home)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: bento: {mine} is not a bento of the store")
    assert "bentos/<name>/<version>" in done.stderr and "Traceback" not in done.stderr
    assert (mine / "bento.yaml").is_file()
    missing = cli("bento", "delete", str(tmp_path / "nope"), home=home)
    assert missing.returncode == 2 and "no such directory" in missing.stderr


def test_prune_output_and_what_it_removes(home: Path, svc: Path) -> None:
    leftover = home / "bentos" / "svc" / ".tmp-build-interrupted"
    leftover.mkdir()
    (leftover / "half.txt").write_text("x" * 100)
    old = time.time() - 7200
    for path in (leftover / "half.txt", leftover):
        os.utime(path, (old, old))

    dry = cli("bento", "prune", "--dry-run", home=home)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would delete svc:v2 (1.8 KiB)",
        "would delete svc:v1 (1.8 KiB)",
        f"would remove leftover {leftover} (100 B)",
    ]
    assert dry.stderr == (
        "would prune 2 versions and 1 leftover (3.8 KiB); nothing was removed (--dry-run)\n"
    )
    assert versions(home, "svc") == ["v1", "v2", "v3"] and leftover.is_dir()

    done = cli("bento", "prune", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "deleted svc:v2 (1.8 KiB)",
        "deleted svc:v1 (1.8 KiB)",
        f"removed leftover {leftover} (100 B)",
    ]
    assert done.stderr == "pruned 2 versions and 1 leftover, 3.8 KiB freed\n"
    assert versions(home, "svc") == ["v3"] and versions(home, "other") == ["x"]
    assert not leftover.exists()

    again = cli("bento", "prune", home=home)
    assert again.returncode == 0 and again.stdout == ""
    assert again.stderr == f"nothing to prune in {home / 'bentos'}\n"


def test_prune_keep_and_names_with_json_output(home: Path, svc: Path) -> None:
    put_bento(home, "other", "y", "2025-01-01T00:00:00+00:00")
    done = cli("bento", "prune", "--keep", "2", "svc", "other", "-o", "json", home=home)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows == [
        {
            "kind": "version",
            "tag": "svc:v1",
            "name": "svc",
            "version": "v1",
            "path": str(svc / "v1"),
            "size": sum(
                f.stat().st_size for f in [svc / "v2" / "bento.yaml", svc / "v2" / "src" / "s.py"]
            ),
            "removed": True,
        }
    ]
    assert done.stderr == "pruned 1 version, 1.8 KiB freed\n"
    assert versions(home, "other") == ["x", "y"]


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ("0", "cannot keep 0 versions: keep at least 1; use delete to remove all"),
        ("-2", "cannot keep -2 versions: keep at least 1; use delete to remove all"),
        ("two", "'two' is not a whole number of versions to keep"),
        ("1.5", "'1.5' is not a whole number of versions to keep"),
    ],
)
def test_prune_bad_keep_exits_2(home: Path, svc: Path, keep: str, message: str) -> None:
    done = cli("bento", "prune", f"--keep={keep}", home=home)
    assert done.returncode == 2
    assert f"error: argument --keep: {message}" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert versions(home, "svc") == ["v1", "v2", "v3"]


def test_prune_bad_names_exit_2(home: Path, svc: Path) -> None:
    unknown = cli("bento", "prune", "svx", home=home)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: name: no bento named 'svx'")
    assert "(did you mean 'svc'?)" in unknown.stderr
    version = cli("bento", "prune", "svc:v1", home=home)
    assert version.returncode == 2
    assert "prune takes bento names, not versions" in version.stderr
    assert "bento delete svc:v1" in version.stderr
    assert versions(home, "svc") == ["v1", "v2", "v3"]


def test_prune_a_store_that_does_not_exist(home: Path) -> None:
    done = cli("bento", "prune", home=home)
    assert done.returncode == 0
    assert done.stdout == "" and done.stderr == f"nothing to prune in {home / 'bentos'}\n"
    json_done = cli("bento", "prune", "-o", "json", home=home)
    assert json_done.returncode == 0 and json.loads(json_done.stdout) == []
    assert not home.exists()


def test_help_of_delete_and_prune(home: Path) -> None:
    overview = cli("bento", "--help", home=home)
    assert "delete" in overview.stdout and "prune" in overview.stdout
    assert "bento prune --keep 3 --dry-run" in overview.stdout
    delete = cli("bento", "delete", "--help", home=home)
    assert delete.returncode == 0
    assert "python -m pipeline bento delete summarize:v1" in delete.stdout
    assert "name or name:latest deletes the latest version only" in delete.stdout
    prune = cli("bento", "prune", "--help", home=home)
    assert prune.returncode == 0
    for text in ("--keep N", "--dry-run", "bento prune --keep 3 summarize", ".tmp-*"):
        assert text in prune.stdout
