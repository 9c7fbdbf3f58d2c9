"""What a bento holds, written from a project into a directory: ``src/`` (the selected files),
``env/`` (requirements, locked with uv; python version; wheels, setup script, template, conda
environment), ``bento.yaml`` and ``README.md`` (:func:`write_bento`); and the version that names
that content (:func:`content_version`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from pipeline import requirements
from pipeline.config import BentofileSpec, running_python_version
from pipeline.errors import ConfigError, PipelineWarning
from pipeline.loader import BENTO_DOCKERFILE_TEMPLATE, BENTO_SETUP_SCRIPT, BENTO_WHEELS_DIR
from pipeline.services import service_entries
from pipeline.store import BENTO_YAML

README = "README.md"


# bento.yaml keys that name the version or the build time: not part of the content digest
_UNHASHED_KEYS = ("version", "creation_time")


def _copy_file(src: Path, dest: Path, *, executable: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    mode = 0o755 if executable or os.access(src, os.X_OK) else 0o644
    dest.chmod(mode)


def user_requirements(spec: BentofileSpec) -> list[str]:
    """What the user asked for: ``requirements_txt`` when set, else ``packages`` (as BentoML:
    with both set, the file wins and the list is ignored, with a warning)."""
    python = spec.python
    if python.requirements_txt:
        if python.packages:
            warnings.warn(
                f"{spec.path}: python.packages is ignored because python.requirements_txt is "
                "set (as in BentoML); list the packages in the requirements file instead",
                PipelineWarning,
                stacklevel=3,
            )
        text = (spec.project_dir / python.requirements_txt).read_text(encoding="utf-8")
        return text.rstrip("\n").splitlines()
    return list(python.packages)


def bentoml_pin(
    spec: BentofileSpec, files: list[tuple[str, Path]], user_lines: list[str], version: str | None
) -> requirements.BentomlPin | None:
    """``bentoml==X`` when the service needs BentoML: its code imports bentoml, or the user's
    requirements name it (``bentoml build`` always adds itself)."""
    if requirements.mentions_bentoml(user_lines) or requirements.imports_bentoml(
        real for _rel, real in files
    ):
        return requirements.choose_bentoml_pin(version)
    return None


def _lock_packages(spec: BentofileSpec) -> bool:
    # BentoML's default: lock unless pack_git_packages is explicitly false
    if spec.python.lock_packages is not None:
        return spec.python.lock_packages
    return spec.python.pack_git_packages is not False


def _conda_channels(spec: BentofileSpec) -> tuple[str, ...]:
    """As BentoML: packages without channels (and without environment_yml) use conda-forge."""
    conda = spec.conda
    if not conda.channels and not conda.environment_yml and (conda.dependencies or conda.pip):
        return ("conda-forge",)
    return conda.channels


def _bento_yaml_data(
    spec: BentofileSpec,
    name: str,
    version: str,
    created: datetime,
    pin: requirements.BentomlPin | None,
) -> dict[str, Any]:
    docker = spec.docker.with_defaults()
    python = spec.python
    return {
        "service": spec.service,
        "name": name,
        "version": version,
        "bentoml_version": pin.version if pin is not None else None,
        "creation_time": created.isoformat(),
        "labels": dict(spec.labels),
        "models": [{"tag": tag} for tag in spec.models],
        "runners": [],
        "entry_service": spec.service.partition(":")[2] or spec.service,
        "services": [],
        "envs": [{"name": e.name, "value": e.value, "stage": e.stage} for e in spec.envs],
        "schema": {},
        "args": dict(spec.args),
        "apis": [],
        "docker": {
            "distro": docker.distro,
            "python_version": docker.python_version,
            "cuda_version": docker.cuda_version,
            "env": dict(docker.env) or None,
            "system_packages": list(docker.system_packages) or None,
            "setup_script": BENTO_SETUP_SCRIPT if docker.setup_script else None,
            "base_image": docker.base_image,
            "dockerfile_template": (
                BENTO_DOCKERFILE_TEMPLATE if docker.dockerfile_template else None
            ),
        },
        "python": {
            "requirements_txt": "env/python/requirements.txt" if python.requirements_txt else None,
            "packages": list(python.packages) or None,
            "lock_packages": _lock_packages(spec),
            "pack_git_packages": python.pack_git_packages,
            "index_url": python.index_url,
            "no_index": python.no_index,
            "trusted_host": list(python.trusted_host) or None,
            "find_links": list(python.find_links) or None,
            "extra_index_url": list(python.extra_index_url) or None,
            "pip_args": python.pip_args,
            "wheels": [f"{BENTO_WHEELS_DIR}/{Path(w).name}" for w in python.wheels] or None,
            # only when set: BentoML before 1.4 refuses the key (a bento pinned to 1.2 serves)
            **({"is_src_layout": True} if python.is_src_layout else {}),
        },
        "conda": {
            "environment_yml": "env/conda/environment.yml" if not spec.conda.is_empty else None,
            "channels": list(_conda_channels(spec)) or None,
            "dependencies": list(spec.conda.dependencies) or None,
            "pip": list(spec.conda.pip) or None,
        },
    }


def write_bento(
    spec: BentofileSpec,
    dest: Path,
    name: str,
    version: str | None,
    files: list[tuple[str, Path]],
    user_lines: list[str],
    pin: requirements.BentomlPin | None,
    created: datetime | None = None,
) -> str:
    """Write the whole bento into ``dest`` and return its version: ``version``, or when it is
    None the digest of the content (:func:`content_version`)."""
    src_root = dest / "src"
    src_root.mkdir(parents=True)
    for rel, real in files:
        _copy_file(real, src_root / rel)

    created = created or datetime.now(timezone.utc)
    env_python = dest / "env" / "python"
    env_docker = dest / "env" / "docker"
    env_python.mkdir(parents=True)
    env_docker.mkdir(parents=True)
    python_version = spec.docker.with_defaults().python_version or running_python_version()
    wanted = requirements.requirements_in(user_lines, spec.python, pin)
    requirements_in = env_python / "requirements.in"
    requirements_txt = env_python / "requirements.txt"
    requirements_in.write_text(wanted, encoding="utf-8")
    if _lock_packages(spec) and requirements.has_requirements(wanted):
        source_builds = requirements.lock(
            requirements_in,
            requirements_txt,
            python_version=python_version,
            cwd=src_root,
            bentofile=spec.path,
        )
        # written when empty too: "checked, none", so no build checks again
        (dest / requirements.SOURCE_BUILDS_PATH).write_text(
            "".join(f"{name}\n" for name in source_builds), encoding="utf-8"
        )
    else:
        requirements_txt.write_text(wanted, encoding="utf-8")
    (env_python / "version.txt").write_text(python_version + "\n", encoding="utf-8")
    for wheel in spec.python.wheels:
        _copy_file(spec.project_dir / wheel, dest / BENTO_WHEELS_DIR / Path(wheel).name)
    if spec.docker.setup_script:
        _copy_file(
            spec.project_dir / spec.docker.setup_script, dest / BENTO_SETUP_SCRIPT, executable=True
        )
    if spec.docker.dockerfile_template:
        _copy_file(
            spec.project_dir / spec.docker.dockerfile_template, dest / BENTO_DOCKERFILE_TEMPLATE
        )
    if not spec.conda.is_empty:
        conda_dir = dest / "env" / "conda"
        conda_dir.mkdir(parents=True)
        if spec.conda.environment_yml:
            _copy_file(spec.project_dir / spec.conda.environment_yml, conda_dir / "environment.yml")
        else:
            deps: list[Any] = list(spec.conda.dependencies)
            if spec.conda.pip:
                deps.append({"pip": list(spec.conda.pip)})
            content = {"channels": list(_conda_channels(spec)), "dependencies": deps}
            (conda_dir / "environment.yml").write_text(
                yaml.safe_dump(content, sort_keys=False), encoding="utf-8"
            )
    data = _bento_yaml_data(spec, name, version or "", created, pin)
    data["services"] = service_entries(real for _rel, real in files)
    if version is None:
        version = content_version(dest, readme=readme_text(spec, name, ""), metadata=data)
    data["version"] = version
    (dest / README).write_text(readme_text(spec, name, version), encoding="utf-8")
    (dest / BENTO_YAML).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return version


def content_version(payload: Path, *, readme: str, metadata: Mapping[str, Any]) -> str:
    """A bento's version from its content: 16 lowercase base32 characters (80 bits of a
    SHA-256) over every file under ``payload`` (path, executable bit, bytes), the README text
    and the ``bento.yaml`` data, leaving out what names the version or the build time (``readme``
    is written without the version; ``version`` and ``creation_time`` of ``metadata`` are
    skipped). Same content, same version; any other byte, another."""
    digest = hashlib.sha256(b"bento-pipeline content 1\0")
    for path in sorted(payload.rglob("*"), key=lambda p: p.relative_to(payload).as_posix()):
        rel = path.relative_to(payload).as_posix()
        if path.is_dir():
            digest.update(f"dir {rel}\0".encode())
            continue
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"file {rel} {executable} {path.stat().st_size}\0".encode())
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    digest.update(f"{README}\0".encode() + readme.encode("utf-8") + b"\0")
    kept = {k: v for k, v in metadata.items() if k not in _UNHASHED_KEYS}
    digest.update(f"{BENTO_YAML}\0".encode() + json.dumps(kept, sort_keys=True).encode())
    return base64.b32encode(digest.digest()[:10]).decode("ascii").lower()


def readme_text(spec: BentofileSpec, name: str, version: str) -> str:
    description = spec.description
    if description is None:
        readme = spec.project_dir / "README.md"
        if readme.is_file():  # as BentoML: the project's README.md
            return readme.read_text(encoding="utf-8")
        return f"# {name}:{version}\n\nBuilt by bento-pipeline from {spec.path.name}.\n"
    if description.startswith("file:"):
        source = spec.project_dir / description[len("file:") :].strip()
        if not source.is_file():
            raise ConfigError(
                f"description file {str(source)!r} does not exist",
                file=spec.path,
                field="description",
            )
        return source.read_text(encoding="utf-8")
    return description if description.endswith("\n") else description + "\n"
