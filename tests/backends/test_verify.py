"""Reading a result back: the platform checks, the registry reader, the local store readers."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import fakeregistry
import pytest
from attrs import evolve
from fakeregistry import REGISTRY, STORE, elf_header

from pipeline.backends.verify import (
    BuildahStore,
    ContainersStore,
    DockerStore,
    PlatformEntry,
    Unreadable,
    check_pushed,
    elf_arch,
    first_elf,
    first_elf_in,
    parse_reference,
    problems,
    registry_entries,
)

BOTH = ["linux/amd64", "linux/arm64"]
BASE = "docker.io/library/python:3.11-slim"


def entry(label: str, config: str | None = None, elf: str | None = "same") -> PlatformEntry:
    return PlatformEntry(label, config or label, label if elf == "same" else elf)


# -- pure checks -----------------------------------------------------------------------------------


def test_a_result_with_one_right_entry_per_platform_has_no_problems() -> None:
    entries = [entry("linux/amd64"), entry("linux/arm64/v8", "linux/arm64")]
    assert problems(BOTH, entries) == []


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # buildah's bug: one entry, labelled arm64, whose binaries are x86_64
        (
            [entry("linux/arm64", elf="linux/amd64")],
            [
                "no entry for linux/amd64",
                "the linux/arm64 entry's binaries are linux/amd64",
            ],
        ),
        ([entry("linux/amd64"), entry("linux/arm64", "linux/amd64")], [
            "the linux/arm64 entry's config says linux/amd64"
        ]),
        ([entry("linux/amd64"), entry("linux/amd64"), entry("linux/arm64")], [
            "2 entries for linux/amd64"
        ]),
        ([entry("linux/amd64"), entry("linux/arm64"), entry("linux/s390x")], [
            "unrequested entries linux/s390x"
        ]),
    ],
)  # fmt: skip
def test_each_way_a_result_is_wrong_is_named(
    entries: list[PlatformEntry], expected: list[str]
) -> None:
    assert problems(BOTH, entries) == expected


def test_an_entry_without_a_binary_found_is_judged_by_its_config_only() -> None:
    assert problems(["linux/arm64"], [entry("linux/arm64", elf=None)]) == []


@pytest.mark.parametrize(("arch", "expected"), [("amd64", "amd64"), ("arm64", "arm64")])
def test_elf_arch_reads_the_machine_field(arch: str, expected: str) -> None:
    assert elf_arch(elf_header(arch)) == expected


def test_elf_arch_of_a_script_or_a_short_file_is_none() -> None:
    assert elf_arch(b"#!/bin/sh\necho hello world\n") is None
    assert elf_arch(b"\x7fELF") is None


def _tar(members: dict[str, bytes]) -> io.BytesIO:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    raw.seek(0)
    return raw


def test_first_elf_skips_scripts_and_files_outside_bin_directories() -> None:
    stream = _tar(
        {
            "usr/lib/libfoo.so": elf_header("s390x") + b"\0" * 8,  # not in a bin directory
            "usr/bin/pip": b"#!/usr/bin/python3\nimport pip\n",
            "usr/bin/python3": elf_header("arm64") + b"\0" * 8,
        }
    )
    assert first_elf(stream) == "linux/arm64"


def test_first_elf_of_a_layer_without_binaries_or_not_a_tar_is_none() -> None:
    assert first_elf(_tar({"app/service.py": b"print('hi')\n"})) is None
    assert first_elf(io.BytesIO(b"not a tar at all" * 100)) is None


def test_first_elf_in_a_tree_does_not_follow_symlinks(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    # a symlink in an image points into the image, not into this machine's /usr/bin
    (tmp_path / "usr" / "bin" / "a-link").symlink_to("/usr/bin/env")
    (tmp_path / "usr" / "bin" / "python3").write_bytes(elf_header("arm64") + b"\0" * 8)
    assert first_elf_in(tmp_path) == "linux/arm64"
    assert first_elf_in(tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("python:3.11-slim", ("registry-1.docker.io", "library/python", "3.11-slim")),
        ("127.0.0.1:5000/app:1", ("127.0.0.1:5000", "app", "1")),
        ("localhost/team/app", ("localhost", "team/app", "latest")),
        ("ghcr.io/o/app@sha256:" + "a" * 64, ("ghcr.io", "o/app", "sha256:" + "a" * 64)),
        ("team/app:2", ("registry-1.docker.io", "team/app", "2")),
    ],
)
def test_parse_reference(name: str, expected: tuple[str, str, str]) -> None:
    ref = parse_reference(name)
    assert (ref.registry, ref.repository, ref.reference) == expected


# -- the registry reader, against a real HTTP registry on loopback ---------------------------------


def test_a_correct_index_is_read_back_entry_by_entry() -> None:
    entries, digest = registry_entries(f"{REGISTRY}/any/app:1")
    assert digest == fakeregistry.STANDARD
    assert [evolve(e, digest=None) for e in entries] == [
        PlatformEntry("linux/amd64", "linux/amd64", "linux/amd64"),
        PlatformEntry("linux/arm64", "linux/arm64", "linux/arm64"),
    ]
    # each entry's digest is its manifest's in the index
    index = json.loads(STORE.manifests[digest][1])
    assert [e.digest for e in entries] == [m["digest"] for m in index["manifests"]]


def test_a_pushed_list_with_one_mislabelled_entry_is_rejected() -> None:
    wrong = STORE.index([("arm64", "arm64", "amd64")])
    STORE.tag("mislabelled", "1", wrong)
    found, entries, digest = check_pushed(f"{REGISTRY}/mislabelled:1", BOTH, wrong)
    assert digest == wrong
    assert [evolve(e, digest=None) for e in entries] == [
        PlatformEntry("linux/arm64", "linux/arm64", "linux/amd64")
    ]
    assert found == ["no entry for linux/amd64", "the linux/arm64 entry's binaries are linux/amd64"]


def test_a_reported_digest_that_is_not_the_registry_s_is_a_problem() -> None:
    found, _, digest = check_pushed(f"{REGISTRY}/app:2", BOTH, "sha256:" + "0" * 64)
    assert digest == fakeregistry.STANDARD
    assert found == [f"the registry has {digest} under {REGISTRY}/app:2, the engine reported "
                     f"sha256:{'0' * 64}"]  # fmt: skip


def test_a_single_manifest_is_one_entry_from_its_config() -> None:
    digest, _ = STORE.image("arm64", "arm64")
    STORE.tag("single", "1", digest)
    entries, top = registry_entries(f"{REGISTRY}/single:1")
    assert (entries, top) == (
        [PlatformEntry("linux/arm64", "linux/arm64", "linux/arm64", digest)],
        digest,
    )


def test_a_missing_image_is_unreadable_not_wrong() -> None:
    STORE.tag("gone", "1", "sha256:" + "f" * 64)
    with pytest.raises(Unreadable, match="HTTP 404"):
        registry_entries(f"{REGISTRY}/gone:1")


# -- the local stores, on the test bed's base image ------------------------------------------------


def _native() -> str:
    machine = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    return {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}[machine]


@pytest.mark.docker
def test_the_docker_store_reads_config_and_binaries_of_an_image() -> None:
    # through the test bed's mirror: the store holds it only after something pulled it
    subprocess.run(["docker", "pull", "-q", "python:3.11-slim"], check=True, capture_output=True)
    [found] = DockerStore().entries("python:3.11-slim", [_native()])
    assert found == PlatformEntry(_native(), _native(), _native())


@pytest.mark.parametrize(
    "binary",
    [
        pytest.param("podman", marks=pytest.mark.podman),
        pytest.param("buildah", marks=pytest.mark.buildah),
    ],
)
def test_containers_storage_reads_config_and_binaries_of_an_image(binary: str) -> None:
    subprocess.run(["podman", "pull", "-q", BASE], check=True, capture_output=True)
    before = _containers()
    store = BuildahStore() if binary == "buildah" else ContainersStore()
    [found] = store.entries(BASE, [_native()])
    assert found == PlatformEntry(_native(), _native(), _native())
    # nothing left behind: buildah's read used a working container and removed it
    assert _containers() == before


def _containers() -> set[str]:
    listed = subprocess.run(
        ["podman", "ps", "-a", "-q", "--no-trunc", "--external"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listed.stdout.split())


def test_a_tag_no_store_has_is_unreadable() -> None:
    with pytest.raises(Unreadable):
        DockerStore("/nonexistent/docker").entries("nothing:1", ["linux/amd64"])
