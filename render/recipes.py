"""What the templates need to know per distro beyond :mod:`render.distros`: how users are
created, how Python gets into the image, which compilers a build stage adds. Data, not ``if``
chains; keyed by distro name (``None`` = a custom ``base_image`` whose distro is unknown).
"""

from __future__ import annotations

from typing import Literal

from attrs import frozen

UserTool = Literal["shadow", "busybox", "portable"]


@frozen
class Recipe:
    users: UserTool
    python: str = "python3"  # the interpreter that creates the venv
    python_setup: str | None = None  # a shell command that installs that interpreter, if needed
    build_packages: tuple[str, ...] = ()  # compilers for a build stage
    root_user: bool = False  # the base image does not run as root: switch first


_REDHAT_BUILD = ("gcc", "gcc-c++", "make")

RECIPES: dict[str | None, Recipe] = {
    "debian": Recipe(users="shadow", build_packages=("build-essential",)),
    "alpine": Recipe(users="busybox", build_packages=("build-base",)),
    "ubi8": Recipe(users="shadow", build_packages=_REDHAT_BUILD, root_user=True),
    "amazonlinux": Recipe(
        users="shadow",
        python="python3.8",
        python_setup=(
            "amazon-linux-extras enable python3.8 && yum install -y python38 shadow-utils "
            "&& yum clean all"
        ),
        build_packages=_REDHAT_BUILD,
    ),
    "miniconda": Recipe(
        users="shadow",
        python="python",
        python_setup="conda install -y python={python_version} && conda clean -afy",
        build_packages=("build-essential",),
    ),
    None: Recipe(users="portable"),
}

# CUDA images (nvidia/cuda on ubuntu) carry no Python: the distro's python3 is installed.
CUDA_APT_PYTHON = (
    "export DEBIAN_FRONTEND=noninteractive && apt-get{apt_ca} update -q && "
    "apt-get{apt_ca} install -q -y --no-install-recommends python3 python3-venv python3-pip"
)


def recipe_for(distro: str | None) -> Recipe:
    return RECIPES.get(distro, RECIPES[None])
