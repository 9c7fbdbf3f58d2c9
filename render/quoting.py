"""Quoting for every value that travels from config into a Dockerfile.

A Dockerfile is line-based: a newline inside a value would start a new instruction, and ``ENV``,
``LABEL``, ``COPY`` and ``WORKDIR`` expand ``$VAR`` themselves. Each function here either returns
the value in a form that reads back literally in its position, or raises :class:`ConfigError`
(values from the bento's config) / :class:`TemplateError` (variables a template set) naming the
field. The Jinja environment exposes them as filters (see :mod:`render.environment`); the
templates apply one to every value from config.

Positions:

- ``docker_string``: the value of ``ENV k=v`` / ``LABEL k=v`` (and ``ARG`` defaults): a double
  quoted Dockerfile word in which ``\\``, ``"`` and ``$`` are escaped.
- ``shell_word``: one argument of a ``RUN`` shell command (``RUN`` does no Dockerfile expansion,
  so POSIX single quoting is exact).
- ``package``: a package name for apt/apk/yum/pip: a shell word that must not look like an option.
- ``json_string``: one element of an exec-form ``["...", "..."]`` list.
- ``plain_path``: a path written bare (``WORKDIR``, ``COPY`` destinations, ``ENV`` values that
  other instructions expand): only characters that need no quoting anywhere.
- ``image_ref``: what follows ``FROM``.
- ``env_name``: the key of ``ENV``.
"""

from __future__ import annotations

import json
import re
import shlex

from pipeline.errors import ConfigError, PipelineError, TemplateError

# C0 controls but tab, DEL, C1 controls (U+0085 NEL among them) and the Unicode line and
# paragraph separators: a tool that splits lines the Unicode way would start a new line there
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9._/+@:=-]+$")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_PACKAGE = re.compile(r"^[A-Za-z0-9_.][^\s]*$")
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_UID_GID = re.compile(r"^[0-9]{1,10}:[0-9]{1,10}$")


def _error(field: str, message: str) -> PipelineError:
    """Template variables (``bento__*``) are the template's fault, the rest the config's."""
    if field.startswith("bento__"):
        return TemplateError(message, field=field)
    return ConfigError(message, field=field)


def control_character(value: str) -> str | None:
    """``"a newline"`` or ``"control character '\\x07'"`` for the first character of ``value``
    that cannot be written into a Dockerfile line, ``None`` when there is none."""
    bad = _CONTROL.search(value)
    if bad is None:
        return None
    char = bad.group()
    if char in "\n\r":
        return "a newline"
    if char in "\x85\u2028\u2029":
        return f"a line separator (U+{ord(char):04X})"
    return f"control character {char!r}"


def _no_control(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _error(field, f"expected a string, got {type(value).__name__} {value!r}")
    what = control_character(value)
    if what:
        raise _error(
            field,
            f"value {value!r} contains {what}, which cannot be written into a Dockerfile "
            "(it would start a new instruction)",
        )
    return value


def docker_string(value: object, field: str = "value") -> str:
    """``"..."`` that ``ENV``/``LABEL``/``ARG`` read back as exactly ``value``."""
    text = _no_control(value, field)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def shell_word(value: object, field: str = "value") -> str:
    """One POSIX shell word for a ``RUN`` command."""
    return shlex.quote(_no_control(value, field))


def _matching(value: object, field: str, pattern: re.Pattern[str], message: str) -> str:
    """``value`` if it is one line and matches ``pattern``, else ``message`` (``{text}`` is the
    value) as the error for ``field``."""
    text = _no_control(value, field)
    if not pattern.match(text):
        raise _error(field, message.format(text=text))
    return text


def package(value: object, field: str = "value") -> str:
    """A package spec as one shell word; refuses anything that would read as an option."""
    text = _matching(
        value,
        field,
        _PACKAGE,
        "{text!r} is not a package name (it must not be empty, start with '-' or contain spaces)",
    )
    return shlex.quote(text)


def json_string(value: object, field: str = "value") -> str:
    """A JSON string for exec-form ``ENTRYPOINT``/``CMD`` lists."""
    return json.dumps(_no_control(value, field), ensure_ascii=False)


def plain_path(value: object, field: str = "value") -> str:
    """A path that needs no quoting in any Dockerfile position; anything else is refused."""
    return _matching(
        value,
        field,
        _PLAIN_PATH,
        "path {text!r} may only contain letters, digits and . _ / + @ : = - (no spaces, quotes, "
        "'$' or backslashes)",
    )


def image_ref(value: object, field: str = "value") -> str:
    return _matching(
        value, field, _IMAGE_REF, "{text!r} is not an image reference (e.g. python:3.11-slim)"
    )


def env_name(value: object, field: str = "value") -> str:
    return _matching(
        value,
        field,
        _ENV_NAME,
        "{text!r} is not an environment variable name (letters, digits and '_', not starting "
        "with a digit)",
    )


def label_key(value: object, field: str = "value") -> str:
    return _matching(
        value,
        field,
        _LABEL_KEY,
        "{text!r} is not a label key (letters, digits and . _ / -, e.g. 'owner')",
    )


def user_name(value: object, field: str = "bento__user") -> str:
    return _matching(
        value,
        field,
        _USER_NAME,
        "{text!r} is not a user name (lowercase letters, digits, '_' and '-', at most 32)",
    )


def uid_gid(value: object, field: str = "bento__uid_gid") -> str:
    value = str(value) if isinstance(value, int) else value
    return _matching(
        value, field, _UID_GID, "{text!r} is not UID:GID (two numbers, e.g. 1034:1034)"
    )


def shell_command(value: object, field: str = "value") -> str:
    """A whole shell command from config (``image.commands``): passed as written, but it must
    stay on one line."""
    return _no_control(value, field)


FILTERS = {
    "docker_string": docker_string,
    "shell_word": shell_word,
    "package": package,
    "json_string": json_string,
    "plain_path": plain_path,
    "image_ref": image_ref,
    "env_name": env_name,
    "label_key": label_key,
    "user_name": user_name,
    "uid_gid": uid_gid,
    "shell_command": shell_command,
}
