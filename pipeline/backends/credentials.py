"""Registry credentials where users' logins leave them: ``docker login``, ``podman login``.

The engines read these files themselves when they push. This module finds the same credentials
for what the tool does on its own: reading a pushed result back (:mod:`pipeline.backends.verify`),
redacting them from engine output, and saying in an error which file held the credentials the
registry refused (or that none held any).

Where each family of engines looks (the first file with an entry for the registry wins):

- ``docker`` (docker, buildx, nerdctl, buildctl): ``$DOCKER_CONFIG/config.json``, else
  ``~/.docker/config.json``.
- ``containers`` (podman, buildah): first ``$REGISTRY_AUTH_FILE``, else
  ``$DOCKER_CONFIG/config.json`` (podman's and buildah's default ``--authfile``), else
  ``${XDG_RUNTIME_DIR}/containers/auth.json`` (``/run/containers/UID/auth.json`` without
  ``XDG_RUNTIME_DIR``); then ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``; then
  docker's file as above (containers-auth.json(5); the order podman 4.3 and buildah 1.28 open
  them in).

An entry is ``auths.KEY.auth`` (base64 of ``user:password``; a key may carry a scheme, docker's
``/v1/`` path or, in a containers file, a repository namespace), or a credential helper:
``credHelpers.REGISTRY`` or ``credsStore`` names ``docker-credential-NAME``, run as ``NAME get``
with the registry on stdin. A password never goes into argv, a log line or a message:
:class:`Credential` keeps it out of its repr.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from attrs import field, frozen

from pipeline.backends.process import probe

DOCKER = "docker"
CONTAINERS = "containers"
FAMILIES = (DOCKER, CONTAINERS)

# how users of each engine log in (the binary's basename; anything else: docker login)
LOGIN_COMMANDS = {
    "docker": "docker login",
    "podman": "podman login",
    "buildah": "buildah login",
    "nerdctl": "nerdctl login",
}
# where each family's login writes (for hints)
LOGIN_FILES = {
    DOCKER: "$DOCKER_CONFIG/config.json, else ~/.docker/config.json",
    CONTAINERS: "$REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json",
}
# Docker Hub's names: docker's config keys it as https://index.docker.io/v1/, containers' as
# docker.io, and its API lives on registry-1.docker.io
_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HUB_HELPER_URL = "https://index.docker.io/v1/"
_HELPER_TIMEOUT = 30


@frozen
class Credential:
    """A user name and password for one registry, and the file (or helper) they came from."""

    username: str
    password: str = field(repr=False)
    source: str

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value for basic auth."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def secrets(self) -> tuple[bytes, ...]:
        """What must never be shown: the password and the base64 forms carrying it."""
        pair = f"{self.username}:{self.password}".encode()
        return (self.password.encode(), base64.b64encode(pair))


@frozen
class Lookup:
    """The outcome of a search: the credential (None: no file had one) and the files read."""

    credential: Credential | None
    searched: tuple[Path, ...]

    def describe(self, registry: str) -> str:
        """``the credentials for R in FILE (user U)`` / ``no credentials for R in FILES``."""
        if self.credential is not None:
            return (
                f"the credentials for {registry} in {self.credential.source} "
                f"(user {self.credential.username})"
            )
        where = ", ".join(str(p) for p in self.searched) or "no auth file"
        return f"no credentials for {registry} in {where}"


# -- where the files are (pure: environ in, paths out) ---------------------------------------------


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ["HOME"]) if environ.get("HOME") else Path.home()


def docker_config(environ: Mapping[str, str] | None = None) -> Path:
    """docker's config file: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else _home(env) / ".docker/config.json"


def auth_files(
    family: str, environ: Mapping[str, str] | None = None, *, uid: int | None = None
) -> tuple[Path, ...]:
    """The files an engine of ``family`` reads credentials from, in its order."""
    env = os.environ if environ is None else environ
    if family == DOCKER:
        return (docker_config(env),)
    runtime = env.get("XDG_RUNTIME_DIR")
    if env.get("REGISTRY_AUTH_FILE"):
        primary = Path(env["REGISTRY_AUTH_FILE"])
    elif env.get("DOCKER_CONFIG"):
        primary = docker_config(env)
    elif runtime:
        primary = Path(runtime, "containers/auth.json")
    else:
        primary = Path(f"/run/containers/{os.getuid() if uid is None else uid}/auth.json")
    config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else None
    config = (config_home or _home(env) / ".config") / "containers/auth.json"
    return tuple(dict.fromkeys((primary, config, docker_config(env))))


def read_back_files(
    family: str, environ: Mapping[str, str] | None = None, *, uid: int | None = None
) -> tuple[Path, ...]:
    """Where the tool itself looks: the engine family's files first, then the other family's
    (a podman user may have only a containers auth file, a docker user only docker's)."""
    ordered: list[Path] = []
    for name in (family, *(f for f in FAMILIES if f != family)):
        for path in auth_files(name, environ, uid=uid):
            if path not in ordered:
                ordered.append(path)
    return tuple(ordered)


# -- matching keys (pure) --------------------------------------------------------------------------


def _host(name: str) -> str:
    return "docker.io" if name in _HUB else name


def key_scope(key: str) -> tuple[str, str]:
    """An ``auths`` key as (registry host, repository namespace): a scheme or docker's ``/v1/``
    path means the whole registry (``""``), as both docker and containers/image read it."""
    rest = key
    had_scheme = False
    for scheme in ("https://", "http://"):
        if rest.startswith(scheme):
            rest, had_scheme = rest[len(scheme) :], True
    host, _, path = rest.partition("/")
    path = path.strip("/")
    if had_scheme or path in ("v1", "v2"):
        path = ""
    return _host(host), path


def best_key(keys: Sequence[str], registry: str, repository: str = "") -> str | None:
    """The key that applies to ``registry/repository``: the longest matching namespace wins."""
    best: tuple[int, str] | None = None
    host = _host(registry)
    for key in keys:
        key_host, namespace = key_scope(key)
        if key_host != host:
            continue
        if namespace and repository != namespace and not repository.startswith(namespace + "/"):
            continue
        if best is None or len(namespace) > best[0]:
            best = (len(namespace), key)
    return None if best is None else best[1]


def decode_auth(encoded: str) -> tuple[str, str] | None:
    """``auths.KEY.auth`` -> (user, password); None when it is not base64 of ``user:pw``."""
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (username, password) if sep and username else None


# -- reading them (effectful) ----------------------------------------------------------------------


def _helper(name: str, registry: str, source: Path) -> Credential | None:
    """``docker-credential-NAME get`` (the server on stdin, the secret on its stdout)."""
    server = _HUB_HELPER_URL if _host(registry) == "docker.io" else registry
    proc = probe([f"docker-credential-{name}", "get"], input=server, timeout=_HELPER_TIMEOUT)
    try:
        data = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    username, secret = data.get("Username"), data.get("Secret")
    # "<token>": an identity token (OAuth refresh token), not a password basic auth can use
    if not isinstance(username, str) or not isinstance(secret, str) or username == "<token>":
        return None
    return Credential(username, secret, f"{source} (docker-credential-{name})")


def from_file(
    path: Path, registry: str, repository: str = "", *, helpers: bool = True
) -> Credential | None:
    """The credential ``path`` holds for ``registry/repository`` (helpers first, then
    ``auths``, then docker's ``credsStore``), or None. ``helpers=False``: ``auths`` only, no
    helper process (what redacting output needs: helpers' secrets never reach an engine's
    output, and a keychain helper may prompt)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    by_registry = data.get("credHelpers") if helpers else None
    if isinstance(by_registry, dict):
        names = [k for k, v in by_registry.items() if isinstance(v, str)]
        key = best_key(names, registry, repository)
        if key is not None and (found := _helper(by_registry[key], registry, path)):
            return found
    auths = data.get("auths")
    if isinstance(auths, dict):
        usable = [
            k for k, v in auths.items() if isinstance(v, dict) and isinstance(v.get("auth"), str)
        ]
        key = best_key(usable, registry, repository)
        if key is not None and (pair := decode_auth(auths[key]["auth"])):
            return Credential(pair[0], pair[1], str(path))
    store = data.get("credsStore") if helpers else None
    if isinstance(store, str) and store:
        return _helper(store, registry, path)
    return None


def lookup(
    registry: str,
    repository: str = "",
    *,
    files: Sequence[Path] | None = None,
    family: str = DOCKER,
    environ: Mapping[str, str] | None = None,
    helpers: bool = True,
) -> Lookup:
    """The first credential for ``registry`` in ``files`` (default: ``family``'s files)."""
    searched = tuple(auth_files(family, environ) if files is None else files)
    for path in searched:
        if found := from_file(path, registry, repository, helpers=helpers):
            return Lookup(found, searched)
    return Lookup(None, searched)


def login_command(binary: str) -> str:
    """How users of ``binary`` log in (``podman login``; ``docker login`` for the rest)."""
    return LOGIN_COMMANDS.get(os.path.basename(binary), "docker login")
