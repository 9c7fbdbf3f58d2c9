"""Each build option is declared once (pipeline.options.OPTIONS); every other place that
names options is derived from that declaration or must agree with it."""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import attrs
import pytest

from pipeline import api, buildoptions
from pipeline.backends import support
from pipeline.backends.registry import request_options
from pipeline.buildplan import BuildPlan
from pipeline.cli.build import configure_build
from pipeline.cli.matrix import _configure as configure_matrix
from pipeline.options import ENGINES, OPTIONS, option
from pipeline.request import BuildRequest

ROOT = Path(__file__).resolve().parents[1]
NAMES = {o.name for o in OPTIONS}
# what a matrix cell decides itself (one tag and one platform per cell; one id file, metadata
# file or printed id cannot serve many images)
MATRIX_OWN = {"tags", "platforms", "output", "iidfile", "metadata_file", "quiet"}


def test_names_are_unique_and_every_flag_is_declared_once() -> None:
    assert len(NAMES) == len(OPTIONS)
    flags = [flag for o in OPTIONS for flag in o.flags]
    assert len(flags) == len(set(flags))


def test_build_options_fields_are_the_declared_options() -> None:
    assert {f.name for f in attrs.fields(api.BuildOptions)} == NAMES


def test_the_api_takes_exactly_the_declared_options() -> None:
    assert set(buildoptions._OPTION_NAMES) == NAMES


def test_the_request_carries_every_declared_request_option() -> None:
    fields = {f.name for f in attrs.fields(BuildRequest)}
    assert {o.name for o in OPTIONS if o.request} <= fields
    assert not {o.name for o in OPTIONS if not o.request} & fields


def test_declared_defaults_are_the_apis_defaults() -> None:
    defaults = api.parse_options()
    for declared in OPTIONS:
        value = getattr(defaults, declared.name)
        if declared.kind == "flag":
            assert value is False, declared.name
        elif declared.kind in ("list", "map"):
            assert not value, declared.name
        else:
            assert value == declared.default, declared.name


def parser(configure: object) -> argparse.ArgumentParser:
    made = argparse.ArgumentParser()
    configure(made)  # type: ignore[operator]
    return made


def option_strings(made: argparse.ArgumentParser) -> dict[str, str]:
    return {flag: action.dest for action in made._actions for flag in action.option_strings}


def test_a_build_plan_records_every_option_once() -> None:
    """Each option is a field of the plan itself or an entry of the section it declares; only
    --ca-cert is recorded as what it becomes (a secret)."""
    plan_fields = {f.name for f in attrs.fields(BuildPlan)}
    sections = {"outputs", "cache", "engine"}
    assert sections <= plan_fields
    for o in OPTIONS:
        if o.plan is None:
            assert o.name in plan_fields or o.name == "ca_cert", o.name
        else:
            assert o.plan in sections and o.name not in plan_fields, o.name
    planned = api.plan(ROOT / "examples" / "hello", backend="docker", check=False)
    recorded = {key for section in sections for key in getattr(planned, section)}
    assert recorded == {o.name for o in OPTIONS if o.plan is not None}


@pytest.mark.parametrize("command", ["build", "plan"])
def test_build_and_plan_have_every_option_under_its_declared_flags(command: str) -> None:
    found = option_strings(parser(lambda p: configure_build(p, command=command)))
    for declared in OPTIONS:
        for flag in declared.flags:
            assert found.get(flag) == declared.dest, (command, flag)


def test_matrix_has_every_option_but_the_cells_own() -> None:
    found = option_strings(parser(configure_matrix))
    for declared in OPTIONS:
        if declared.name in MATRIX_OWN:
            continue
        for flag in declared.flags:
            assert found.get(flag) == declared.dest, flag


def test_the_support_table_is_the_declared_engines() -> None:
    assert set(support.SUPPORT) == ENGINES
    for name, flag in support.FLAGS.items():
        declared = option(name)
        assert flag == declared.flag
        for engine in ENGINES:
            has = declared.engines is None or engine in declared.engines
            assert (name in support.SUPPORT[engine]) == has, (engine, name)


def test_plugins_get_every_option_with_a_keyword(tmp_path: Path) -> None:
    request = BuildRequest(context=tmp_path)
    given = request_options(request)
    for declared in OPTIONS:
        if declared.plugin is not None:
            assert declared.plugin in given, declared.name
    assert {"context_path", "file"} <= set(given)


def test_the_dagger_module_names_options_as_declared() -> None:
    """The module's build functions take the declared names (plus what only Dagger has)."""
    source = (ROOT / ".dagger" / "src" / "bento_pipeline_dagger" / "main.py").read_text()
    tree = ast.parse(source)
    own = {"self", "bento", "secret_ids", "docker", "address"}  # Dagger-typed inputs
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef) and node.name in ("build", "export", "publish"):
            params = {a.arg for a in node.args.args + node.args.kwonlyargs}
            assert params - own <= NAMES, (node.name, params - own - NAMES)


def test_the_parse_signature_is_inspectable() -> None:
    # the CLI's "unknown keyword" message lists these: the declaration order
    assert list(inspect.signature(buildoptions._parse_options).parameters) == [
        o.name for o in OPTIONS
    ]
