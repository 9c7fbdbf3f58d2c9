"""Property-based hostile input (hypothesis): whatever the document or the arguments, the answer
is data, or a PipelineError (exit 2, one message, no traceback), within a deadline.

In CI each property runs ``PIPELINE_FUZZ_EXAMPLES`` cases (default 100), derandomized so a run
is repeatable. The longer run, with fresh random cases, is documented in docs/hardening.md:

    PIPELINE_FUZZ_EXAMPLES=2500 PIPELINE_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.bento import build_bento
from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.loader import load_bento_yaml, load_bentofile
from pipeline.rendering import RenderOptions, render_dockerfile

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("PIPELINE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,  # ms per case: a hang or runaway work fails the property
    derandomize=os.environ.get("PIPELINE_FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# what hostile text is made of: line breaks of every kind, quotes, shell and YAML syntax
NASTY = [
    "\n", "\r", "\x00", "\x85", "\u2028", "\u2029", "\t", '"', "'", "`", "$", "\\", "#", "{{",
    "}}", "{%", "&a", "*a", "!!int", "[", "]", "{", "}", ":", "- ", "~", "..", "/", "\ud800",
    "\U0001f600", "é", "=", ",", "RUN touch /pwned", "--index-url http://x",
]  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=12),
    st.lists(st.sampled_from(NASTY), max_size=4).map("".join),
    st.sampled_from(["3.11", "debian", "alpine", "ubi8", "amazonlinux", "12.1.1", "service:svc"]),
)
SCALAR = st.one_of(
    TEXT, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(), st.dates()
)
KEYS = [
    "service", "name", "version", "spec", "labels", "include", "exclude", "docker", "python",
    "conda", "envs", "args", "models", "description", "image", "distro", "python_version",
    "cuda_version", "env", "system_packages", "setup_script", "base_image",
    "dockerfile_template", "packages", "requirements_txt", "lock_packages", "index_url",
    "no_index", "trusted_host", "find_links", "extra_index_url", "pip_args", "wheels",
    "environment_yml", "channels", "dependencies", "pip", "value", "stage", "commands",
    "python_requirements", "post_commands", "creation_time", "bentoml_version", "apis",
]  # fmt: skip
KEY = st.one_of(st.sampled_from(KEYS), TEXT, st.integers(), st.booleans(), st.none())
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(KEY, inner, max_size=5)),
    max_leaves=25,
)
DOCUMENT = st.dictionaries(st.sampled_from(KEYS), VALUE, max_size=8)
# raw YAML lines, for what safe_dump never writes: tags, anchors, flow syntax, bad indentation
LINE = st.one_of(
    st.sampled_from([
        "service: service:svc", "docker:", "  env:", "    A: !!int c", "  python_version: !!float",
        "labels: &l {a: *l}", "include: [[[[", "version: 2001-02-30", "x: !!timestamp never",
        "  - &a [*a, *a]", "? [a, b]", ": c", "envs:", "  - name: A", "    stage: build",
        "python: {packages: ['six\\u2028x']}", "\tdocker: {}", "spec: 2", "image:",
        "  commands: ['echo \\n RUN x']", "!!python/object:os.system {}", "<<: *l",
        "docker: {distro: alpine, cuda_version: '12.1.1'}", "%YAML 1.1", "---", "...",
    ]),
    TEXT,
)  # fmt: skip
RAW = st.lists(LINE, min_size=1, max_size=10).map("\n".join)

# valid documents with one to three fields replaced: most cases then get past the first key and
# into validation, rendering and the argv builders
VALID_BENTOFILE: dict[str, Any] = {
    "service": "service:svc",
    "labels": {"team": "ml"},
    "include": ["*.py"],
    "docker": {"distro": "debian", "python_version": "3.11", "env": {"A": "1"},
               "system_packages": ["curl"]},
    "python": {"packages": ["six==1.16.0"], "lock_packages": False, "index_url": "https://x/simple"},
    "envs": [{"name": "E", "value": "1"}],
}  # fmt: skip
VALID_BENTO_YAML: dict[str, Any] = {
    **{k: v for k, v in VALID_BENTOFILE.items() if k != "include"},
    "name": "fz",
    "version": "v1",
    "bentoml_version": "1.2.20",
    "creation_time": "2024-01-01T00:00:00+00:00",
    "models": [],
}
FIELD_PATHS = [
    ("service",), ("labels", "team"), ("labels",), ("include", 0), ("docker", "distro"),
    ("docker", "python_version"), ("docker", "env", "A"), ("docker", "env"),
    ("docker", "system_packages", 0), ("docker", "cuda_version"), ("docker", "base_image"),
    ("docker", "setup_script"), ("python", "packages", 0), ("python", "lock_packages"),
    ("python", "index_url"), ("python", "pip_args"), ("python", "trusted_host"),
    ("envs", 0, "name"), ("envs", 0, "value"), ("envs", 0, "stage"), ("name",), ("version",),
]  # fmt: skip


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[str]:
    def apply(changes: list[tuple[tuple[str | int, ...], Any]]) -> str:
        doc = yaml.safe_load(yaml.safe_dump(base))  # a deep copy
        for path, value in changes:
            target = doc
            for part in path[:-1]:
                if isinstance(target, dict) and part not in target:
                    target[part] = {}
                target = target[part] if isinstance(target, dict | list) else {}
            if isinstance(target, dict):
                target[path[-1]] = value
            elif isinstance(target, list) and isinstance(path[-1], int) and target:
                target[min(path[-1], len(target) - 1)] = value
        return yaml.safe_dump(doc, allow_unicode=True)

    change = st.tuples(st.sampled_from(FIELD_PATHS), VALUE)
    return st.lists(change, min_size=1, max_size=3).map(apply)


def _outcome(call: Any) -> str:
    try:
        call()
    except PipelineError as exc:
        assert exc.exit_code in (1, 2)
        assert str(exc), "an error says something"
        event(f"error: {type(exc).__name__}")  # --hypothesis-show-statistics counts them
        return "error"
    event("ok")
    return "ok"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _documents(valid: dict[str, Any]) -> st.SearchStrategy[str]:
    dumped = DOCUMENT.map(lambda d: yaml.safe_dump(d, allow_unicode=True))
    return st.one_of(_mutated(valid), dumped, RAW)


@FUZZ
@given(document=_documents(VALID_BENTOFILE))
def test_any_bentofile_loads_or_is_a_clear_error(document: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "service.py").write_text("svc = 1\n")
    file = _write(project / "bentofile.yaml", document)
    _outcome(lambda: load_bentofile(file))


@FUZZ
@given(document=_documents(VALID_BENTO_YAML))
def test_any_bento_yaml_loads_and_renders_or_is_a_clear_error(
    document: str, tmp_path: Path
) -> None:
    bento_dir = tmp_path / "bento"
    (bento_dir / "src").mkdir(parents=True, exist_ok=True)
    file = _write(bento_dir / "bento.yaml", document)

    def load_and_render() -> None:
        render_dockerfile(load_bento_yaml(file), RenderOptions())

    _outcome(load_and_render)


@pytest.fixture(scope="module")
def hello_bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    return build_bento(ROOT / "examples" / "hello", store=store).path


FLAGS = [
    "-t", "--build-arg", "--label", "--secret", "--platform", "--opt", "--network", "--target",
    "--cache-from", "--cache-to", "--add-host", "--ca-cert", "--template", "--progress",
    "--iidfile", "--metadata-file", "--image-tag", "--pull", "--no-cache", "--push", "--load",
    "--json", "-o", "--enable-features", "--ssh", "--quiet", "--run-as-root",
]  # fmt: skip
ARG = st.one_of(st.sampled_from(FLAGS), TEXT, st.sampled_from(["a=b", "id=x,env=HOME", "~nope/x"]))


@FUZZ
@given(args=st.lists(ARG, max_size=6))
def test_any_build_arguments_end_in_a_plan_or_a_usage_error(
    args: list[str], hello_bento: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["build", str(hello_bento), "--dry-run", "--backend", "docker", *args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    assert code in (0, 2), (code, err.getvalue())
    event(f"exit {code}")
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert "error" in err.getvalue()
    assert not (tmp_path / "store").exists(), "a dry run of a bento dir stores nothing"
