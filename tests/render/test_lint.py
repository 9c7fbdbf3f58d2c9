"""Template lint: findings with file:line, warnings by default, errors with strict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.config import Bento
from pipeline.errors import PipelineWarning, TemplateError
from pipeline.graph import default_graph
from pipeline.rendering import RenderOptions, render_dockerfile
from render.lint import Finding, lint_source, lint_template

MakeBento = Callable[..., Bento]  # the make_bento fixture (tests/render/conftest.py)

GRAPH = default_graph()
FILE = "Dockerfile.template"


def lint(source: str, **kwargs: object) -> list[Finding]:
    return lint_source(source, FILE, blocks=GRAPH.blocks, **kwargs)  # type: ignore[arg-type]


def at(findings: list[Finding]) -> list[tuple[int, str]]:
    return [(f.line, f.message.split(" ")[0]) for f in findings]


def test_clean_template_has_no_findings() -> None:
    source = (
        "{% extends bento_base_template %}\n"
        "{% block SETUP_BENTO_COMPONENTS %}\n{{ super() }}\nRUN echo ok\n{% endblock %}\n"
    )
    assert lint(source) == []


def test_missing_extends() -> None:
    findings = lint("FROM python:3.11\nRUN echo hi\n")
    assert findings[0].line == 1
    assert "does not start with {% extends bento_base_template %}" in findings[0].message


def test_unknown_block_with_suggestion() -> None:
    source = (
        "{% extends bento_base_template %}\n\n{% block SETUP_BENTO_COMPONENT %}\n{% endblock %}\n"
    )
    (finding,) = lint(source)
    assert finding.line == 3
    assert "block 'SETUP_BENTO_COMPONENT' does not exist" in finding.message
    assert "did you mean 'SETUP_BENTO_COMPONENTS'" in finding.message


def test_block_missing_from_a_smaller_graph() -> None:
    source = "{% extends bento_base_template %}\n{% block SETUP_BENTO_ENVARS %}{% endblock %}\n"
    graph = GRAPH.remove("envars")
    (finding,) = lint_source(source, FILE, blocks=graph.blocks)
    assert "'SETUP_BENTO_ENVARS' does not exist" in finding.message


def test_shell_and_cmd() -> None:
    source = (
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_ENTRYPOINT %}\n{{ super() }}\n"
        'SHELL ["/bin/bash", "-c"]\ncmd ["python", "app.py"]\n{% endblock %}\n'
    )
    assert at(lint(source)) == [(4, "SHELL"), (5, "CMD")]


def test_from_allowed_as_named_stage_before_super_in_base_image() -> None:
    source = (
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_BASE_IMAGE %}\n"
        "FROM --platform=$BUILDPLATFORM python:3.7-slim as buildstage\nRUN true\n"
        "{{ super() }}\n{% endblock %}\n"
    )
    assert lint(source) == []


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("{{ super() }}\nFROM alpine AS later\n", 4),  # after super(): splits the bento's stage
        ("FROM alpine\n{{ super() }}\n", 3),  # unnamed
    ],
)
def test_from_outside_a_build_stage_in_base_image(body: str, line: int) -> None:
    source = (
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_BASE_IMAGE %}\n"
        f"{body}{{% endblock %}}\n"
    )
    (finding,) = lint(source)
    assert (finding.line, finding.message.startswith("FROM outside a build stage")) == (line, True)


def test_from_in_another_block() -> None:
    source = (
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_COMPONENTS %}\n"
        "FROM alpine AS x\n{% endblock %}\n"
    )
    assert at(lint(source)) == [(3, "FROM")]


def test_text_outside_blocks_is_flagged() -> None:
    source = "{% extends bento_base_template %}\nRUN echo lost\n"
    (finding,) = lint(source)
    assert finding.line == 2 and "outside a block is ignored" in finding.message


def test_syntax_error_has_file_and_line() -> None:
    with pytest.raises(TemplateError) as info:
        lint("{% extends bento_base_template %}\n{% block X %}\n{% endblok %}\n")
    assert info.value.file == FILE and info.value.line == 3


def test_buildkit_only_flags_without_buildkit() -> None:
    source = (
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_COMPONENTS %}\n"
        "RUN --network=none true\n{% endblock %}\n"
    )
    assert lint(source) == []
    (finding,) = lint(source, buildkit=False)
    assert finding.line == 3 and "BuildKit" in finding.message


def test_warnings_by_default_errors_when_strict() -> None:
    source = (
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_ENTRYPOINT %}\n"
        'CMD ["x"]\n{% endblock %}\n{% block SETUP_BENTO_NOPE %}{% endblock %}\n'
    )
    with pytest.warns(PipelineWarning) as record:
        findings = lint_template(source, FILE, graph=GRAPH)
    assert len(findings) == 2
    messages = [str(w.message) for w in record]
    assert messages[0].startswith("Dockerfile.template:3: CMD replaces")
    assert messages[1].startswith("Dockerfile.template:5: block 'SETUP_BENTO_NOPE'")
    with pytest.raises(TemplateError) as info:
        lint_template(source, FILE, graph=GRAPH, strict=True)
    assert (info.value.file, info.value.line) == (FILE, 3)
    assert "(and 1 more)" in str(info.value)


def test_render_applies_lint(make_bento: MakeBento, tmp_path: Path) -> None:
    template = tmp_path / "t.j2"
    template.write_text(
        "{% extends bento_base_template %}\n{% block SETUP_BENTO_ENTRYPOINT %}\n{{ super() }}\n"
        'SHELL ["/bin/bash", "-c"]\n{% endblock %}\n',
        encoding="utf-8",
    )
    with pytest.warns(PipelineWarning, match=f"{template}:4: SHELL"):
        text = render_dockerfile(make_bento(), RenderOptions(template=template))
    assert 'SHELL ["/bin/bash", "-c"]' in text
    with pytest.raises(TemplateError, match="SHELL"):
        render_dockerfile(make_bento(), RenderOptions(template=template, strict=True))
