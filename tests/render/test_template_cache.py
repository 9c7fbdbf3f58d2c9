"""Compiled templates on disk: reused when the source is the same, never a failed render."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from render.environment import CompiledTemplateCache, make_environment


def _render(cache_dir: Path, source: str) -> str:
    env = make_environment({"t.j2": source}, bytecode_cache=CompiledTemplateCache(cache_dir))
    return env.get_template("t.j2").render(name="x")


def _compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, *args: object, **kwargs: object) -> object:
        seen.append(str(kwargs.get("name") or (args[0] if args else "")))
        return original(self, source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return seen


def test_a_template_compiled_once_is_loaded_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _compiles(monkeypatch)
    assert _render(tmp_path, "FROM {{ name }}\n") == "FROM x\n"
    assert len(seen) == 1
    assert _render(tmp_path, "FROM {{ name }}\n") == "FROM x\n"  # a new environment: cached
    assert len(seen) == 1
    assert _render(tmp_path, "FROM {{ name }}:1\n") == "FROM x:1\n"  # changed source
    assert len(seen) == 2
    assert any(tmp_path.glob("jinja-*/*"))


def test_an_unusable_cache_only_costs_a_compile(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert _render(blocked / "cache", "FROM {{ name }}\n") == "FROM x\n"
    # a corrupt entry is compiled again and replaced
    good = tmp_path / "cache"
    _render(good, "FROM {{ name }}\n")
    for entry in good.glob("jinja-*/*"):
        entry.write_bytes(b"garbage")
    assert _render(good, "FROM {{ name }}\n") == "FROM x\n"
