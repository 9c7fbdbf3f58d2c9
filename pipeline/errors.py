"""One exception family for everything a user can get wrong or an engine can refuse.

Every error carries what the user needs to fix it: the file, the field path inside it, the
offending value, what would be allowed, and for engine failures the tail of the engine's output.
The CLI prints ``str(error)`` and exits with :attr:`PipelineError.exit_code`; tracebacks only with
``--debug``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from difflib import get_close_matches
from pathlib import Path


class PipelineError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        self.line = line
        self.hint = hint

    @property
    def location(self) -> str:
        """``file:line: field`` with the parts that are known."""
        where = self.file or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return where

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text = f"{text}\n  hint: {self.hint}"
        return text


class ConfigError(PipelineError):
    """A bentofile/bento.yaml (or CLI option) value is malformed or not allowed."""


class BentoNotFoundError(PipelineError):
    """A bento directory, project or store tag does not exist."""


class TemplateError(PipelineError):
    """A Dockerfile template is missing, has a bad extension, a syntax error or fails lint."""


class GraphError(PipelineError):
    """The stage graph has a cycle, an unknown stage or a conflicting edit."""


class BackendError(PipelineError):
    """A backend is unknown, absent, unhealthy or cannot do what was asked."""


class BuildError(PipelineError):
    """An engine failed while building; carries the failing step and the output tail."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        step: str | None = None,
        output_tail: Sequence[str] = (),
        origin: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.backend = backend
        self.step = step
        self.output_tail = tuple(output_tail)
        self.origin = origin

    def with_origin(self, origin: str | None) -> BuildError:
        """This error (same class, same fields) saying what produced the failing step: a new
        error, this one is left as it was raised."""
        twin = type(self).__new__(type(self), *self.args)  # no __init__: its arguments vary
        twin.__dict__.update(vars(self))
        twin.origin = origin
        return twin

    def __str__(self) -> str:
        lines = [f"{self.backend}: {self.message}" if self.backend else self.message]
        if self.step:
            lines.append(f"  failing step: {self.step}")
        if self.origin:
            lines.append(f"  produced by: {self.origin}")
        if self.output_tail:
            lines.append("  last engine output:")
            lines.extend(f"    {line}" for line in self.output_tail)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class RegistryAuthError(BuildError):
    """A registry refused a push's authentication (wrong or missing credentials); ``registry``
    names it (``host[:port]``)."""

    def __init__(
        self,
        message: str,
        *,
        registry: str,
        backend: str | None = None,
        step: str | None = None,
        output_tail: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, backend=backend, step=step, output_tail=output_tail, hint=hint)
        self.registry = registry


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``did you mean 'x'?`` suffix (with a leading space), or ``""`` when nothing is close."""
    matches = get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def allowed(choices: Iterable[str]) -> str:
    """Render allowed values as ``'a', 'b' or 'c'``."""
    items = [repr(c) for c in choices]
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


def describe_value(value: object) -> str:
    """YAML-flavoured name of a value's type, for messages: ``a list``, ``a mapping``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, datetime):
        return "a timestamp"
    return f"a {type(value).__name__}"


class PipelineWarning(UserWarning):
    """Something the user set is ignored or dropped (e.g. options overridden by ``base_image``).

    Raised through :func:`warnings.warn`; the CLI prints each as ``warning: <message>`` on stderr
    (and ``--strict`` commands may turn them into errors).
    """
