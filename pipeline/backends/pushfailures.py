"""Why a push failed, read from the engine's last lines (pure).

The registry refused its credentials (:func:`auth_refusal`), could not be reached, or the engine
said another error (:func:`describe_push_failure`; :func:`build_push_failure` for a
``build --push``). The executor turns these into a :class:`~pipeline.errors.RegistryAuthError`
or a :class:`~pipeline.errors.BuildError` naming the registry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen

from pipeline.backends import verify

# A registry refusing a push's authentication, in each engine's words: docker and buildx
# "unauthorized: authentication required" (wrong credentials) and "no basic auth credentials"
# (none), podman and buildah "...: unauthorized: authentication required", BuildKit pushing by
# itself "401 Unauthorized" / "insufficient_scope", Docker Hub "denied: requested access to the
# resource is denied"
_AUTH_REFUSED = re.compile(
    r"no basic auth credentials|unauthorized: authentication required|authentication required"
    r"|\bunauthorized\b|401 unauthorized|insufficient_scope"
    r"|denied: requested access to the resource is denied",
    re.IGNORECASE,
)
# a build's output has reached its push (BuildKit: "#13 pushing REF with docker", "#14 pushing
# layers", "failed to push REF")
_PUSHING = re.compile(r"\bpushing\b|\bfailed to push\b", re.IGNORECASE)


@frozen
class AuthRefusal:
    """A push refused for its credentials: the refused tag and the engine's words."""

    tag: str
    reason: str


def auth_refusal(lines: Sequence[str], tags: Sequence[str], *, pushing: bool) -> AuthRefusal | None:
    """Did a registry refuse the push's authentication? From the engine's last lines (pure).

    ``pushing``: the lines are a push command's; else a build's (``build --push``), where the
    refusal counts only when the output shows a push (a RUN step's own 401 is not one). The
    tag is the first one whose registry the output names (else the first).
    """
    if not tags or not (pushing or any(_PUSHING.search(line) for line in lines)):
        return None
    for line in reversed(lines):
        if match := _AUTH_REFUSED.search(line):
            named = [
                tag
                for tag in tags
                if any(verify.parse_reference(tag).registry in text for text in lines)
            ]
            return AuthRefusal((named or list(tags))[0], line[match.start() :].strip())
    return None


# a registry that cannot be reached, in the engines' words (Go's net, HTTP and TLS errors)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|network is unreachable|no route to host"
    r"|connection reset by peer|server gave HTTP response to HTTPS client"
    r"|x509: [^\"]+|tls: [^\"]+",
    re.IGNORECASE,
)
# BuildKit's words for a push of its own that failed
_FAILED_PUSH = re.compile(r"\bfailed to push\b", re.IGNORECASE)
_ERROR_LINE = re.compile(r"\berror\b", re.IGNORECASE)
_ERROR_PREFIX = re.compile(r"^(?:#\d+ )?error:\s*", re.IGNORECASE)


@frozen
class PushFailure:
    """A push that failed for another reason than its credentials: the tag and why."""

    tag: str
    reason: str
    unreachable: bool = False

    def hint(self, registry: str) -> str | None:
        if not self.unreachable:
            return None
        return (
            f"check that the registry {registry} is up and reachable from this machine (for a "
            "plain-HTTP registry: that the engine treats it as insecure), then build again"
        )


def describe_push_failure(lines: Sequence[str], tag: str) -> PushFailure:
    """Why the push of ``tag`` failed, from the engine's last lines (pure): an unreachable
    registry by name, else the last error line."""
    for line in reversed(lines):
        if match := _UNREACHABLE.search(line):
            reason = f"the registry cannot be reached ({match.group(0).strip()})"
            return PushFailure(tag, reason, unreachable=True)
    errors = [_ERROR_PREFIX.sub("", line.strip()) for line in lines if _ERROR_LINE.search(line)]
    reason = errors[-1] if errors else "the engine did not say why"
    return PushFailure(tag, reason if len(reason) <= 300 else f"{reason[:297]}...")


def build_push_failure(
    lines: Sequence[str], tags: Sequence[str], *, failed_step: str | None
) -> PushFailure | None:
    """Did a ``build --push`` (docker, buildx) fail in its push, after the image was built and
    named? Only when the failed step is BuildKit's ``pushing ...`` or the output says ``failed
    to push`` (a RUN step that fails is a build failure, whatever it prints). The tag is the
    first one whose registry the output names (else the first). Pure."""
    if not tags:
        return None
    if not (failed_step or "").startswith("pushing ") and not any(
        _FAILED_PUSH.search(line) for line in lines
    ):
        return None
    named = [
        tag for tag in tags if any(verify.parse_reference(tag).registry in line for line in lines)
    ]
    return describe_push_failure(lines, (named or list(tags))[0])
