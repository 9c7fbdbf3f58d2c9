"""`--enable-features` (RenderOptions.features): bentoml's extras at the bento's own bentoml
version, in the same install step as the requirements."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.config import Bento
from pipeline.errors import ConfigError
from pipeline.graph import default_graph
from pipeline.plan import RenderOptions, render_dockerfile

MakeBento = Callable[..., Bento]  # the make_bento fixture (tests/render/conftest.py)

LOCKED = "--index-url https://pypi.org/simple\n\nbentoml==1.4.40\nstarlette==0.47.0\n"


def install_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "pip install" in line or "pip wheel" in line]


def test_features_install_the_pinned_bentomls_extras(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": LOCKED})
    text = render_dockerfile(bento, RenderOptions(features=("io-image", "grpc", "io-image")))
    (line,) = install_lines(text)
    assert "-r ./env/python/requirements.txt 'bentoml[io-image,grpc]==1.4.40' && " in line
    assert "bentoml[" not in render_dockerfile(bento)


def test_features_go_into_the_wheelhouse_of_the_buildstage(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": LOCKED})
    text = render_dockerfile(
        bento, RenderOptions(features=("tracing",)), default_graph(buildstage=True)
    )
    lines = install_lines(text)
    assert len(lines) == 2
    assert all(line.endswith(" 'bentoml[tracing]==1.4.40'") for line in lines), lines


def test_features_need_a_bento_that_pins_bentoml(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": "six==1.16.0\n"})
    with pytest.raises(ConfigError, match="does not pin bentoml") as info:
        render_dockerfile(bento, RenderOptions(features=("io",)))
    assert info.value.field == "--enable-features"


def test_unknown_feature_names_the_allowed_ones(make_bento: MakeBento) -> None:
    bento = make_bento(files={"env/python/requirements.txt": LOCKED})
    with pytest.raises(ConfigError, match="unknown feature 'io-imag'.*did you mean 'io-image'"):
        render_dockerfile(bento, RenderOptions(features=("io-imag",)))
