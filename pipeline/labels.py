"""The labels every image gets: the OCI annotations (``org.opencontainers.image.*``) and the
bento it was built from. Runs ``git`` (read-only) for the revision and source of a project."""

from __future__ import annotations

import shutil
from datetime import timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.backends.process import probe
from pipeline.config import Bento

#: the image label naming the bento an image was built from (``name:version``)
BENTO_TAG_LABEL = "io.bento-pipeline.bento"
_OCI = "org.opencontainers.image."


def image_labels(bento: Bento, project: Path | None = None) -> dict[str, str]:
    """The labels every image gets: ``org.opencontainers.image.title`` (the bento name),
    ``.version`` (its version), ``.created`` (its creation time: the same bento, the same
    label, the same image config), ``.revision`` and ``.source`` (the git commit and the
    ``origin`` remote, without credentials, when ``project`` is in a git checkout) and
    :data:`BENTO_TAG_LABEL`."""
    labels = {f"{_OCI}title": bento.name, f"{_OCI}version": bento.version}
    if bento.creation_time is not None:
        created = bento.creation_time
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        stamp = created.astimezone(timezone.utc).isoformat(timespec="seconds")
        labels[f"{_OCI}created"] = stamp.replace("+00:00", "Z")
    if project is not None:
        labels.update(git_labels(project))
    labels[BENTO_TAG_LABEL] = bento.tag
    return labels


def git_labels(project: Path) -> dict[str, str]:
    """``revision`` and ``source`` labels from the git checkout ``project`` is in (none when
    it is not in one, or git is missing); credentials in the remote URL are left out."""
    git = shutil.which("git")
    if git is None:
        return {}

    def ask(*args: str) -> str | None:
        done = probe([git, "-C", str(project), *args], env={"GIT_TERMINAL_PROMPT": "0"}, timeout=10)
        value = done.stdout.strip()
        return value if done.returncode == 0 and value and "\n" not in value else None

    revision = ask("rev-parse", "--verify", "--quiet", "HEAD")
    if revision is None:
        return {}
    labels = {f"{_OCI}revision": revision}
    remote = ask("config", "--get", "remote.origin.url")
    if remote is not None:
        labels[f"{_OCI}source"] = public_url(remote)
    return labels


def public_url(url: str) -> str:
    """``url`` without a user name or password (``https://tok@host/x`` -> ``https://host/x``);
    scp-style ``git@host:org/repo`` is kept (``git`` is no secret)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))
