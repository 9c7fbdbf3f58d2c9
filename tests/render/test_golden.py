"""Golden files: the rendered Dockerfile per distro x case, compared byte for byte.

Regenerate after an intended change with

    PIPELINE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/render/test_golden.py

and review the diff of tests/golden/ before committing (docs/templates.md).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pipeline.config import Bento, DockerOptions, PythonOptions
from pipeline.graph import default_graph
from pipeline.rendering import RenderOptions, render_dockerfile
from tests.seed_examples import SEED_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
EXAMPLES = ROOT / "examples"
UPDATE = os.environ.get("PIPELINE_UPDATE_GOLDEN") == "1"

# Pinned so the files do not depend on the host's Python.
DISTROS = {
    "debian": "3.11",
    "alpine": "3.11",
    "ubi8": "3.11",
    "amazonlinux": "3.8",
    "miniconda": "3.11",
}
PACKAGES = {
    "system_packages": ("curl", "libgomp1"),
    "env": {"APP_MODE": "production", "GREETING": 'say "hi" to $USER'},
}


def _bento(path: Path, docker: dict[str, object], packages: tuple[str, ...] = ()) -> Bento:
    return Bento(
        name="golden",
        version="v1",
        path=path,
        service="service:svc",
        labels={"owner": "bento-pipeline"},
        docker=DockerOptions(**docker),  # type: ignore[arg-type]
        python=PythonOptions(packages=packages),
    )


def _example_packages(name: str) -> tuple[str, ...]:
    spec = yaml.safe_load((EXAMPLES / name / "bentofile.yaml").read_text(encoding="utf-8"))
    return tuple((spec.get("python") or {}).get("packages") or ())


Case = Callable[[], str]


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    hello = EXAMPLES / "hello"
    for distro, python in DISTROS.items():
        base = {"distro": distro, "python_version": python}

        def default(base: dict[str, object] = base) -> str:
            return render_dockerfile(_bento(hello, base))

        def packages(base: dict[str, object] = base) -> str:
            return render_dockerfile(_bento(hello, {**base, **PACKAGES}, ("requests==2.32.3",)))

        def single_stage(base: dict[str, object] = base) -> str:
            # the escape hatch: today's single-stage layout (as BentoML's own Dockerfile)
            bento = _bento(hello, {**base, **PACKAGES}, ("numpy==2.1.3",))
            return render_dockerfile(bento, graph=default_graph(buildstage=False))

        cases[f"{distro}-default"] = default
        cases[f"{distro}-packages"] = packages
        cases[f"{distro}-single-stage"] = single_stage
        for example in SEED_EXAMPLES:

            def seed(base: dict[str, object] = base, example: str = example) -> str:
                docker = {**base, "dockerfile_template": "Dockerfile.template"}
                bento = _bento(EXAMPLES / example, docker, _example_packages(example))
                return render_dockerfile(bento)

            cases[f"{distro}-{example}"] = seed

    def base_image_setup_script() -> str:
        bento = _bento(
            EXAMPLES / "setup-script",
            {"base_image": "python:3.11-slim", "setup_script": "setup.sh"},
            ("requests==2.32.3",),
        )
        return render_dockerfile(bento)

    def no_buildkit() -> str:
        base = {"distro": "debian", "python_version": "3.11", **PACKAGES}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return render_dockerfile(
                _bento(hello, base, ("requests==2.32.3",)), RenderOptions(buildkit=False)
            )

    def ca_cert() -> str:
        base = {"distro": "debian", "python_version": "3.11", **PACKAGES}
        return render_dockerfile(
            _bento(hello, base, ("requests==2.32.3",)), RenderOptions(ca_cert=True)
        )

    def spec2_bentoml_toolchain() -> str:
        # a spec-2 bento as BentoML 1.4 writes it: its toolchain line first in image.commands
        bento = Bento(
            name="golden",
            version="v1",
            path=hello,
            service="service:svc",
            spec=2,
            docker=DockerOptions(
                base_image="python:3.11-slim",
                python_version="3.11",
                commands=(
                    "apt-get update && apt-get install -q -y --no-install-recommends "
                    "--allow-remove-essential ca-certificates gnupg2 bash build-essential git",
                    "apt-get install -q -y -o Dpkg::Options::=--force-confdef curl",
                ),
            ),
            python=PythonOptions(requirements_text="bentoml==1.4.40\n"),
        )
        return render_dockerfile(bento)

    cases["base-image-setup-script"] = base_image_setup_script
    cases["spec2-bentoml-toolchain"] = spec2_bentoml_toolchain
    cases["debian-packages-no-buildkit"] = no_buildkit
    cases["debian-packages-ca-cert"] = ca_cert
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = CASES[case]()
    path = GOLDEN / f"{case}.Dockerfile"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert (
        path.is_file()
    ), f"no golden file {path.relative_to(ROOT)}; create it with PIPELINE_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"{case} renders differently from {path.relative_to(ROOT)}; if intended, regenerate "
        "with PIPELINE_UPDATE_GOLDEN=1 and review the diff"
    )


def test_no_stale_golden_files() -> None:
    stale = sorted(p.stem for p in GOLDEN.glob("*.Dockerfile") if p.stem not in CASES)
    assert stale == [], f"golden files without a case: {stale}"


def _expected_lines(template: str) -> list[str]:
    """The template's Dockerfile lines with ``{{ bento__* }}`` replaced by their values (the
    defaults, or what the template ``{% set %}``s)."""
    values = {
        "bento__user": "bentoml",
        "bento__home": "/home/bentoml",
        "bento__path": "/home/bentoml/bento",
    }
    values.update(re.findall(r'{%\s*set\s+(bento__\w+)\s*=\s*"([^"]*)"\s*%}', template))
    values["bento__entrypoint"] = values["bento__path"] + "/env/docker/entrypoint.sh"
    lines = []
    for line in template.splitlines():
        if not line.strip() or "{%" in line or line.strip() == "{{ super() }}":
            continue
        lines.append(re.sub(r"{{\s*(bento__\w+)\s*}}", lambda m: values[m.group(1)], line))
    return lines


@pytest.mark.parametrize("example", SEED_EXAMPLES)
def test_seed_lines_appear_verbatim_in_every_distro(example: str) -> None:
    template = (EXAMPLES / example / "Dockerfile.template").read_text(encoding="utf-8")
    user_lines = _expected_lines(template)
    assert user_lines
    for distro in DISTROS:
        rendered = (GOLDEN / f"{distro}-{example}.Dockerfile").read_text(encoding="utf-8")
        for line in user_lines:
            assert line.rstrip() in rendered.splitlines(), (distro, line)
