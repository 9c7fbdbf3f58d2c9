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


#: the uv that installs a bento's requirements inside the image (bootstrapped with pip from the
#: package index into a throwaway venv, never left in the image)
UV_VERSION = "0.13.9"

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


def python_headers_package(manager: str, python: str) -> str:
    """The distro package with ``Python.h`` for the interpreter ``python`` (``python3``,
    ``python3.11``) on a distro whose package manager is ``manager``. A build stage adds it to
    the compilers only when the interpreter lacks its headers (a distro's own Python does; the
    official python images ship them), or C extensions would not build (some setup.py files
    then fall back to pure Python without a word)."""
    version = python.removeprefix("python")
    if manager == "apt":
        return f"{python}-dev" if version else "python3-dev"
    if manager == "apk":
        return "python3-dev"
    if version in ("", "3"):
        return "python3-devel"
    # ubi8 / amazonlinux name 3.8 and 3.9 python38, python39; newer ones python3.11
    short = version.replace(".", "") if version in ("3.8", "3.9") else version
    return f"python{short}-devel"


# CUDA images (nvidia/cuda) carry no Python. The requested version is installed, never another:
# the OS's own python3 when that is the version asked for, else (ubuntu) the deadsnakes PPA, as
# BentoML does, or (ubi8) the AppStream package. ``{v}`` is the version, ``{apt_ca}`` the CA
# option. The interpreter that makes the venv is then ``python{v}``.
_APT = "export DEBIAN_FRONTEND=noninteractive && apt-get{apt_ca} update -q && apt-get{apt_ca} "
CUDA_PYTHON_SETUP: dict[str, str] = {
    "apt-native": _APT + "install -q -y --no-install-recommends python{v} python{v}-venv",
    "apt-deadsnakes": (
        _APT + "install -q -y --no-install-recommends software-properties-common gpg-agent "
        "&& add-apt-repository -y ppa:deadsnakes/ppa && apt-get{apt_ca} update -q "
        "&& apt-get{apt_ca} install -q -y --no-install-recommends python{v} python{v}-venv "
        "&& apt-get purge -y --auto-remove software-properties-common gpg-agent"
    ),
    "yum": "yum install -y{yum_ca} python{v_ubi} && yum clean all",
}


def cuda_python_setup(manager: str, native: bool, version: str) -> str:
    """The command that installs Python ``version`` on a CUDA image (``{apt_ca}``/``{yum_ca}``
    left to fill)."""
    native_key = "apt-native" if native else "apt-deadsnakes"
    key = native_key if manager == "apt" else "yum"
    # ubi8 names python 3.9 `python39` and newer ones `python3.11`
    ubi = version.replace(".", "") if version == "3.9" else version
    return CUDA_PYTHON_SETUP[key].replace("{v}", version).replace("{v_ubi}", ubi)


@frozen
class BentomlInstallLine:
    """The toolchain line BentoML 1.3+ writes first into a spec-2 bento's ``image.commands``
    (its single-stage image needs compilers and git at install time). We recognise it: its
    build tools go to the build stage (only when a requirement needs them), and the runtime
    image keeps just ``runtime`` (what later commands rely on), if anything."""

    distro: str
    manager: str
    build_packages: tuple[str, ...]
    runtime: str | None


#: exact text of BentoML 1.4's ``default_install_command`` per distro
BENTOML_INSTALL_LINES: dict[str, BentomlInstallLine] = {
    "apt-get update && apt-get install -q -y --no-install-recommends --allow-remove-essential "
    "ca-certificates gnupg2 bash build-essential git": BentomlInstallLine(
        "debian", "apt", ("build-essential", "git"), "apt-get update -q"
    ),
    "apk add --update bash gcc libc-dev shadow musl-dev build-base linux-headers g++ git": (
        BentomlInstallLine(
            "alpine", "apk", ("build-base", "linux-headers", "git"), "apk add --update bash"
        )
    ),
    "yum update && yum install -y ca-certificates gcc gcc-c++ make bash shadow-utils git": (
        BentomlInstallLine("ubi8", "yum", (*_REDHAT_BUILD, "git"), None)
    ),
    "yum update && yum install -y amazon-linux-extras ca-certificates gcc gcc-c++ make bash "
    'shadow-utils && amazon-linux-extras enable && yum groupinstall -y "Development Tools"': (
        BentomlInstallLine("amazonlinux", "yum", _REDHAT_BUILD, None)
    ),
}


def bentoml_install_line(command: str) -> BentomlInstallLine | None:
    return BENTOML_INSTALL_LINES.get(" ".join(command.split()))


def recipe_for(distro: str | None) -> Recipe:
    return RECIPES.get(distro, RECIPES[None])
