"""The config models' defaults and the distro table (pure)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from pipeline.config import Bento, DockerOptions, running_python_version
from render.distros import (
    ALL_CUDA_VERSIONS,
    DEFAULT_DISTRO,
    DISTROS,
    cuda_distros,
    distro_names,
    get_distro,
)


def test_running_python_version_is_major_minor() -> None:
    assert running_python_version() == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_with_defaults_fills_distro_and_python_like_bentoml() -> None:
    filled = DockerOptions().with_defaults()
    assert filled.distro == "debian" == DEFAULT_DISTRO
    assert filled.python_version == running_python_version()


def test_with_defaults_keeps_what_is_set() -> None:
    filled = DockerOptions(distro="alpine", python_version="3.12").with_defaults()
    assert (filled.distro, filled.python_version) == ("alpine", "3.12")


def test_with_defaults_leaves_base_image_options_unset() -> None:
    options = DockerOptions(base_image="python:3.11-slim")
    assert options.with_defaults() is options
    assert options.with_defaults().distro is None


def test_env_is_copied_not_shared() -> None:
    source = {"A": "1"}
    options = DockerOptions(env=source)
    source["B"] = "2"
    assert dict(options.env) == {"A": "1"}


def test_bento_tag_and_yaml_path(tmp_path: Path) -> None:
    bento = Bento(name="svc", version="abc123", path=tmp_path)
    assert bento.tag == "svc:abc123"
    assert bento.bento_yaml == tmp_path / "bento.yaml"


def test_table_has_the_documented_distros() -> None:
    assert set(distro_names()) == {"debian", "alpine", "ubi8", "amazonlinux", "miniconda"}


@pytest.mark.parametrize("name", sorted(DISTROS))
def test_every_row_is_consistent(name: str) -> None:
    spec = DISTROS[name]
    assert spec.name == name
    assert spec.package_manager in ("apt", "apk", "yum", "microdnf")
    assert spec.python_versions, "a distro without python versions is unusable"
    for version in spec.python_versions:
        assert re.fullmatch(r"3\.\d+", version)
        image = spec.base_image(version)
        assert "{" not in image and image
    assert set(spec.architectures) <= {"amd64", "arm64", "ppc64le", "s390x"}
    for full in spec.cuda_images:
        assert full in ALL_CUDA_VERSIONS
        assert full in spec.base_image(spec.python_versions[0], full)


def test_default_images_match_bentoml() -> None:
    assert DISTROS["debian"].base_image("3.11") == "python:3.11-slim"
    assert DISTROS["alpine"].base_image("3.12") == "python:3.12-alpine"
    assert DISTROS["ubi8"].base_image("3.11") == "registry.access.redhat.com/ubi8/python-311:1"
    assert DISTROS["amazonlinux"].base_image("3.8") == "amazonlinux:2"
    assert DISTROS["amazonlinux"].python_versions == ("3.8",)


def test_cuda_images_per_generation() -> None:
    debian = DISTROS["debian"]
    assert debian.base_image("3.11", "12.8.1") == "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
    assert debian.base_image("3.11", "11.8.0") == "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    assert DISTROS["ubi8"].base_image("3.9", "12.1.1") == "nvidia/cuda:12.1.1-cudnn8-runtime-ubi8"


def test_cuda_short_versions_map_to_the_newest_full_version() -> None:
    debian = DISTROS["debian"]
    assert debian.resolve_cuda("12") == "12.8.1"
    assert debian.resolve_cuda("11") == "11.8.0"
    assert debian.resolve_cuda("12.4") == "12.4.1"
    assert debian.resolve_cuda("12.4.1") == "12.4.1"
    assert debian.resolve_cuda("10") is None
    assert debian.resolve_cuda("12.7") is None


def test_only_debian_and_ubi8_have_cuda() -> None:
    assert cuda_distros() == ("debian", "ubi8")
    alpine = get_distro("alpine")
    assert alpine is not None and not alpine.supports_cuda
    assert get_distro("ubuntu") is None


def test_package_managers() -> None:
    kinds = {name: spec.package_manager for name, spec in DISTROS.items()}
    assert kinds == {
        "debian": "apt",
        "alpine": "apk",
        "ubi8": "yum",
        "amazonlinux": "yum",
        "miniconda": "apt",
    }
