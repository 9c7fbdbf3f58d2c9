"""Bentos built directly from the config classes (no loader, no store)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Bento, DockerOptions, PythonOptions

MakeBento = Callable[..., Bento]


@pytest.fixture
def make_bento(tmp_path: Path) -> MakeBento:
    """``make_bento(docker={...}, python={...}, files={rel: text}, **bento_fields)``: a bento
    directory under tmp_path with those files and a pinned python_version."""

    def make(
        *,
        docker: dict[str, Any] | None = None,
        python: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
        **fields: Any,
    ) -> Bento:
        root = tmp_path / "bento"
        root.mkdir(exist_ok=True)
        (root / "bento.yaml").write_text("service: service:svc\n", encoding="utf-8")
        for rel, text in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        options = {"python_version": "3.11", **(docker or {})}
        if options.get("base_image"):
            options.pop("python_version")
        return Bento(
            name=fields.pop("name", "demo"),
            version=fields.pop("version", "v1"),
            path=root,
            service="service:svc",
            docker=DockerOptions(**options),
            python=PythonOptions(**(python or {})),
            **fields,
        )

    return make
