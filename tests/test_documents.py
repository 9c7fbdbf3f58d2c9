"""Hostile configuration documents: a clear exit-2 error naming the file, never a traceback or a
hang (issue: hardening). Each case is a class of input, not one example."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipeline import documents
from pipeline.errors import ConfigError
from pipeline.loader import load_bentofile
from tests.cli.clirun import pipeline_cli

SERVICE = "service: app:svc\n"


def _laughs(depth: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, depth + 1):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return SERVICE + "labels:\n" + "".join(f"  {line}\n" for line in lines)


CASES = {
    "deep-flow-list": SERVICE + "labels: {a: " + "[" * 5000 + "]" * 5000 + "}\n",
    "deep-block-map": SERVICE
    + "".join(f"{'  ' * i}k{i}:\n" for i in range(200))
    + "  " * 200
    + "x\n",
    "recursive-alias": SERVICE + "include: &a [*a]\n",
    "recursive-alias-map": SERVICE + "docker: &d {env: *d}\n",
    "billion-laughs-7": _laughs(7),
    "long-list": SERVICE + "include:\n" + "".join(f"  - f{i}.py\n" for i in range(20_000)),
    "bad-int-tag": SERVICE + "docker:\n  python_version: !!int c\n",
    "empty-int-tag": SERVICE + "docker:\n  python_version: !!int\n",
    "bad-float-tag": SERVICE + "docker:\n  python_version: !!float x\n",
    "bad-bool-tag": SERVICE + "docker:\n  python_version: !!bool maybe\n",
    "bad-timestamp-tag": SERVICE + "docker:\n  python_version: !!timestamp never\n",
    "impossible-date": SERVICE + "version: 2001-02-30\n",
    "python-tag": SERVICE + "docker: !!python/object:os.system {}\n",
    "int-key": SERVICE + "docker:\n  env:\n    1: one\n",
    "float-key": SERVICE + "labels:\n  3.11: x\n",
    "bool-key": SERVICE + "docker:\n  env:\n    on: x\n",
    "null-key": SERVICE + "labels:\n  ~: x\n",
    "list-key": SERVICE + "labels:\n  ? [a, b]\n  : x\n",
    "top-level-int-key": SERVICE + "1: x\n",
    "models-number": SERVICE + "models: 5\n",
    "lone-surrogate-value": SERVICE + 'labels:\n  a: "\\ud800"\n',
    "lone-surrogate-key": SERVICE + 'labels:\n  "\\udfff": x\n',
    "surrogate-in-env": SERVICE + 'docker:\n  env:\n    A: "x\\ud83dy"\n',
    "not-utf8": None,  # bytes, below
    "too-large": None,
}


def _write(project: Path, name: str) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    (project / "app.py").write_text("svc = 1\n")
    file = project / "bentofile.yaml"
    if name == "not-utf8":
        file.write_bytes(SERVICE.encode() + b"labels:\n  a: \xff\xfe\n")
    elif name == "too-large":
        file.write_text(SERVICE + "#" * (documents.MAX_BYTES + 10) + "\n")
    else:
        text = CASES[name]
        assert text is not None
        file.write_text(text, encoding="utf-8", errors="surrogatepass")
    return file


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_bentofile_is_a_clear_error_at_once(name: str, tmp_path: Path) -> None:
    file = _write(tmp_path / "p", name)
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_bentofile(file)
    assert time.monotonic() - started < 10, "bounded work, not a hang"
    message = str(raised.value)
    assert str(file) in message, message
    assert raised.value.exit_code == 2
    assert ".tmp-" not in message


@pytest.mark.parametrize(
    "name", ["deep-flow-list", "recursive-alias", "billion-laughs-7", "bad-int-tag", "int-key",
             "lone-surrogate-value", "not-utf8"],
)  # fmt: skip
def test_the_cli_reports_it_with_exit_2_and_stores_nothing(name: str, tmp_path: Path) -> None:
    file = _write(tmp_path / "p", name)
    home = tmp_path / "store"
    done = pipeline_cli(
        "dockerfile", str(file.parent), env={**os.environ, "BENTOML_HOME": str(home)}, timeout=30
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(file) in done.stderr
    assert done.stdout == ""
    assert not list(home.glob("bentos/*/*")), "nothing half-written in the store"


def test_each_message_names_the_limit_or_the_problem(tmp_path: Path) -> None:
    def error(name: str) -> str:
        with pytest.raises(ConfigError) as raised:
            load_bentofile(_write(tmp_path / name, name))
        return str(raised.value)

    assert f"nested more than {documents.MAX_DEPTH} levels" in error("deep-flow-list")
    assert "recursive alias" in error("recursive-alias")
    assert f"more than {documents.MAX_VALUES:,} values" in error("billion-laughs-7")
    assert f"the limit is {documents.MAX_ITEMS:,}" in error("long-list")
    bad_int = error("bad-int-tag")
    assert "bentofile.yaml:3: malformed YAML: cannot read int value 'c'" in bad_int
    assert "cannot read timestamp value" in error("impossible-date")
    key = error("int-key")
    assert "a key must be a string, got '1' (read as int)" in key and "docker.env" in key
    assert "quote it" in key
    # libyaml refuses the escape itself; PyYAML's own parser reads it and our check refuses it
    surrogate = error("lone-surrogate-value")
    assert "invalid Unicode character escape" in surrogate or (
        "U+D800" in surrogate and "labels.a" in surrogate
    )
    assert "not UTF-8" in error("not-utf8")
    assert "larger than 1024 KiB" in error("too-large")


def test_aliases_and_merge_keys_that_stay_small_still_work(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "app.py").write_text("svc = 1\n")
    (project / "bentofile.yaml").write_text(
        SERVICE
        + "labels: &labels {team: ml, tier: '1'}\n"
        + "docker:\n  env:\n    <<: *labels\n    EXTRA: 'yes'\n"
        + "include: &files ['*.py']\n"
    )
    spec = load_bentofile(project / "bentofile.yaml")
    assert spec.labels == {"team": "ml", "tier": "1"}
    assert dict(spec.docker.env) == {"team": "ml", "tier": "1", "EXTRA": "yes"}
    assert list(spec.include) == ["*.py"]


def test_the_line_of_every_field_is_known(tmp_path: Path) -> None:
    file = tmp_path / "f.yaml"
    file.write_text("service: a:b\ndocker:\n  env:\n    A: '1'\ninclude:\n  - x\n  - y\n")
    data, lines = documents.read_yaml(file)
    assert data["docker"]["env"] == {"A": "1"}
    assert lines[("docker", "env", "A")] == 4
    assert lines[("include", 1)] == 7


def test_toml_data_gets_the_same_value_checks(tmp_path: Path) -> None:
    file = tmp_path / "pyproject.toml"
    with pytest.raises(ConfigError, match="the limit is"):
        documents.check_data({"include": list(range(documents.MAX_ITEMS + 1))}, file)
    with pytest.raises(ConfigError, match="U\\+D800"):
        documents.check_data({"labels": {"a": "\ud800"}}, file)
    nested: dict[str, object] = {}
    inner = nested
    for _ in range(documents.MAX_DEPTH + 2):
        inner["k"] = {}
        inner = inner["k"]  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="levels deep"):
        documents.check_data(nested, file)
