"""`--enable-features` (RenderOptions.features): bentoml's extras at the bento's own bentoml
version, in the same install step as the requirements."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.config import Bento
from pipeline.errors import ConfigError
from pipeline.graph import default_graph
from pipeline.rendering import RenderOptions, render_dockerfile

MakeBento = Callable[..., Bento]  # the make_bento fixture (tests/render/conftest.py)

LOCKED = "--index-url https://pypi.org/simple\n\nbentoml==1.4.40\nstarlette==0.47.0\n"


def install_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "pip install" in line or "pip wheel" in line]


def test_features_install_the_pinned_bentomls_extras(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": LOCKED})
    text = render_dockerfile(bento, RenderOptions(features=("io-image", "grpc", "io-image")))
    bootstrap, line = install_lines(text)
    assert "bentoml[" not in bootstrap  # uv's own layer
    # in the build stage's wheels-only attempt and in its from-source fallback alike
    wanted = "-r /tmp/bento/env/python/requirements.txt 'bentoml[io-image,grpc]==1.4.40'"
    assert line.count(wanted) == 2, line
    assert "bentoml[" not in render_dockerfile(bento)


def test_features_in_the_single_stage_layout(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": LOCKED})
    text = render_dockerfile(
        bento, RenderOptions(features=("tracing",)), default_graph(buildstage=False)
    )
    (line,) = install_lines(text)
    assert line.endswith(
        "-r /home/bentoml/bento/env/python/requirements.txt 'bentoml[tracing]==1.4.40' "
        "&& rm -rf /tmp/uv"
    ), line


def test_features_need_a_bento_that_pins_bentoml(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": "six==1.16.0\n"})
    with pytest.raises(ConfigError, match="does not pin bentoml") as info:
        render_dockerfile(bento, RenderOptions(features=("io",)))
    assert info.value.field == "--enable-features"


def test_unknown_feature_names_the_allowed_ones(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": LOCKED})
    with pytest.raises(ConfigError, match="unknown feature 'io-imag'.*did you mean 'io-image'"):
        render_dockerfile(bento, RenderOptions(features=("io-imag",)))
