"""examples/ci/github-actions.yml calls functions and flags the module really has."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli import make_parser

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
# what the chained call after a function may be, by the function's return type
CHAINED = {"File": {"export": {"path"}}, "Container": {"publish": {"address"}}, "str": {}}


@pytest.fixture(scope="module")
def module_class() -> Any:
    sys.path.insert(0, str(ROOT / ".dagger" / "src"))
    try:
        return importlib.import_module("bento_pipeline_dagger.main").BentoPipeline
    finally:
        sys.path.remove(str(ROOT / ".dagger" / "src"))


def dagger_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    return [s for s in steps if str(s.get("uses", "")).startswith("dagger/dagger-for-github@")]


def argv(step: dict[str, Any]) -> list[str]:
    text = re.sub(r"\$\{\{[^}]*\}\}", "X", step["with"]["args"])
    return shlex.split(text)


def test_workflow_pins_the_same_dagger_version() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    config = json.loads((ROOT / "dagger.json").read_text())
    assert config["engineVersion"] == f"v{workflow['env']['DAGGER_VERSION']}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"dagger-io=={workflow["env"]["DAGGER_VERSION"]}"' in pyproject
    assert dagger_steps(), "the example calls dagger"


@pytest.mark.parametrize(
    "step",
    [s for s in dagger_steps() if s["with"]["verb"] == "call"],
    ids=lambda s: s["name"],
)
def test_dagger_call_matches_the_module(step: dict[str, Any], module_class: Any) -> None:
    words = argv(step)
    function = words[0].replace("-", "_")
    method = getattr(module_class, function)
    params = inspect.signature(method).parameters
    flags = []
    rest = words[1:]
    while rest and rest[0].startswith("--"):
        flags.append(rest.pop(0)[2:].partition("=")[0].replace("-", "_"))
    for flag in flags:
        assert flag in params, f"{function} has no --{flag.replace('_', '-')}"
    required = {
        name
        for name, p in params.items()
        if name != "self" and p.default is inspect.Parameter.empty
    }
    assert required <= set(flags), f"{function} needs --{sorted(required - set(flags))}"
    returns = inspect.signature(method).return_annotation
    kind = getattr(returns, "__name__", str(returns))
    if rest:
        chained = rest.pop(0)
        assert chained in CHAINED[kind], f"{kind} has no {chained} here"
        chained_flags = {w[2:].partition("=")[0] for w in rest if w.startswith("--")}
        assert chained_flags == CHAINED[kind][chained]


def test_dagger_run_step_is_a_valid_pipeline_command() -> None:
    [step] = [s for s in dagger_steps() if s["with"]["verb"] == "run"]
    words = argv(step)
    assert words[:3] == ["python", "-m", "pipeline"]
    args = make_parser().parse_args(words[3:])
    assert args.backend == "dagger"
    assert args.output == "type=oci,dest=hello-oci.tar"
