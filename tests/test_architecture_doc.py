"""docs/architecture.md describes the code as it is: its module tree lists every module, with
the layer tests/test_imports.py puts it in and the job its docstring states.

Regenerate the tree after adding, moving or re-describing a module with

    PIPELINE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_architecture_doc.py

and review the diff of docs/architecture.md.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from tests.test_imports import CORE, SHELL, layer_of

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
START, END = "<!-- module-tree:start -->", "<!-- module-tree:end -->"


def job(source: str) -> str:
    """A module's job: the first sentence of its docstring, on one line."""
    doc = (ast.get_docstring(ast.parse(source)) or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


def module_tree() -> str:
    rows = []
    for top in ("pipeline", "render"):
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            parts = relative.with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            [layer] = layer_of(module, {"core": CORE, "shell": SHELL})
            rows.append((str(relative), layer, job(path.read_text(encoding="utf-8"))))
    width = max(len(path) for path, _, _ in rows)
    lines = [f"{path:<{width}}  {layer:<5}  {text}" for path, layer, text in rows]
    return "```\n" + "\n".join(lines) + "\n```\n"


def test_the_module_tree_is_the_code_as_it_is() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert START in text and END in text, f"{DOC} has no {START} ... {END} section"
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    wanted = f"{before}{START}\n{module_tree()}{END}{after}"
    if os.environ.get("PIPELINE_UPDATE_GOLDEN") == "1":
        DOC.write_text(wanted, encoding="utf-8")
    assert text == wanted, (
        "docs/architecture.md's module tree differs from the code; regenerate it with "
        "PIPELINE_UPDATE_GOLDEN=1 and review the diff"
    )


def test_every_module_states_its_job() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for top in ("pipeline", "render")
        for path in sorted((ROOT / top).rglob("*.py"))
        if not job(path.read_text(encoding="utf-8"))
    ]
    assert missing == []
