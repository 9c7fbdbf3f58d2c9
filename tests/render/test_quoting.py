"""Quoting filters: every value either reads back literally in its position or is refused."""

from __future__ import annotations

import shlex

import pytest

from pipeline.errors import ConfigError, TemplateError
from render import quoting

NASTY = ['a"b', "a$b", "a\\b", "${HOME}", "it's", "a b", "back\\", '\\"$']


@pytest.mark.parametrize("value", NASTY)
def test_docker_string_escapes_quote_dollar_backslash(value: str) -> None:
    quoted = quoting.docker_string(value, "docker.env.X")
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    # Undo the Dockerfile escapes: the result is the original value.
    out, i = [], 0
    while i < len(inner):
        if inner[i] == "\\":
            assert inner[i + 1] in '\\"$', quoted
            out.append(inner[i + 1])
            i += 2
        else:
            assert inner[i] not in '"$', quoted  # no unescaped quote or expansion
            out.append(inner[i])
            i += 1
    assert "".join(out) == value


@pytest.mark.parametrize("value", ["a\nRUN rm -rf /", "a\rb", "a\x00b", "\x1b[31m"])
def test_control_characters_are_refused_with_the_field(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        quoting.docker_string(value, "docker.env.EVIL")
    assert info.value.field == "docker.env.EVIL"
    assert "cannot be written into a Dockerfile" in str(info.value)


@pytest.mark.parametrize("value", NASTY)
def test_shell_word_round_trips(value: str) -> None:
    assert shlex.split(quoting.shell_word(value)) == [value]


def test_shell_word_refuses_newline() -> None:
    with pytest.raises(ConfigError, match="newline"):
        quoting.shell_word("a\nb", "python.index_url")


@pytest.mark.parametrize("value", ["-o", "--allow-unauthenticated", "", "a b", "curl\tx"])
def test_package_refuses_options_and_spaces(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        quoting.package(value, "docker.system_packages[0]")
    assert info.value.field == "docker.system_packages[0]"


@pytest.mark.parametrize("value", ["curl", "libssl-dev", "numpy==1.26.4", "torch>=2", "g++"])
def test_package_accepts_real_specs(value: str) -> None:
    assert shlex.split(quoting.package(value)) == [value]


def test_json_string() -> None:
    assert quoting.json_string('a"b\\c') == '"a\\"b\\\\c"'


@pytest.mark.parametrize("value", ["/home/x y", "/a$b", '/a"b', "/a\\b", "/a\nb", ""])
def test_plain_path_refuses_anything_needing_quotes(value: str) -> None:
    with pytest.raises(TemplateError) as info:
        quoting.plain_path(value, "bento__path")
    assert info.value.field == "bento__path"


def test_template_variables_raise_template_errors_config_values_config_errors() -> None:
    with pytest.raises(TemplateError):
        quoting.user_name("Root User", "bento__user")
    with pytest.raises(ConfigError):
        quoting.image_ref("python:3.11 AS x", "docker.base_image")


@pytest.mark.parametrize("value", ["1034:1034", "0:0"])
def test_uid_gid_ok(value: str) -> None:
    assert quoting.uid_gid(value) == value


@pytest.mark.parametrize("value", ["1034", "a:b", "1:2:3", "1034:1034\n"])
def test_uid_gid_bad(value: str) -> None:
    with pytest.raises(TemplateError, match="bento__uid_gid|newline"):
        quoting.uid_gid(value)


@pytest.mark.parametrize("value", ["PATH", "_X", "a1"])
def test_env_name_ok(value: str) -> None:
    assert quoting.env_name(value) == value


@pytest.mark.parametrize("value", ["1X", "A-B", "A B", "A=B", "A\nB"])
def test_env_name_bad(value: str) -> None:
    with pytest.raises(ConfigError):
        quoting.env_name(value, f"docker.env.{value}")


def test_non_strings_are_refused() -> None:
    with pytest.raises(ConfigError, match="expected a string, got list"):
        quoting.docker_string(["a"], "labels.x")
