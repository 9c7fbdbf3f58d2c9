"""Reading a Dockerfile's instructions: the one parser every part of the tool uses.

:func:`parse_dockerfile` splits text into :class:`Instruction` values the way BuildKit's parser
does: blank lines and comments are skipped, ``\\`` continuations are joined (comment lines and
blank lines *inside* a continuation are dropped, they do not end the instruction), and an
instruction still open at the end of the file is kept. The rendered instructions' origins
(:func:`pipeline.origins.instruction_origins`), the failing-step lookup
(:func:`pipeline.origins.find_step`) and the Dagger executor's secret-mount check
(:func:`pipeline.dagger.spec.secret_mounts`) all read these same instructions.
"""

from __future__ import annotations

from attrs import frozen

from render.environment import dockerfile_lines

# instructions that BuildKit shows as numbered steps ([stage n/m]); the others are metadata
_BUILDKIT_STEPS = frozenset({"FROM", "RUN", "COPY", "ADD", "WORKDIR"})


@frozen
class Origin:
    """What produced a Dockerfile instruction: the Jinja ``block`` (``None`` outside every block),
    the graph ``stage`` that block belongs to, the ``source`` (``"template FILE:LINE"`` for a
    user template, ``"built-in stage NAME"`` otherwise) and the bentofile ``field`` behind it."""

    block: str | None
    stage: str | None
    source: str
    field: str | None = None

    def __str__(self) -> str:
        where = f"block {self.block} in {self.source}" if self.block else self.source
        return f"{where} ({self.field})" if self.field else where


@frozen
class Instruction:
    """One Dockerfile instruction. ``text`` keeps its continuation lines (joined with newlines;
    comment and blank lines inside it dropped), ``line`` is its first line (1-based).
    ``build_stage`` is the ``AS`` name of the ``FROM`` it belongs to (``stage-N`` when unnamed,
    ``None`` for an ``ARG`` before the first ``FROM``). ``number`` counts every instruction in the
    file, ``index`` every one in its build stage (``FROM`` is 1) and ``step`` those BuildKit
    numbers (FROM/RUN/COPY/ADD/WORKDIR; else 0)."""

    text: str
    line: int
    build_stage: str | None
    number: int
    index: int
    step: int
    origin: Origin | None = None

    @property
    def keyword(self) -> str:
        return self.text.split(None, 1)[0].upper()

    @property
    def logical(self) -> str:
        """The instruction on one line, as BuildKit reads it: each continuation's ``\\`` (and
        the blanks after it) removed and the lines concatenated as they are, so
        ``RUN a && \\`` + ``    b`` is ``RUN a &&     b`` (what a BuildKit step header shows)."""
        parts = []
        for line in self.text.split("\n"):
            kept = line.rstrip()
            parts.append(kept[:-1] if kept.endswith("\\") else line)
        return "".join(parts).strip()


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of ``text`` (comments and blank lines skipped, ``\\`` continuations
    joined). Heredocs are not understood: their lines count as instructions."""
    found: list[Instruction] = []
    pending: list[str] = []
    first = 0
    stage: str | None = None
    stages = 0
    index = step = 0

    def close() -> None:
        nonlocal stage, stages, index, step
        body = "\n".join(pending)
        pending.clear()
        keyword = body.split(None, 1)[0].upper()
        if keyword == "FROM":
            words = body.split()
            named = [w for i, w in enumerate(words[:-1]) if i and w.upper() == "AS"]
            stage = words[-1] if named else f"stage-{stages}"
            stages += 1
            index = step = 0
        if stage is not None:
            index += 1
            step += keyword in _BUILDKIT_STEPS
        found.append(
            Instruction(
                text=body,
                line=first,
                build_stage=stage,
                number=len(found) + 1,
                index=index if stage is not None else 0,
                step=step if stage is not None and keyword in _BUILDKIT_STEPS else 0,
            )
        )

    for number, line in enumerate(dockerfile_lines(text), start=1):
        stripped = line.strip()
        # outside an instruction these are nothing; inside a continuation BuildKit drops them
        # too (a blank one with a deprecation warning) and the instruction goes on
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            first = number
        pending.append(line)
        if not stripped.endswith("\\"):
            close()
    if pending:  # the file ends inside a continuation: BuildKit still runs the instruction
        close()
    return found


__all__ = ["Instruction", "Origin", "parse_dockerfile"]
