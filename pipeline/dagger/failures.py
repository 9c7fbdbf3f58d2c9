"""Turning Dagger SDK exceptions into the tool's errors, with secret values scrubbed.

A failing ``RUN`` comes back as :class:`dagger.ExecError` (command, exit code, stdout, stderr);
anything else the engine refuses as :class:`dagger.QueryError`. Users get the failing step and
the tail of its output, never the GraphQL query (which carries ``setSecret`` plaintext inline).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pipeline.errors import BackendError, BuildError
from pipeline.redaction import Redactor

if TYPE_CHECKING:
    import dagger

BACKEND = "dagger"
#: How many output lines a BuildError keeps.
TAIL_LINES = 20


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret masked (:class:`pipeline.redaction.Redactor`)."""
    return Redactor(secrets)(text)


def tail(text: str, secrets: Iterable[str], lines: int = TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of ``text``, scrubbed."""
    clean = scrub(text, secrets)
    return [line for line in clean.splitlines() if line.strip()][-lines:]


def translate(exc: dagger.DaggerError, secrets: Iterable[str] = ()) -> BuildError | BackendError:
    """The user-facing error for an SDK exception raised while building."""
    import dagger

    values = list(secrets)
    if isinstance(exc, dagger.ExecError):
        step = scrub(" ".join(exc.command), values) if exc.command else None
        output = "\n".join(part for part in (exc.stdout, exc.stderr) if part)
        return BuildError(
            f"build step failed with exit code {exc.exit_code}",
            backend=BACKEND,
            step=step,
            output_tail=tail(output, values),
        )
    if isinstance(exc, dagger.QueryError):
        message = scrub(exc.error.message, values)
        lines = [line for line in message.splitlines() if line.strip()]
        path = ".".join(str(p) for p in exc.error.path or ()) or None
        return BuildError(
            lines[0] if lines else "the Dagger engine refused the build",
            backend=BACKEND,
            step=path,
            output_tail=lines[1:][-TAIL_LINES:],
        )
    if isinstance(exc, dagger.InvalidQueryError):
        return BackendError(
            "the Dagger engine's API does not match dagger-io "
            f"({scrub(str(exc), values).splitlines()[0]}); use an engine of the same version",
        )
    return BackendError(f"dagger: {scrub(str(exc), values).strip() or type(exc).__name__}")
