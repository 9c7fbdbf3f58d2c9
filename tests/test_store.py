"""Store hygiene: content-addressed versions, delete and prune (real files in a temporary store)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.bento import (
    build_bento,
    content_version,
    delete_bento,
    get_bento,
    list_bentos,
    prune_bentos,
    resolve_bento,
)
from pipeline.config import Bento
from pipeline.errors import BentoNotFoundError, ConfigError, PipelineError
from pipeline.prune import LEFTOVER_AGE
from pipeline.store import check_tag_part

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "bentoml-home"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home


def make_project(root: Path, bentofile: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bentofile.yaml").write_text(textwrap.dedent(bentofile), encoding="utf-8")
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


BENTOFILE = """\
service: app:Api
labels: {team: a}
python:
  packages: [six==1.16.0]
  lock_packages: false
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(
        tmp_path / "project",
        BENTOFILE,
        {"app.py": "Api = 1\n", "data/table.csv": "a,b\n1,2\n", "README.md": "# Api\n"},
    )


def snapshot(home: Path) -> dict[str, tuple[bytes, float] | None]:
    """Every path under ``home``: a file's bytes and mtime, None for a directory."""
    if not home.exists():
        return {}
    return {
        p.relative_to(home).as_posix(): None if p.is_dir() else (p.read_bytes(), p.stat().st_mtime)
        for p in sorted(home.rglob("*"))
    }


def versions(home: Path, name: str) -> list[str]:
    name_dir = home / "bentos" / name
    if not name_dir.is_dir():
        return []
    return sorted(p.name for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.rglob(".tmp-*")) if home.exists() else []


def latest(home: Path, name: str) -> str:
    return (home / "bentos" / name / "latest").read_text().strip()


def put_bento(home: Path, name: str, version: str, created: str | None) -> Path:
    path = home / "bentos" / name / version
    path.mkdir(parents=True)
    lines = [f"name: {name}", f"version: {version}", "service: s:S"]
    if created:
        lines.append(f"creation_time: '{created}'")
    (path / "bento.yaml").write_text("\n".join(lines) + "\n")
    (path / "src").mkdir()
    (path / "src" / "s.py").write_text("S = 1\n" * 100)
    return path


def age(path: Path, seconds: float) -> None:
    """Make ``path`` and everything in it look untouched for ``seconds``."""
    when = time.time() - seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when), follow_symlinks=False)


# --- content-addressed versions -------------------------------------------------------------


def test_an_unchanged_project_is_stored_once(store: Path, project: Path) -> None:
    first = build_bento(project)
    before = snapshot(first.path)
    second = build_bento(project)
    assert second.tag == first.tag and second.path == first.path
    assert versions(store, "api") == [first.version]
    assert latest(store, "api") == first.version
    assert snapshot(first.path) == before  # not even the creation_time was rewritten
    assert second.creation_time == first.creation_time
    assert leftovers(store) == []


def test_the_content_version_is_a_valid_bentoml_version(store: Path, project: Path) -> None:
    version = build_bento(project).version
    assert re.fullmatch(r"[a-z2-7]{16}", version)
    assert check_tag_part(version, "bento version", field="version") == version
    data = yaml.safe_load((store / "bentos" / "api" / version / "bento.yaml").read_text())
    assert data["version"] == version


def test_the_version_does_not_depend_on_where_or_when(
    store: Path, project: Path, tmp_path: Path
) -> None:
    here = build_bento(project)
    elsewhere = tmp_path / "elsewhere" / "copy"
    shutil.copytree(project, elsewhere)
    age(elsewhere, 86400)  # other mtimes
    other_store = tmp_path / "other-store"
    there = build_bento(elsewhere, store=other_store)
    assert there.version == here.version
    assert there.path == other_store / "bentos" / "api" / here.version


def change_source(root: Path) -> None:
    (root / "app.py").write_text("Api = 2\n")


def add_file(root: Path) -> None:
    (root / "data" / "more.csv").write_text("c\n")


def make_executable(root: Path) -> None:
    (root / "data" / "table.csv").chmod(0o755)


def change_label(root: Path) -> None:
    text = (root / "bentofile.yaml").read_text().replace("team: a", "team: b")
    (root / "bentofile.yaml").write_text(text)


def change_requirement(root: Path) -> None:
    text = (root / "bentofile.yaml").read_text().replace("six==1.16.0", "six==1.17.0")
    (root / "bentofile.yaml").write_text(text)


def change_docker_option(root: Path) -> None:
    (root / "bentofile.yaml").write_text(BENTOFILE + "docker:\n  distro: alpine\n")


def change_readme(root: Path) -> None:
    (root / "README.md").write_text("# Api, documented\n")


CHANGES: list[Callable[[Path], None]] = [
    change_source,
    add_file,
    make_executable,
    change_label,
    change_requirement,
    change_docker_option,
    change_readme,
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_any_change_gives_a_new_version(
    store: Path, project: Path, change: Callable[[Path], None]
) -> None:
    first = build_bento(project)
    change(project)
    second = build_bento(project)
    assert second.version != first.version
    assert versions(store, "api") == sorted([first.version, second.version])
    assert latest(store, "api") == second.version
    assert get_bento("api").version == second.version
    assert get_bento(f"api:{first.version}").path.is_dir()  # the old one is kept


def test_a_different_bentoml_pin_gives_a_new_version(store: Path, tmp_path: Path) -> None:
    root = make_project(
        tmp_path / "p",
        "service: service:Svc\npython:\n  lock_packages: false\n",
        {"service.py": "import bentoml\n\n@bentoml.service\nclass Svc:\n    pass\n"},
    )
    one = build_bento(root, bentoml_version="1.4.40")
    again = build_bento(root, bentoml_version="1.4.40")
    other = build_bento(root, bentoml_version="1.4.3")
    assert again.version == one.version != other.version


def test_content_version_leaves_out_only_the_version_and_the_time(tmp_path: Path) -> None:
    payload = tmp_path / "payload"
    (payload / "src").mkdir(parents=True)
    (payload / "src" / "a.py").write_text("A = 1\n")
    metadata = {"name": "api", "version": "x", "creation_time": "2024-01-01", "labels": {}}

    def version(readme: str = "# api\n", **changes: object) -> str:
        return content_version(payload, readme=readme, metadata={**metadata, **changes})

    base = version()
    assert version(version="y", creation_time="2025-06-01") == base
    assert version(labels={"a": "b"}) != base
    assert version(readme="# api!\n") != base
    (payload / "src" / "a.py").write_text("A = 2\n")
    assert version() != base


def test_rebuilding_unchanged_content_points_latest_back_at_it(store: Path, project: Path) -> None:
    content = build_bento(project)
    build_bento(project, version="pinned")
    assert latest(store, "api") == "pinned"
    again = build_bento(project)
    assert again.tag == content.tag
    assert latest(store, "api") == content.version  # the newest build
    assert versions(store, "api") == sorted([content.version, "pinned"])


def test_an_explicit_version_that_exists_is_still_an_error(store: Path, project: Path) -> None:
    build_bento(project, version="v1")
    before = snapshot(store)
    with pytest.raises(ConfigError, match="already exists") as info:
        build_bento(project, version="v1")
    assert info.value.field == "--version"
    assert snapshot(store) == before


def test_a_failing_check_leaves_the_stored_version_untouched(store: Path, project: Path) -> None:
    stored = build_bento(project)
    build_bento(project, version="pinned")  # latest now names another version
    before = snapshot(store)
    seen: list[Bento] = []

    def refuse(bento: Bento) -> None:
        seen.append(bento)
        raise ConfigError("refused by the check")

    with pytest.raises(ConfigError, match="refused by the check"):
        build_bento(project, check=refuse)
    assert seen and seen[0].version == stored.version  # checked: the same content
    assert snapshot(store) == before
    assert latest(store, "api") == "pinned"
    assert leftovers(store) == []


def test_a_stored_bento_changed_by_hand_is_not_reused(store: Path, project: Path) -> None:
    stored = build_bento(project)
    (stored.path / "src" / "app.py").write_text("Api = 'edited in the store'\n")
    before = snapshot(store)
    with pytest.raises(PipelineError, match="was changed after it was stored") as info:
        build_bento(project)
    assert f"bento delete api:{stored.version}" in str(info.value)
    assert snapshot(store) == before
    delete_bento(f"api:{stored.version}")
    assert build_bento(project).version == stored.version  # stored afresh


def test_a_build_that_loses_the_race_returns_the_winners_bento(store: Path, project: Path) -> None:
    """Another build of the same content stores it while this one is in its check: this one's
    rename fails (the version exists) and it returns that bento, discarding its copy."""
    winners: list[Bento] = []

    def build_the_same_meanwhile(bento: Bento) -> None:
        if not winners:
            winners.append(build_bento(project))

    loser = build_bento(project, check=build_the_same_meanwhile)
    assert winners and loser.tag == winners[0].tag and loser.path == winners[0].path
    assert versions(store, "api") == [loser.version]
    assert latest(store, "api") == loser.version
    assert leftovers(store) == []
    assert (loser.path / "src" / "app.py").read_text() == "Api = 1\n"


def test_concurrent_builds_of_one_project_store_one_intact_bento(
    store: Path, project: Path
) -> None:
    """Several threads build at once; a barrier in the check makes them all finish writing
    before any of them moves its copy into the store."""
    count = 4
    barrier = threading.Barrier(count, timeout=60)
    results: list[Bento] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(build_bento(project, check=lambda bento: barrier.wait()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(results) == count and len({b.tag for b in results}) == 1
    version = results[0].version
    assert versions(store, "api") == [version]
    assert latest(store, "api") == version
    assert leftovers(store) == []
    # intact: a fresh build of the same project into another store is byte for byte the same
    path = store / "bentos" / "api" / version
    reference = build_bento(project, store=store.parent / "reference").path
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))
    assert files == sorted(p.relative_to(reference).as_posix() for p in reference.rglob("*"))
    for rel in files:
        if (path / rel).is_file() and rel != "bento.yaml":
            assert (path / rel).read_bytes() == (reference / rel).read_bytes(), rel


def test_a_bento_made_by_bentoml_is_used_as_is(store: Path) -> None:
    bento = resolve_bento(FIXTURES / "bento_v1_4")
    assert bento.tag == "whisperx:vcynnjbtxsqwmhkh"
    assert bento.path == FIXTURES / "bento_v1_4"
    assert not store.exists()


# --- resolve_bento(project_store=) ----------------------------------------------------------


def test_resolve_builds_a_project_into_the_project_store(
    store: Path, project: Path, tmp_path: Path
) -> None:
    put_bento(store, "svc", "v1", "2024-01-01T00:00:00+00:00")
    before = snapshot(store)
    scratch = tmp_path / "scratch-store"
    bento = resolve_bento(project, project_store=scratch)
    assert bento.path.parent == scratch / "bentos" / "api"
    assert snapshot(store) == before
    # tags are still looked up in the store
    assert resolve_bento("svc", project_store=scratch).path == store / "bentos" / "svc" / "v1"
    with pytest.raises(BentoNotFoundError):
        resolve_bento("api", project_store=scratch)


# --- delete ---------------------------------------------------------------------------------


@pytest.fixture
def three(store: Path) -> Path:
    """svc with versions old < mid < new by creation_time; `latest` names new."""
    put_bento(store, "svc", "old", "2024-01-01T00:00:00+00:00")
    put_bento(store, "svc", "mid", "2024-06-01T00:00:00+00:00")
    put_bento(store, "svc", "new", "2025-01-01T00:00:00+00:00")
    (store / "bentos" / "svc" / "latest").write_text("new")
    return store / "bentos" / "svc"


def test_delete_by_version(store: Path, three: Path) -> None:
    assert delete_bento("svc:mid") == three / "mid"
    assert versions(store, "svc") == ["new", "old"]
    assert latest(store, "svc") == "new"
    assert leftovers(store) == []


def test_delete_by_name_deletes_the_latest_version_only(store: Path, three: Path) -> None:
    assert delete_bento("svc") == three / "new"
    assert versions(store, "svc") == ["mid", "old"]
    assert latest(store, "svc") == "mid"  # the newest remaining, by creation_time
    assert delete_bento("svc:latest") == three / "mid"
    assert versions(store, "svc") == ["old"] and latest(store, "svc") == "old"


def test_deleting_what_latest_names_repoints_it_by_creation_time(store: Path, three: Path) -> None:
    (three / "latest").write_text("old")  # latest is not the newest by creation_time
    delete_bento("svc:old")
    assert latest(store, "svc") == "new"
    assert get_bento("svc").version == "new"


def test_deleting_the_last_version_removes_the_name(store: Path) -> None:
    put_bento(store, "svc", "only", None)
    (store / "bentos" / "svc" / "latest").write_text("only")
    put_bento(store, "other", "v1", None)
    delete_bento("svc:only")
    assert not (store / "bentos" / "svc").exists()
    assert [b.tag for b in list_bentos()] == ["other:v1"]


def test_delete_keeps_the_name_dir_of_an_active_build(store: Path) -> None:
    put_bento(store, "svc", "only", None)
    building = store / "bentos" / "svc" / ".tmp-build-active"
    building.mkdir()
    delete_bento("svc:only")
    assert building.is_dir()
    assert not (store / "bentos" / "svc" / "latest").exists()


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("svx", "no bento named 'svx'"),
        ("svc:mdi", "bento 'svc' has no version 'mdi' (did you mean 'mid'?)"),
        ("bad name", "bento name 'bad name' is not valid"),
    ],
)
def test_delete_a_missing_tag(store: Path, three: Path, tag: str, message: str) -> None:
    before = snapshot(store)
    with pytest.raises((BentoNotFoundError, ConfigError)) as info:
        delete_bento(tag)
    assert message in str(info.value)
    assert info.value.exit_code == 2
    assert snapshot(store) == before


def test_delete_a_bento_directory_of_the_store(store: Path, three: Path) -> None:
    assert delete_bento(str(three / "old")) == three / "old"
    assert delete_bento(str(three / "mid" / "bento.yaml")) == three / "mid"
    assert versions(store, "svc") == ["new"]


def test_delete_refuses_directories_outside_the_store(
    store: Path, three: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "mine" / "bentos" / "svc" / "v1"
    shutil.copytree(three / "old", outside)
    before = snapshot(store)
    for ref in (outside, three, store / "bentos", tmp_path / "mine"):
        with pytest.raises(ConfigError, match="is not a bento of the store") as info:
            delete_bento(str(ref))
        assert info.value.exit_code == 2
    assert (outside / "bento.yaml").is_file()
    assert snapshot(store) == before


def test_delete_a_symlinked_version_removes_the_link_only(store: Path, tmp_path: Path) -> None:
    target = put_bento(tmp_path / "elsewhere", "svc", "real", None)
    put_bento(store, "svc", "v1", None)
    (store / "bentos" / "svc" / "linked").symlink_to(target, target_is_directory=True)
    with pytest.raises(ConfigError, match="is not a bento of the store"):
        delete_bento(str(store / "bentos" / "svc" / "linked"))  # resolves outside
    delete_bento("svc:linked")
    assert not (store / "bentos" / "svc" / "linked").exists()
    assert (target / "bento.yaml").is_file() and (target / "src" / "s.py").is_file()


def test_delete_a_broken_bento(store: Path) -> None:
    broken = store / "bentos" / "svc" / "v1"
    broken.mkdir(parents=True)
    (broken / "bento.yaml").write_text("name: svc\ndocker: {distro: nope}\n")
    delete_bento("svc:v1")
    assert not (store / "bentos" / "svc").exists()


def test_delete_then_rebuild_stores_the_content_again(store: Path, project: Path) -> None:
    first = build_bento(project)
    delete_bento("api")
    assert not (store / "bentos" / "api").exists()
    again = build_bento(project)
    assert again.version == first.version and again.path.is_dir()
    assert latest(store, "api") == first.version


# --- prune ----------------------------------------------------------------------------------


@pytest.fixture
def many(store: Path) -> Path:
    """a: five versions (`latest` names v2, not the newest by creation_time); b: one; c: a
    bento BentoML made, and an older one of ours."""
    for index in range(1, 6):
        put_bento(store, "a", f"v{index}", f"2024-0{index}-01T00:00:00+00:00")
    (store / "bentos" / "a" / "latest").write_text("v2")
    put_bento(store, "b", "only", "2020-01-01T00:00:00+00:00")
    shutil.copytree(FIXTURES / "bento_v1_4", store / "bentos" / "whisperx" / "vcynnjbtxsqwmhkh")
    put_bento(store, "whisperx", "ours", "2024-01-01T00:00:00+00:00")
    return store


def test_prune_keeps_the_latest_and_the_next_newest(many: Path) -> None:
    removed = prune_bentos(keep=2)
    assert [r.tag for r in removed] == ["a:v4", "a:v3", "a:v1"]
    assert all(r.size > 0 and not r.path.exists() for r in removed)
    assert versions(many, "a") == ["v2", "v5"]  # latest, then the newest other
    assert versions(many, "b") == ["only"]
    assert versions(many, "whisperx") == ["ours", "vcynnjbtxsqwmhkh"]
    assert latest(many, "a") == "v2"
    assert leftovers(many) == []


def test_prune_keeps_one_by_default_and_only_the_names_given(many: Path) -> None:
    removed = prune_bentos(names=["a"])
    assert [r.tag for r in removed] == ["a:v5", "a:v4", "a:v3", "a:v1"]
    assert versions(many, "a") == ["v2"]
    assert versions(many, "whisperx") == ["ours", "vcynnjbtxsqwmhkh"]
    assert prune_bentos(names=["a"]) == []
    # every name: the bento BentoML made is the newer one, so ours goes
    assert [r.tag for r in prune_bentos()] == ["whisperx:ours"]
    assert versions(many, "whisperx") == ["vcynnjbtxsqwmhkh"]
    assert versions(many, "b") == ["only"]


def test_prune_dry_run_removes_nothing(many: Path) -> None:
    before = snapshot(many)
    would = prune_bentos(keep=2, dry_run=True)
    assert snapshot(many) == before
    assert [(r.tag, r.size) for r in would] == [(r.tag, r.size) for r in prune_bentos(keep=2)]


def test_prune_removes_old_leftovers_but_not_fresh_or_held_ones(store: Path) -> None:
    put_bento(store, "a", "v1", None)
    name_dir = store / "bentos" / "a"
    old, fresh, held = (name_dir / f".tmp-build-{what}" for what in ("old", "fresh", "held"))
    for directory in (old, fresh, held):
        (directory / "src").mkdir(parents=True)
        (directory / "src" / "big.bin").write_bytes(b"x" * 2048)
    stale_latest = name_dir / ".tmp-latest-0a1b"
    stale_latest.write_text("v0")
    interrupted_first_build = store / "bentos" / "gone" / ".tmp-build-x"
    interrupted_first_build.mkdir(parents=True)
    for path in (old, held, stale_latest, interrupted_first_build):
        age(path, LEFTOVER_AGE + 60)
    age(fresh, LEFTOVER_AGE - 600)
    # a build holds `held` (its lock is taken as a build in another process takes it)
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        would = prune_bentos(dry_run=True)
        assert old.exists() and stale_latest.exists()
        removed = prune_bentos()
    finally:
        os.close(fd)
    assert sorted(r.path for r in removed) == sorted([old, stale_latest, interrupted_first_build])
    assert [r.path for r in would] == [r.path for r in removed]
    assert all(r.tag is None for r in removed)
    assert {r.path: r.size for r in removed}[old] == 2048
    assert fresh.is_dir() and held.is_dir() and not old.exists()
    assert not (store / "bentos" / "gone").exists()  # the name dir it had created, too
    assert versions(store, "a") == ["v1"]


def test_prune_during_a_build_leaves_that_builds_directory_alone(
    store: Path, project: Path
) -> None:
    """The build holds its temporary directory: even when nothing in it changed for longer
    than LEFTOVER_AGE (a slow lock, a slow check), a prune meanwhile does not remove it."""
    pruned: list[list[Path]] = []

    def prune_meanwhile(bento: Bento) -> None:
        assert bento.path.name.startswith(".tmp-")
        age(bento.path, LEFTOVER_AGE + 60)
        pruned.append([r.path for r in prune_bentos()])
        assert (bento.path / "bento.yaml").is_file()

    built = build_bento(project, check=prune_meanwhile)
    assert pruned == [[]]
    assert built.path.is_dir() and (built.path / "src" / "app.py").is_file()
    assert leftovers(store) == []


@pytest.mark.parametrize("keep", [0, -1, 1.5, "2", True, None])
def test_prune_keep_must_be_a_whole_number_from_1(many: Path, keep: object) -> None:
    before = snapshot(many)
    with pytest.raises(ConfigError) as info:
        prune_bentos(keep=keep)  # type: ignore[arg-type]
    assert info.value.field == "keep"
    if keep in (0, -1):
        assert "keep at least 1; use delete to remove all" in str(info.value)
    assert snapshot(many) == before


def test_prune_a_store_that_does_not_exist(store: Path) -> None:
    assert prune_bentos() == []
    assert prune_bentos(names=["anything"]) == []
    assert not store.exists()


def test_prune_an_unknown_name_or_a_version(many: Path) -> None:
    before = snapshot(many)
    with pytest.raises(BentoNotFoundError, match=r"no bento named 'aa'.*did you mean 'a'"):
        prune_bentos(names=["a", "aa"])
    with pytest.raises(ConfigError, match="prune takes bento names, not versions"):
        prune_bentos(names=["a:v1"])
    assert snapshot(many) == before


def test_a_bento_build_killed_midway_stores_nothing_and_a_rerun_succeeds(
    store: Path, tmp_path: Path
) -> None:
    """SIGKILL (no handler runs) while `bento build` copies the project: no version, no
    `latest`, a store that still lists; the leftover directory is pruned once stale, and
    building again stores the bento."""
    project = tmp_path / "big"
    project.mkdir()
    (project / "bentofile.yaml").write_text('service: "app:svc"\nname: big\n')
    (project / "app.py").write_text("svc = None\n")
    data = project / "data"
    data.mkdir()
    chunk = os.urandom(1 << 20)
    for number in range(300):  # 300 MB: the copy takes long enough to be caught in the act
        (data / f"part{number:03}.bin").write_bytes(chunk[number:] + chunk[:number])
    env = {**os.environ, "BENTOML_HOME": str(store)}
    argv = [sys.executable, "-m", "pipeline", "bento", "build", str(project)]
    name_dir = store / "bentos" / "big"
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(name_dir.glob(".tmp-build-*/**/part*.bin")):
            assert proc.poll() is None, "the build ended before it was caught copying"
            assert time.monotonic() < deadline, "the build never started copying"
            time.sleep(0.005)
        proc.kill()
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert versions(store, "big") == []
    assert not (name_dir / "latest").exists()
    assert [p.name.startswith(".tmp-build-") for p in name_dir.iterdir()] == [True]
    listed = subprocess.run(
        [sys.executable, "-m", "pipeline", "bento", "list", "-o", "json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    # the leftover is kept while it may be a live build's, removed once stale
    assert prune_bentos() == []
    (leftover,) = name_dir.iterdir()
    age(leftover, LEFTOVER_AGE + 60)
    assert [r.path for r in prune_bentos()] == [leftover]
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert len(versions(store, "big")) == 1 and leftovers(store) == []
