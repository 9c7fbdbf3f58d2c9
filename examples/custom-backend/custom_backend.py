"""A third-party backend for bento-pipeline: the wrapper script next to this file.

Two ways to plug it in (see README.md):

- from Python: ``import custom_backend; custom_backend.register()`` then
  ``pipeline.build(bento, backend="wrapped-docker")``;
- as a plugin: install this directory (``pip install ./examples/custom-backend``); its
  ``pyproject.toml`` declares the ``bento_pipeline.backends`` entry point ``wrapped-docker =
  "custom_backend:backend"``, so ``python -m pipeline build --backend wrapped-docker`` finds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

NAME = "wrapped-docker"
WRAPPER = str(Path(__file__).resolve().with_name("wrapper.sh"))


def construct_build_args(
    *,
    context_path: str,
    file: str,
    tag: tuple[str, ...] = (),
    platform: tuple[str, ...] = (),
    secret: tuple[str, ...] = (),
    build_arg: dict[str, str] | None = None,
    label: dict[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    **_: Any,
) -> list[str]:
    """BentoML-style: keyword options in, argv out (the wrapper adds `<engine> build`)."""
    argv = ["--file", file]
    for t in tag:
        argv += ["--tag", t]
    if platform:
        argv += ["--platform", ",".join(platform)]
    for s in secret:
        argv += ["--secret", s]
    for key, value in (build_arg or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in (label or {}).items():
        argv += ["--label", f"{key}={value}"]
    if target:
        argv += ["--target", target]
    if no_cache:
        argv.append("--no-cache")
    argv.append(context_path)
    return argv


def health() -> bool:
    engine = os.environ.get("CUSTOM_BACKEND_ENGINE", "docker")
    if shutil.which(engine) is None:
        return False
    done = subprocess.run([engine, "info"], capture_output=True, check=False, timeout=20)
    return done.returncode == 0


def backend() -> dict[str, Any]:
    """The entry point: keyword arguments for ``pipeline.register_backend``."""
    return {
        "binary": WRAPPER,
        "buildkit_support": True,
        "health": health,
        "construct_build_args": construct_build_args,
        "env": {"DOCKER_BUILDKIT": "1"},
    }


def register() -> None:
    import pipeline

    pipeline.register_backend(NAME, **backend())
