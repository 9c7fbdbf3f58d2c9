"""Config values cannot add Dockerfile instructions or requirement lines (issue: hardening).

A value with a character that starts a new line for some reader (newline, carriage return, NUL
and other controls, U+0085, U+2028, U+2029) is refused, naming the field; every other value
(quotes, ``$``, backticks, backslashes, ``#``) renders so that a real build keeps it byte for
byte and the instruction count stays the benign one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline.bento import resolve_bento
from pipeline.dockerfile import parse_dockerfile
from pipeline.errors import ConfigError
from pipeline.loader import load_bentofile
from pipeline.rendering import RenderOptions, render_dockerfile
from render.environment import dockerfile_lines, tidy
from tests.conftest import require_engine

ROOT = Path(__file__).resolve().parents[1]
BAD = {
    "newline": "\n",
    "carriage-return": "\r",
    "nul": "\x00",
    "nel": "\x85",
    "line-separator": "\u2028",
    "paragraph-separator": "\u2029",
    "escape": "\x1b",
}
# (yaml path, where the value goes)
FIELDS = {
    "labels.a": lambda v: {"labels": {"a": v}},
    "docker.env.A": lambda v: {"docker": {"env": {"A": v}}},
    "docker.system_packages[0]": lambda v: {"docker": {"system_packages": [v]}},
    "docker.base_image": lambda v: {"docker": {"base_image": v}},
    "python.packages[0]": lambda v: {"python": {"packages": [v]}},
    "python.index_url": lambda v: {"python": {"index_url": v}},
    "python.extra_index_url[0]": lambda v: {"python": {"extra_index_url": [v]}},
    "python.trusted_host[0]": lambda v: {"python": {"trusted_host": [v]}},
    "python.find_links[0]": lambda v: {"python": {"find_links": [v]}},
    "python.pip_args": lambda v: {"python": {"pip_args": v}},
    "conda.channels[0]": lambda v: {"conda": {"channels": [v]}},
    "envs[0].value": lambda v: {"envs": [{"name": "E", "value": v}]},
}


def _project(root: Path, extra: dict[str, object]) -> Path:
    root.mkdir(parents=True)
    (root / "service.py").write_text("svc = 1\n")
    (root / "bentofile.yaml").write_text(
        yaml.safe_dump({"service": "service:svc", **extra}, allow_unicode=False)
    )
    return root / "bentofile.yaml"


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("char", list(BAD))
def test_a_line_breaking_character_is_refused_naming_the_field(
    field: str, char: str, tmp_path: Path
) -> None:
    file = _project(tmp_path / "p", FIELDS[field](f"ok{BAD[char]}RUN touch /pwned"))
    with pytest.raises(ConfigError) as raised:
        load_bentofile(file)
    message = str(raised.value)
    assert str(file) in message and field in message, message


def test_only_newlines_split_a_rendered_dockerfile() -> None:
    text = 'LABEL a="x\u2028y"\nENV B="p\x85q"\r\nRUN echo\x0cok\n'
    assert dockerfile_lines(text) == ['LABEL a="x\u2028y"', 'ENV B="p\x85q"', "RUN echo\x0cok"]
    assert tidy(text).count("\n") == 3


TRICKY = {
    "QUOTES": "say \"hi\" and 'bye'",
    "DOLLAR": "$HOME ${PATH} $(id) `id`",
    "BACKSLASH": "C:\\path\\ends\\",
    "HASH": "# not a comment",
    "SPACES": "  leading and trailing  ",
    "UNICODE": "caf\u00e9 \u2603 \U0001f600",
    "EQUALS": "a=b c=d",
}


def _tricky_project(root: Path) -> Path:
    extra = {"labels": {k.lower(): v for k, v in TRICKY.items()}, "docker": {"env": TRICKY}}
    return _project(root, extra).parent


def test_tricky_values_keep_the_benign_instruction_count(tmp_path: Path) -> None:
    tricky = resolve_bento(_tricky_project(tmp_path / "t"), store=tmp_path / "s")
    plain_root = _project(
        tmp_path / "b",
        {"labels": {k.lower(): "x" for k in TRICKY}, "docker": {"env": dict.fromkeys(TRICKY, "x")}},
    ).parent
    plain = resolve_bento(plain_root, store=tmp_path / "s")
    options = RenderOptions()
    count = len(parse_dockerfile(render_dockerfile(tricky, options)))
    assert count == len(parse_dockerfile(render_dockerfile(plain, options)))


@pytest.mark.slow
@pytest.mark.docker
def test_tricky_values_arrive_byte_for_byte_in_a_real_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_engine("docker")
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    project = _tricky_project(tmp_path / "t")
    shutil.copy(ROOT / "examples" / "hello" / "service.py", project / "service.py")
    tag = "pipeline-test-tricky:1"
    try:
        pipeline.build(project, backend="docker", tags=[tag])
        env = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, "-c",
             "import json, os; print(json.dumps(dict(os.environ)))"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        inside = json.loads(env)
        for key, value in TRICKY.items():
            assert inside[key] == value, key
        labels = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        for key, value in TRICKY.items():
            assert labels[key.lower()] == value, key
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
