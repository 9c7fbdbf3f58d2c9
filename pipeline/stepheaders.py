"""How engines name a Dockerfile step in their output: the one grammar (pure).

- BuildKit (docker, buildx, buildctl) plain progress: every line is ``#N TEXT``, ``N`` a vertex;
  a vertex's first line names it, a Dockerfile step as ``[stage 3/4] RUN ...`` (``[3/4]`` in a
  one-stage file) and others as ``[internal] load ...``, ``exporting to image``, ...; a failed
  vertex prints ``#N ERROR``, and the summary names it again as `` > [stage 3/4] RUN ...:``.
- docker's classic builder: ``Step 5/9 : RUN ...`` (counting every instruction of the file).
- buildah and podman: ``STEP 5/9: RUN ...`` (counting the instructions of one build stage;
  podman 4 puts the stage in front in a multi-stage build: ``[2/3] STEP 1/2: FROM ...``); a
  failure names the step as ``building at STEP "RUN ..."``.
"""

from __future__ import annotations

import re

from attrs import frozen

#: a BuildKit plain-progress line: ``#12 TEXT``
PROGRESS_LINE = re.compile(r"^#(?P<vertex>\d+) (?P<text>\S.*)$")
#: a BuildKit vertex that failed: ``#12 ERROR ...``
PROGRESS_ERROR = re.compile(r"^#(?P<vertex>\d+) ERROR")
#: BuildKit's summary of the failed step: `` > [stage 3/4] RUN ...:``
FAILED_SUMMARY = re.compile(r"^\s*> (?P<step>\[[^\]]*\] .*):$")
#: a bracketed vertex name: ``[stage 3/4] RUN ...``, ``[internal] load ...``
BRACKETED = re.compile(r"^\[[^\]]*\] ")
#: BuildKit's number of a Dockerfile step (optionally behind the ``#12`` of plain progress)
BUILDKIT_STEP = re.compile(r"^(?:#\d+ )?\[(?:(?P<stage>[^\]\s]+) )?(?P<n>\d+)/(?P<m>\d+)\] ")
#: the classic builder's ``Step 5/9 :`` and buildah/podman's ``STEP 5/9:`` (podman 4: ``[1/2] ``
#: in front)
NUMBERED_STEP = re.compile(r"^(?:\[\d+/\d+\] )?(?:STEP|Step) (?P<n>\d+)/(?P<m>\d+) ?: ?")
#: buildah/podman's failure: ``error building at STEP "RUN ..."``
NUMBERED_ERROR = re.compile(r'building at STEP "(?P<step>.*)"')


@frozen
class NumberedStep:
    """A ``STEP n/m: TEXT`` / ``Step n/m : TEXT`` header: its numbers and the instruction."""

    n: int
    m: int
    text: str

    @property
    def keyword(self) -> str:
        """The instruction's keyword, upper case (``FROM``, ``RUN``, ...)."""
        return self.text.split(None, 1)[0].upper() if self.text.strip() else ""


def numbered_step(line: str) -> NumberedStep | None:
    """``line`` (stripped) as a classic-builder or buildah/podman step header, else None."""
    text = line.strip()
    match = NUMBERED_STEP.match(text)
    if match is None:
        return None
    return NumberedStep(int(match["n"]), int(match["m"]), text[match.end() :])


def step_line(line: str) -> str | None:
    """The step ``line`` starts, as progress shows it: ``[2/2] RUN x`` for BuildKit's
    ``#6 [2/2] RUN x`` (any bracketed vertex), the line itself for a numbered header; None for
    any other line (a step's log, a vertex's later lines)."""
    text = line.strip()
    if (progress := PROGRESS_LINE.match(text)) and BRACKETED.match(progress["text"]):
        return str(progress["text"])
    return text if NUMBERED_STEP.match(text) and text.split(":", 1)[1].strip() else None


def without_header(step: str) -> str:
    """The instruction of a step as an engine names it: its ``[...]`` or ``STEP n/m:``
    header dropped."""
    text = step.strip()
    if match := NUMBERED_STEP.match(text):
        return text[match.end() :].strip()
    if match := PROGRESS_LINE.match(text):
        text = match["text"]
    return BRACKETED.sub("", text, count=1).strip()


__all__ = [
    "BRACKETED",
    "BUILDKIT_STEP",
    "FAILED_SUMMARY",
    "NUMBERED_ERROR",
    "NUMBERED_STEP",
    "PROGRESS_ERROR",
    "PROGRESS_LINE",
    "NumberedStep",
    "numbered_step",
    "step_line",
    "without_header",
]
