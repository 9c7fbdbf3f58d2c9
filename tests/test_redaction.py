"""One rule for what a secret looks like in output: the external engines' redaction, Dagger's
and the ``--check-secrets`` scan all use :func:`pipeline.redaction.secret_forms`."""

from __future__ import annotations

import pytest

from pipeline.backends.process import Redactor as ProcessRedactor
from pipeline.backends.secretscan import needles
from pipeline.dagger.failures import scrub, tail
from pipeline.redaction import MASK, MIN_LENGTH, Redactor, secret_forms

SECRETS = {
    "token": b"hunter2-secret\n",
    "pem": b"-----BEGIN KEY-----\r\nMIIBsecretline\r\nab\r\n-----END KEY-----\r\n",
    "short": b"ab\n",
    "binary": b"\xff\xfekey-bytes",
}


def test_a_secrets_forms_are_the_value_stripped_and_each_line() -> None:
    assert secret_forms(b"  hunter2-secret\n") == (b"  hunter2-secret\n", b"hunter2-secret")
    assert secret_forms(b"multi\nline-value\n") == (
        b"multi\nline-value\n",
        b"multi\nline-value",
        b"line-value",
        b"multi",
    )
    # forms under MIN_LENGTH bytes (the stray "ab" line, a 3-byte secret) are not forms
    assert MIN_LENGTH == 4
    assert b"ab" not in secret_forms(SECRETS["pem"])
    assert secret_forms(b"abc") == () and secret_forms(b"abcd") == (b"abcd",)


@pytest.mark.parametrize(
    "line",
    [
        "token=hunter2-secret here",
        "a hunter2-secret\n and hunter2-secret again",  # a whole text (Dagger scrubs messages)
        "key: MIIBsecretline leaked, -----END KEY----- too",  # one line of a multi-line secret
        "ab is too short to mask",
        "bytes \ufffd\ufffdkey-bytes",  # a secret that is not UTF-8, as output decodes it
        "nothing",
    ],
)
def test_dagger_and_the_external_engines_redact_the_same(line: str) -> None:
    external = ProcessRedactor(SECRETS.values())
    dagger_values = [raw.decode("utf-8", "replace") for raw in SECRETS.values()]
    assert scrub(line, dagger_values) == external(line)
    assert tail(line, dagger_values) == [
        kept for kept in external(line).splitlines() if kept.strip()
    ]


def test_the_mask_and_the_short_value_rule() -> None:
    redact = Redactor(SECRETS.values())
    assert redact("token=hunter2-secret here") == f"token={MASK} here" == "token=*** here"
    assert redact("MIIBsecretline") == "***"
    assert redact("ab stays") == "ab stays"  # under MIN_LENGTH: never masked, never looked for
    assert redact("prefix-hunter2-secret-suffix") == "prefix-***-suffix"


def test_the_scan_looks_for_exactly_what_redaction_masks() -> None:
    wanted = needles(SECRETS)
    assert set(wanted) == {"token", "pem", "binary"}  # "short" has no form: not looked for
    whole = {sid: secret_forms(raw, lines=False) for sid, raw in SECRETS.items()}
    assert wanted == {sid: forms for sid, forms in whole.items() if forms}
    scanned = {form.decode("utf-8", "replace") for forms in wanted.values() for form in forms}
    # the scan looks for the whole value; output also masks each line of it
    masked = set(Redactor(SECRETS.values()).forms)
    assert scanned < masked and masked == set(ProcessRedactor(SECRETS.values()).forms)
    assert "MIIBsecretline" in masked and "MIIBsecretline" not in scanned
