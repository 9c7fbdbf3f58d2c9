"""What a secret looks like in output, and hiding it: one rule for every place that looks.

:func:`secret_forms` says which byte strings count as a secret showing: the value as given, the
value stripped of surrounding whitespace, and (in output) each line of a multi-line value
(stripped), each only when it is at least :data:`MIN_LENGTH` bytes long: shorter ones would
match by chance (and masking them would hide half of a log). :class:`Redactor` replaces every
form with :data:`MASK` in text; it redacts engine output for the external engines
(:mod:`pipeline.backends.process`) and for Dagger (:mod:`pipeline.dagger.failures`), and
``--check-secrets`` (:func:`pipeline.backends.secretscan.needles`) looks for the same forms
but single lines in a built image.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Forms shorter than this many bytes are neither masked nor looked for.
MIN_LENGTH = 4
#: What a secret's form becomes in redacted text.
MASK = "***"


def secret_forms(raw: bytes, *, lines: bool = True) -> tuple[bytes, ...]:
    """The forms of the secret ``raw`` that count as it showing, longest first. ``lines``:
    each line of a multi-line value too (output is masked line by line, so a line is what a
    log shows); ``--check-secrets`` looks for the whole value only (``lines=False``), since a
    common line of a key file (``[default]``, PEM armour) is in many clean images."""
    stripped = raw.strip()
    candidates = {raw, stripped}
    if lines:
        candidates.update(line.strip() for line in stripped.splitlines())
    forms = {form for form in candidates if len(form) >= MIN_LENGTH}
    return tuple(sorted(forms, key=lambda form: (-len(form), form)))


class Redactor:
    """Replaces every form (:func:`secret_forms`) of the given secrets with :data:`MASK`.

    Secrets are bytes, or text (encoded as UTF-8); a redactor is built once per build and then
    called on each line or message before anyone sees it."""

    def __init__(self, secrets: Iterable[bytes | str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            raw = secret.encode("utf-8") if isinstance(secret, str) else secret
            forms.update(form.decode("utf-8", "replace") for form in secret_forms(raw))
        # longest first: a secret that contains another is masked whole, not around the other
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=lambda form: (-len(form), form)))

    def __call__(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


__all__ = ["MASK", "MIN_LENGTH", "Redactor", "secret_forms"]
