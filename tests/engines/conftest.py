"""Fixtures every real-engine test shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engines.enginekit import remove_image


@pytest.fixture()
def tags() -> Iterator[list[tuple[str, str]]]:
    """(runner, tag) pairs a test built: each image is removed afterwards."""
    created: list[tuple[str, str]] = []
    yield created
    for runner, tag in created:
        remove_image(runner, tag)
