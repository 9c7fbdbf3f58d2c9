"""The distro table: which base images, Python and CUDA versions each supported distro offers.

Data, not ``if`` chains. :mod:`pipeline.validation` checks ``docker:`` options against it and the
renderer picks base images and package-manager commands from it. Image patterns use
``{python_version}`` (``3.11``), ``{python_version_nodot}`` (``311``) and ``{cuda_version}``
(a full version such as ``12.8.1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from attrs import frozen

PackageManager = Literal["apt", "apk", "yum", "microdnf"]

DEFAULT_DISTRO = "debian"

ALL_PYTHON_VERSIONS: tuple[str, ...] = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
ALL_ARCHITECTURES: tuple[str, ...] = ("amd64", "arm64", "ppc64le", "s390x")

# Full CUDA versions we know images for, and the image flavour each one uses on debian
# (nvidia/cuda publishes cudnn8 images on ubuntu22.04 for older releases, cudnn (9) on 24.04 for
# newer ones).
_CUDA_DEBIAN_LEGACY = ("11.7.1", "11.8.0", "12.0.1", "12.1.1", "12.2.2", "12.3.2")
_CUDA_DEBIAN_CURRENT = ("12.4.1", "12.5.1", "12.6.3", "12.8.1")
ALL_CUDA_VERSIONS: tuple[str, ...] = _CUDA_DEBIAN_LEGACY + _CUDA_DEBIAN_CURRENT


@frozen
class CudaPython:
    """How Python gets onto a CUDA image's OS (nvidia/cuda images carry none): ``native`` is
    the version the OS's own ``python3`` packages give (None: not one we support), ``extra`` the
    versions another source gives (the deadsnakes PPA on ubuntu, AppStream packages on ubi8)."""

    os: str
    native: str | None
    extra: tuple[str, ...]

    @property
    def versions(self) -> tuple[str, ...]:
        given = {*self.extra, *([self.native] if self.native else [])}
        numbers = {v: tuple(map(int, v.split("."))) for v in given}
        return tuple(sorted(numbers, key=numbers.__getitem__))


#: the OS of each CUDA image flavour (the image tag's last part) and the Pythons it can have
CUDA_PYTHON: Mapping[str, CudaPython] = MappingProxyType(
    {
        "ubuntu22.04": CudaPython("ubuntu22.04", "3.10", ("3.9", "3.11", "3.12", "3.13")),
        "ubuntu24.04": CudaPython("ubuntu24.04", "3.12", ("3.9", "3.10", "3.11", "3.13", "3.14")),
        "ubi8": CudaPython("ubi8", None, ("3.9", "3.11", "3.12")),
    }
)


def _short_cuda_aliases(full_versions: tuple[str, ...]) -> Mapping[str, str]:
    """``"12"`` -> newest 12.x, ``"12.8"`` -> ``"12.8.1"``, ``"12.8.1"`` -> itself."""
    aliases: dict[str, str] = {}
    for full in full_versions:  # ascending, so later (newer) ones win for the major alias
        major, minor, _patch = full.split(".")
        aliases[major] = full
        aliases[f"{major}.{minor}"] = full
        aliases[full] = full
    return MappingProxyType(aliases)


@frozen
class DistroSpec:
    """One row of the table."""

    name: str
    package_manager: PackageManager
    python_image: str  # pattern for the default (non-CUDA) base image
    python_versions: tuple[str, ...]
    architectures: tuple[str, ...]
    # full CUDA version -> image pattern; empty when the distro has no CUDA images
    cuda_images: Mapping[str, str] = MappingProxyType({})
    cuda_architectures: tuple[str, ...] = ()
    conda_image: str | None = None  # image used when the bento has a ``conda:`` section
    description: str = ""

    @property
    def supports_cuda(self) -> bool:
        return bool(self.cuda_images)

    @property
    def cuda_versions(self) -> Mapping[str, str]:
        """Accepted ``cuda_version`` spellings mapped to the full version."""
        return _short_cuda_aliases(tuple(self.cuda_images))

    def resolve_cuda(self, version: str) -> str | None:
        """The full CUDA version for ``version`` (``"12"``, ``"12.8"``, ``"12.8.1"``), or None."""
        return self.cuda_versions.get(version)

    def cuda_python(self, cuda_version: str) -> CudaPython:
        """How the CUDA image for ``cuda_version`` (a full version) gets its Python."""
        flavour = self.cuda_images[cuda_version].rsplit("-", 1)[-1]
        return CUDA_PYTHON[flavour]

    def base_image(self, python_version: str, cuda_version: str | None = None) -> str:
        """The default base image for ``python_version`` and an optional (full) CUDA version."""
        values = {
            "python_version": python_version,
            "python_version_nodot": python_version.replace(".", ""),
            "cuda_version": cuda_version or "",
        }
        pattern = self.python_image
        if cuda_version is not None:
            pattern = self.cuda_images[cuda_version]
        return pattern.format(**values)


def _cuda(pattern_by_version: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(pattern_by_version)


DISTROS: Mapping[str, DistroSpec] = MappingProxyType(
    {
        "debian": DistroSpec(
            name="debian",
            package_manager="apt",
            python_image="python:{python_version}-slim",
            python_versions=ALL_PYTHON_VERSIONS,
            architectures=ALL_ARCHITECTURES,
            cuda_images=_cuda(
                {
                    v: "nvidia/cuda:{cuda_version}-cudnn8-runtime-ubuntu22.04"
                    for v in _CUDA_DEBIAN_LEGACY
                }
                | {
                    v: "nvidia/cuda:{cuda_version}-cudnn-runtime-ubuntu24.04"
                    for v in _CUDA_DEBIAN_CURRENT
                }
            ),
            cuda_architectures=("amd64", "arm64"),
            conda_image="continuumio/miniconda3:latest",
            description="Debian slim images from the official python image",
        ),
        "alpine": DistroSpec(
            name="alpine",
            package_manager="apk",
            python_image="python:{python_version}-alpine",
            python_versions=ALL_PYTHON_VERSIONS,
            architectures=ALL_ARCHITECTURES,
            conda_image="continuumio/miniconda3:4.10.3p0-alpine",
            description="Alpine images from the official python image (musl libc)",
        ),
        "ubi8": DistroSpec(
            name="ubi8",
            package_manager="yum",
            python_image="registry.access.redhat.com/ubi8/python-{python_version_nodot}:1",
            python_versions=("3.9", "3.11", "3.12"),
            architectures=("amd64", "arm64"),
            cuda_images=_cuda(
                {v: "nvidia/cuda:{cuda_version}-cudnn8-runtime-ubi8" for v in ALL_CUDA_VERSIONS}
            ),
            cuda_architectures=("amd64", "arm64", "ppc64le"),
            description="Red Hat Universal Base Image 8 python images",
        ),
        "amazonlinux": DistroSpec(
            name="amazonlinux",
            package_manager="yum",
            python_image="amazonlinux:2",
            python_versions=("3.8",),
            architectures=("amd64", "arm64"),
            description="Amazon Linux 2 (Python 3.8 from amazon-linux-extras)",
        ),
        "miniconda": DistroSpec(
            name="miniconda",
            package_manager="apt",
            python_image="continuumio/miniconda3:latest",
            python_versions=ALL_PYTHON_VERSIONS,
            architectures=ALL_ARCHITECTURES,
            conda_image="continuumio/miniconda3:latest",
            description="Debian-based miniconda3 image; Python installed with conda",
        ),
    }
)


def distro_names() -> tuple[str, ...]:
    return tuple(DISTROS)


def cuda_distros() -> tuple[str, ...]:
    """Names of the distros that have CUDA images."""
    return tuple(name for name, spec in DISTROS.items() if spec.supports_cuda)


def get_distro(name: str) -> DistroSpec | None:
    return DISTROS.get(name)
