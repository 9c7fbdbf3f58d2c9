"""Reading requirement lines for bentoml itself (pure): is it named, pinned, or a URL."""

from __future__ import annotations

import re
from collections.abc import Iterable

# `bentoml`, `bentoml[io]`, `BentoML >= 1.3` ... at the start of a requirement line
_BENTOML_REQ = re.compile(r"^\s*bentoml\s*(\[[^\]]*\])?\s*(?P<rest>.*)$", re.IGNORECASE)


def is_requirement(line: str) -> bool:
    """A requirement line: not blank, not a comment, not an option (``-r``, ``--index-url``)."""
    text = line.strip()
    return bool(text) and not text.startswith(("#", "-"))


def names_bentoml_by_url(lines: Iterable[str]) -> bool:
    """Whether a requirement installs bentoml from a URL or path (``bentoml @ git+...``), which a
    version pin would contradict."""
    for line in lines:
        if not is_requirement(line):
            continue
        match = _BENTOML_REQ.match(line)
        if match and match.group("rest").lstrip().startswith("@"):
            return True
    return False


def pinned_bentoml_version(lines: Iterable[str]) -> str | None:
    """The version of the last ``bentoml==V`` (or ``bentoml[extras]==V``) requirement, if any."""
    version = None
    for line in lines:
        match = _BENTOML_REQ.match(line) if is_requirement(line) else None
        rest = match.group("rest") if match else ""
        if rest.startswith("=="):
            version = rest[2:].split(";")[0].split("#")[0].strip() or None
    return version


def mentions_bentoml(lines: Iterable[str]) -> bool:
    return any(is_requirement(line) and _BENTOML_REQ.match(line) for line in lines)


__all__ = ["is_requirement", "mentions_bentoml", "names_bentoml_by_url", "pinned_bentoml_version"]
