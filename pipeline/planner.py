"""The :class:`~pipeline.buildplan.BuildPlan` of a prepared build (:func:`compute_plan`), the
inputs its executor gets (:func:`build_inputs`), and what a failed step came from
(:func:`step_origin`, from the plan's instructions and their origins).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from attrs import evolve

from pipeline.buildoptions import BuildOptions, json_value, options_to_json
from pipeline.buildplan import (
    BuildInputs,
    BuildPlan,
    PlannedBento,
    PlannedInstruction,
    PlannedSecret,
    context_manifest,
    private_source,
)
from pipeline.config import Bento
from pipeline.dockerfile import Instruction, Origin, parse_dockerfile
from pipeline.executor import plan_commands
from pipeline.graph import StageGraph
from pipeline.labels import BENTO_TAG_LABEL as BENTO_TAG_LABEL
from pipeline.labels import image_labels as image_labels
from pipeline.labels import public_url as public_url
from pipeline.loader import load_bentofile
from pipeline.options import PlanSection, plan_section
from pipeline.origins import find_step, instruction_origins
from pipeline.prepared import PreparedBuild, project_dir, render_options_for
from pipeline.projectfiles import build_file
from pipeline.request import (
    CA_CERT_SECRET_ID,
    BuildRequest,
    SecretSpec,
)
from pipeline.stepheaders import without_header


def compute_plan(
    prepared: PreparedBuild,
    request: BuildRequest,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    instructions: Sequence[PlannedInstruction] | None = None,
) -> BuildPlan:
    """The :class:`~pipeline.buildplan.BuildPlan` of ``prepared`` built as ``request`` (whose
    context exists): the context is read for its manifest, the executor asked for its commands
    (which checks the options it cannot take); nothing is written."""
    secrets = tuple(_planned_secret(s, prepared) for s in request.secrets)
    commands = plan_commands(prepared.selection.executor, request, secrets)
    if instructions is None:
        found = _planned_steps(prepared, template, graph) or parse_dockerfile(prepared.dockerfile)
        users = _users_template(prepared)
        instructions = [
            PlannedInstruction(i.line, i.text, None if i.origin is None else users(str(i.origin)))
            for i in found
        ]
    bento = prepared.bento
    return BuildPlan(
        bento=PlannedBento(
            bento.tag,
            bento.name,
            bento.version,
            prepared.source,
            None if bento.creation_time is None else bento.creation_time.isoformat(),
        ),
        backend=prepared.selection.name,
        backend_source=prepared.selection.source,
        dockerfile=prepared.dockerfile,
        instructions=instructions,
        context=context_manifest(request.context),
        secrets=secrets,
        tags=request.tags,
        platforms=request.platforms,
        build_args=request.build_args,
        labels=request.labels,
        target=request.target,
        outputs=_plan_section("outputs", request, prepared.options),
        cache=_plan_section("cache", request, prepared.options),
        engine=_plan_section("engine", request, prepared.options),
        commands=commands,
        options=options_to_json(evolve(prepared.options, tags=prepared.tags)),
    )


def _plan_section(
    section: PlanSection, request: BuildRequest, options: BuildOptions
) -> dict[str, Any]:
    """A plan section: its options (:func:`pipeline.options.plan_section`) as the request
    has them (the options, for those the request does not carry), in JSON terms."""
    return {
        o.name: json_value(getattr(request if o.request else options, o.name))
        for o in plan_section(section)
    }


def _users_template(prepared: PreparedBuild) -> Callable[[str], str]:
    """Origins name the bento's copy of a project's template: name the project's file."""
    name = prepared.bento.docker.dockerfile_template
    project = project_dir(prepared.source) if prepared.source else None
    if not name or project is None:
        return lambda origin: origin
    found = build_file(project)
    with warnings.catch_warnings():  # given once already, when the bento was built
        warnings.simplefilter("ignore")
        asked = None if found is None else load_bentofile(found).docker.dockerfile_template
    if not asked:
        return lambda origin: origin
    copy = str(prepared.bento.path / "env" / "docker" / Path(name).name)
    own = str((project / asked).resolve())
    return lambda origin: origin.replace(copy, own)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _planned_secret(secret: SecretSpec, prepared: PreparedBuild) -> PlannedSecret:
    user = {s.id for s in prepared.options.secrets}
    if secret.id in user:
        origin = "--secret"
    elif prepared.options.ca_cert is not None and secret.id == CA_CERT_SECRET_ID:
        origin = "--ca-cert"
    else:
        index = next((i for i, e in enumerate(prepared.bento.envs) if e.name == secret.id), None)
        origin = "envs (stage: build)" if index is None else f"envs[{index}] (stage: build)"
    if secret.src is None:
        return PlannedSecret(secret.id, "env", str(secret.env), origin)
    # the files the build writes itself are private and temporary: named, not located
    source = str(secret.src) if origin == "--secret" else private_source(secret.id)
    return PlannedSecret(secret.id, "file", source, origin)


def build_inputs(request: BuildRequest, planned: BuildPlan) -> BuildInputs:
    """The inputs ``planned`` was computed from ``request`` with: its context directory and
    the secret files the build wrote itself."""
    private = {
        secret.id: secret.src
        for secret, planned_secret in zip(request.secrets, planned.secrets, strict=True)
        if secret.src is not None and planned_secret.source == private_source(secret.id)
    }
    return BuildInputs(request.context, private)


def plan_steps(planned: BuildPlan) -> list[Instruction]:
    """The plan's instructions, parsed again with their origins (for :func:`step_origin`)."""
    parsed = parse_dockerfile(planned.dockerfile)
    by_line = {i.line: i.origin for i in planned.instructions}
    steps = []
    for item in parsed:
        origin = by_line.get(item.line)
        steps.append(evolve(item, origin=None if origin is None else Origin(None, None, origin)))
    return steps


# Fallback when the failing step matches no rendered instruction:
# (pattern in the failing step, what in the bento produced it)
_STEP_ORIGINS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\[[^\]]*\] )?FROM\b"), "docker: base_image / distro / python_version"),
    (re.compile(r"setup_script"), "docker: setup_script"),
    (re.compile(r"\b(apt-get|apk add|microdnf|yum|dnf)\b"), "docker: system_packages"),
    (
        re.compile(r"\b(pip|uv pip|uv) install\b"),
        "python: packages / requirements_txt (env/python/requirements.txt)",
    ),
)


def step_origin(
    step: str, bento: Bento, instructions: Sequence[Instruction] | None = None
) -> str | None:
    """The block and bentofile field or template line that produced a failing Dockerfile step.

    ``instructions`` are the rendered Dockerfile's (:func:`pipeline.origins.instruction_origins`):
    the step is matched to one of them by the engine's step number and text, and named exactly
    (``block SETUP_BENTO_X in template FILE:LINE (...)``). Without a match it falls back to a
    guess from the step's text (the user's template when the text is in it, or a pattern)."""
    if instructions:
        found = find_step(step, list(instructions))
        if found is not None and found.origin is not None:
            return str(found.origin)
    instruction = without_header(step)
    template = _template_file(bento)
    if template is not None and instruction:
        text = " ".join(template.read_text(errors="replace").split())
        if " ".join(instruction.split()) in text:
            return f"{template} (docker: dockerfile_template)"
    for pattern, origin in _STEP_ORIGINS:
        if pattern.search(step):
            return origin
    return None


def _planned_steps(
    prepared: PreparedBuild, template: str | Path | None, graph: StageGraph | None
) -> list[Instruction]:
    """The prepared Dockerfile's instructions with their origins (rendered as :func:`_render`
    did); empty when they cannot be had: a failing build is reported either way."""
    render_options = render_options_for(
        prepared.bento, prepared.selection, prepared.options, template
    )
    try:
        instructions = instruction_origins(prepared.bento, render_options, graph)
    except Exception:  # only a diagnosis: the BuildError is what gets raised
        return []
    if "\n".join(i.text for i in instructions) != "\n".join(
        i.text for i in parse_dockerfile(prepared.dockerfile)
    ):
        return []  # not the Dockerfile that was built
    return instructions


def _template_file(bento: Bento) -> Path | None:
    name = bento.docker.dockerfile_template
    if not name:
        return None
    for candidate in (bento.path / name, bento.path / "env" / "docker" / Path(name).name):
        if candidate.is_file():
            return candidate
    return None
