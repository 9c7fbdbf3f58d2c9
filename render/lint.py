"""Lint for user ``dockerfile_template`` files.

Findings (``file:line: message``), warnings by default and errors with ``strict``:

- the template does not ``{% extends bento_base_template %}`` (it replaces the whole Dockerfile);
- text outside any block in a template that extends (Jinja drops it silently);
- ``FROM`` outside a build stage: a ``FROM`` is only safe as a named stage (``AS name``) at the
  start of a block that opens a build stage (``SETUP_BENTO_BASE_IMAGE`` before ``{{ super() }}``,
  ``SETUP_BENTO_BUILDSTAGE``); anywhere else it cuts the bento's image in two;
- ``SHELL`` (the output must build on every OCI builder) and ``CMD`` (replaces the serve command);
- a block the stage graph does not have (it would never render).

Always an error: a syntax error (with file:line), and a ``RUN --mount=type=secret`` when the
builder has no BuildKit.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection
from pathlib import Path

import jinja2
from attrs import frozen

from pipeline.errors import PipelineWarning, TemplateError, allowed, did_you_mean
from pipeline.graph import StageGraph
from render.environment import template_errors

_INSTRUCTION = re.compile(r"^\s*(FROM|SHELL|CMD)\b(.*)$", re.IGNORECASE)
_NAMED_STAGE = re.compile(r"\sAS\s+[A-Za-z0-9_.-]+\s*$", re.IGNORECASE)
_SECRET_MOUNT = re.compile(r"--mount=(?:[^\s]*,)?type=secret", re.IGNORECASE)
_BUILDKIT_FLAG = re.compile(r"^\s*RUN\s.*?(--mount=|--network=|--security=)", re.IGNORECASE)


@frozen
class Finding:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _data_lines(value: str, lineno: int) -> list[tuple[int, str]]:
    return [(lineno + offset, text) for offset, text in enumerate(value.split("\n"))]


def lint_source(
    source: str,
    file: str | Path,
    *,
    blocks: Collection[str],
    opening_blocks: Collection[str] = ("SETUP_BENTO_BASE_IMAGE", "SETUP_BENTO_BUILDSTAGE"),
    buildkit: bool = True,
    env: jinja2.Environment | None = None,
) -> list[Finding]:
    """Findings for a template's source. Raises :class:`TemplateError` for syntax errors and
    for secret mounts without BuildKit."""
    env = env or jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    name = str(file)
    with template_errors(name):
        env.parse(source, filename=name)
        tokens = list(env.lex(source, filename=name))
    findings: list[Finding] = []
    extends = False
    stack: list[list[object]] = []  # [block name, super() seen]
    significant = [t for t in tokens if t[1] != "whitespace"]
    for index, (lineno, kind, value) in enumerate(significant):
        keyword = kind == "name" and index > 0 and significant[index - 1][1] == "block_begin"
        if keyword and value == "extends":
            extends = True
        elif keyword and value == "block":
            block = significant[index + 1][2] if index + 1 < len(significant) else ""
            stack.append([block, False])
            if block not in blocks:
                findings.append(
                    Finding(
                        name,
                        lineno,
                        f"block {block!r} does not exist{did_you_mean(block, blocks)}; "
                        f"the stage graph has {allowed(blocks)}",
                    )
                )
        elif keyword and value == "endblock" and stack:
            stack.pop()
        elif kind == "name" and value == "super" and stack:
            stack[-1][1] = True
        elif kind == "data":
            for line, text in _data_lines(value, lineno):
                findings.extend(
                    _check_line(name, line, text, stack, extends, opening_blocks, buildkit)
                )
    if not extends:
        findings.insert(
            0,
            Finding(
                name,
                1,
                "template does not start with {% extends bento_base_template %}: it replaces "
                "the whole Dockerfile instead of extending the bento's",
            ),
        )
    return findings


def _check_line(
    file: str,
    line: int,
    text: str,
    stack: list[list[object]],
    extends: bool,
    opening_blocks: Collection[str],
    buildkit: bool,
) -> list[Finding]:
    if not text.strip():
        return []
    if not buildkit and _SECRET_MOUNT.search(text):
        raise TemplateError(
            "this template mounts a build secret (RUN --mount=type=secret), which needs "
            "BuildKit; the selected builder has none",
            file=file,
            line=line,
            hint="build with docker/buildx/buildctl/dagger (BuildKit) instead",
        )
    found: list[Finding] = []
    if not buildkit and _BUILDKIT_FLAG.search(text):
        found.append(
            Finding(file, line, "RUN flag needs BuildKit and the selected builder has none")
        )
    if extends and not stack:
        found.append(
            Finding(
                file,
                line,
                "text outside a block is ignored in a template that extends "
                "bento_base_template; put it inside a {% block SETUP_BENTO_... %}",
            )
        )
        return found
    match = _INSTRUCTION.match(text)
    if not match:
        return found
    instruction = match.group(1).upper()
    if instruction == "SHELL":
        found.append(
            Finding(file, line, "SHELL is not portable across OCI builders; use RUN sh -c '...'")
        )
    elif instruction == "CMD":
        found.append(
            Finding(
                file,
                line,
                "CMD replaces the bento's serve command; pass arguments at `docker run` "
                "or change ENTRYPOINT in SETUP_BENTO_ENTRYPOINT",
            )
        )
    elif instruction == "FROM":
        block, super_seen = (stack[-1][0], stack[-1][1]) if stack else (None, False)
        named = bool(_NAMED_STAGE.search(match.group(2)))
        if block not in opening_blocks or super_seen or not named:
            found.append(
                Finding(
                    file,
                    line,
                    "FROM outside a build stage: only a named stage (FROM ... AS name) before "
                    "{{ super() }} in SETUP_BENTO_BASE_IMAGE or in SETUP_BENTO_BUILDSTAGE keeps "
                    "the bento's image intact",
                )
            )
    return found


def lint_template(
    source: str,
    path: str | Path,
    *,
    graph: StageGraph,
    buildkit: bool = True,
    strict: bool = False,
    env: jinja2.Environment | None = None,
) -> list[Finding]:
    """Lint a user template against ``graph``: warn (:class:`PipelineWarning`) per finding, or
    with ``strict`` raise :class:`TemplateError` naming the first one (and the count)."""
    opening = {s.block for s in graph.stages if s.opens is not None}
    findings = lint_source(
        source,
        path,
        blocks=graph.blocks,
        opening_blocks=opening,
        buildkit=buildkit,
        env=env,
    )
    if strict and findings:
        first = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise TemplateError(
            first.message + more,
            file=first.file,
            line=first.line,
            hint="--strict makes template lint findings errors",
        )
    for finding in findings:
        warnings.warn(str(finding), PipelineWarning, stacklevel=3)
    return findings
