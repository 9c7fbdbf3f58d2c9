"""Which instruction is which (pure): where each rendered instruction comes from, and which
one an engine's step header names.

- :func:`instruction_origins`: every instruction of :func:`pipeline.rendering.render_dockerfile`
  with its :class:`~pipeline.dockerfile.Origin` (the block, the user's template line or the
  built-in stage and the bentofile field behind it).
- :func:`find_step`: the instruction an engine's failing-step header names (BuildKit's
  ``[stage n/m]``, the classic builder's ``Step n/m :``, buildah's ``STEP n/m:``); that is how
  a failed build says what produced the failing step.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from attrs import evolve

from pipeline.config import Bento
from pipeline.dockerfile import Instruction, Origin, parse_dockerfile
from pipeline.graph import StageGraph, default_graph
from pipeline.rendering import RenderOptions, render_dockerfile, render_with_sources
from pipeline.stepheaders import BUILDKIT_STEP, NUMBERED_STEP
from render.environment import BASE_TEMPLATE_NAME, template_line

# -- where each Dockerfile instruction comes from (pure; the parser is pipeline.dockerfile) --------

USER_TEMPLATE_FIELD = "docker.dockerfile_template"

_PYTHON_FIELD = "python.packages / python.requirements_txt"
_INSTALLERS = re.compile(r"\b(apt-get|apk|microdnf|yum|dnf) ")


def _field(bento: Bento, stage: str, text: str) -> str | None:
    """The bentofile field behind an instruction that a built-in ``stage`` rendered."""
    flat = " ".join(text.replace("\\\n", " ").split())
    keyword = flat.split(None, 1)[0].upper()
    docker = bento.docker
    if keyword == "FROM":
        if stage != "base":  # `FROM base-container AS ...`: a stage of ours, no field behind it
            return None
        return "docker.base_image / docker.distro / docker.python_version / docker.cuda_version"
    if keyword == "ENV" and stage in ("envars", "buildstage"):
        return "docker.env" if any(f" {key}=" in f" {flat}" for key in docker.env) else None
    if keyword == "LABEL":
        return "labels"
    if keyword != "RUN":
        return _PYTHON_FIELD if "./env/python" in flat else None
    for name, commands in (("commands", docker.commands), ("post_commands", docker.post_commands)):
        for i, command in enumerate(commands):
            if " ".join(command.split()) in flat:
                return f"docker.{name}[{i}]"
    if "setup_script" in flat:
        return "docker.setup_script"
    if "conda install" in flat:
        return "conda.dependencies / conda.channels"
    if re.search(r"\bpip (install|wheel)\b", flat):
        return _PYTHON_FIELD
    if _INSTALLERS.search(flat):
        words = set(flat.split())
        if any(package in words for package in docker.system_packages):
            return "docker.system_packages"
        return "docker.distro / docker.python_version (the distro's Python setup)"
    return None


def instruction_origins(
    bento: Bento, options: RenderOptions | None = None, graph: StageGraph | None = None
) -> list[Instruction]:
    """The instructions of :func:`render_dockerfile` (same arguments, same text), each with its
    :class:`Origin`: the block that rendered it, from the user's template (with the template
    line) or from a built-in stage (with the bentofile field behind it).

    Lines come out of a render where each block's output is framed by markers that are stripped
    afterwards; if a template reshapes a block's output as a string so that the framed text
    differs from :func:`render_dockerfile`'s, the instructions come without origins."""
    graph = graph if graph is not None else default_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = render_dockerfile(bento, options, graph)
        traced, sources = render_with_sources(bento, options, graph)
    instructions = parse_dockerfile(plain)
    if traced != plain:
        return instructions
    stage_of_block = {stage.block: stage.name for stage in graph.order()}
    explicit = options is not None and options.template is not None
    template_field = "--template" if explicit else USER_TEMPLATE_FIELD
    user_sources: dict[str, str] = {}
    taken: dict[tuple[str, str | None], set[int]] = {}
    result: list[Instruction] = []
    for instruction in instructions:
        source = sources[instruction.line - 1]
        stage = stage_of_block.get(source.block) if source.block else None
        if source.template is not None and source.template != BASE_TEMPLATE_NAME:
            path = source.template
            if path not in user_sources:
                user_sources[path] = Path(path).read_text(encoding="utf-8")
            line = template_line(
                user_sources[path],
                source.block,
                instruction.text,
                taken.setdefault((path, source.block), set()),
            )
            where = f"template {path}:{line}" if line else f"template {path}"
            origin = Origin(source.block, stage, where, template_field)
        elif stage is not None:
            kind = "built-in stage" if graph.get(stage).template else "graph stage"
            origin = Origin(
                source.block, stage, f"{kind} {stage}", _field(bento, stage, instruction.text)
            )
        else:
            origin = Origin(source.block, None, "the base template")
        result.append(evolve(instruction, origin=origin))
    return result


# -- the instruction an engine's step header names ------------------------------------------------

_SHELL = re.compile(r"^(?:/bin/)?(?:ba)?sh -c ")
_FLAG = re.compile(r"^--[a-z-]+=\S*\s*")


def _squash(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def _comparable(text: str) -> set[str]:
    """Ways the engines show an instruction: as written (continuations joined), without its
    ``--flag=`` options, just the command (Dagger and some errors show ``sh -c COMMAND``), and a
    ``FROM`` by its image with ``docker.io/library/`` and ``AS name`` dropped."""
    flat = _squash(text)
    keyword, _, rest = flat.partition(" ")
    forms = {flat}
    if keyword.upper() == "FROM":
        words = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"^docker\.io/(library/)?", "", words[0]) if words else ""
        return {f"FROM {image}"}
    while _FLAG.match(rest):
        rest = _FLAG.sub("", rest, count=1)
    forms.add(f"{keyword} {rest}".strip())
    if keyword.upper() == "RUN":
        forms.add(rest)
    return forms


def _step_forms(step: str) -> set[str]:
    flat = _squash(step)
    forms = _comparable(flat)
    command = _SHELL.sub("", flat)
    if command != flat:
        forms.add(command)
    return forms


def find_step(step: str, instructions: list[Instruction]) -> Instruction | None:
    """The instruction an engine names as ``step`` (its failing step header): by text among
    ``instructions``, with the step number telling apart instructions of the same text, or by
    number alone when the text is cut short. ``None`` when nothing fits."""
    text = step.strip()
    numbered: list[Instruction] = []
    if match := BUILDKIT_STEP.match(text):
        n, m, stage = int(match["n"]), int(match["m"]), match["stage"]
        totals: dict[str | None, int] = {}
        for i in instructions:
            totals[i.build_stage] = max(totals.get(i.build_stage, 0), i.step)
        numbered = [
            i
            for i in instructions
            if i.step == n
            and totals[i.build_stage] == m
            and (i.build_stage == stage if stage else len(totals.keys() - {None}) == 1)
        ]
        text = text[match.end() :]
    elif match := NUMBERED_STEP.match(text):
        n, m = int(match["n"]), int(match["m"])
        per_stage: dict[str | None, int] = {}
        for i in instructions:
            per_stage[i.build_stage] = max(per_stage.get(i.build_stage, 0), i.index)
        numbered = [i for i in instructions if i.number == n and len(instructions) == m]
        numbered += [
            i
            for i in instructions
            if i.index == n and i.build_stage is not None and per_stage[i.build_stage] == m
        ]
        text = text[match.end() :]
    wanted = _step_forms(text)
    same = [i for i in instructions if wanted & _comparable(i.text)]
    if same:
        both = [i for i in numbered if i in same]
        return both[0] if both else same[0]
    # cut short (engines truncate long steps in some modes): the numbered one if it starts so
    prefix = _squash(text).rstrip(". ")
    for candidate in numbered:
        if prefix and any(form.startswith(prefix) for form in _comparable(candidate.text)):
            return candidate
    return None


__all__ = ["USER_TEMPLATE_FIELD", "find_step", "instruction_origins"]
