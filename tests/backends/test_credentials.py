"""Registry credentials from the files `docker login` / `podman login` write, and the engines'
words for a refused push (pure parts on values; files and helpers for real, in tmp_path)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipeline.backends import credentials
from pipeline.backends.credentials import (
    CONTAINERS,
    DOCKER,
    Credential,
    auth_files,
    best_key,
    decode_auth,
    from_file,
    key_scope,
    lookup,
    read_back_files,
)
from pipeline.backends.pushfailures import AuthRefusal, auth_refusal
from pipeline.backends.verify import Unreadable, registry_entries

if TYPE_CHECKING:
    from conftest import AuthRegistry

HOME = {"HOME": "/home/u"}


def token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def auth_file(path: Path, entries: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))
    return path


# -- where the files are ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "environ", "expected"),
    [
        (DOCKER, HOME, ["/home/u/.docker/config.json"]),
        (DOCKER, {**HOME, "DOCKER_CONFIG": "/ci/d"}, ["/ci/d/config.json"]),
        # REGISTRY_AUTH_FILE does not apply to docker
        (DOCKER, {**HOME, "REGISTRY_AUTH_FILE": "/ci/a.json"}, ["/home/u/.docker/config.json"]),
        (
            CONTAINERS,
            HOME,
            [
                "/run/containers/1000/auth.json",
                "/home/u/.config/containers/auth.json",
                "/home/u/.docker/config.json",
            ],
        ),
        (
            CONTAINERS,
            {**HOME, "XDG_RUNTIME_DIR": "/run/user/1000", "XDG_CONFIG_HOME": "/cfg"},
            [
                "/run/user/1000/containers/auth.json",
                "/cfg/containers/auth.json",
                "/home/u/.docker/config.json",
            ],
        ),
        # podman's and buildah's default --authfile: $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG's
        (
            CONTAINERS,
            {**HOME, "REGISTRY_AUTH_FILE": "/ci/a.json", "DOCKER_CONFIG": "/ci/d"},
            ["/ci/a.json", "/home/u/.config/containers/auth.json", "/ci/d/config.json"],
        ),
        (
            CONTAINERS,
            {**HOME, "DOCKER_CONFIG": "/ci/d", "XDG_RUNTIME_DIR": "/run/user/1000"},
            ["/ci/d/config.json", "/home/u/.config/containers/auth.json"],
        ),
    ],
)
def test_each_family_reads_the_files_its_engines_read(
    family: str, environ: dict[str, str], expected: list[str]
) -> None:
    assert [str(p) for p in auth_files(family, environ, uid=1000)] == expected


def test_the_read_back_also_reads_the_other_family_s_files() -> None:
    environ = {**HOME, "REGISTRY_AUTH_FILE": "/ci/a.json"}
    assert [str(p) for p in read_back_files(DOCKER, environ, uid=0)] == [
        "/home/u/.docker/config.json",
        "/ci/a.json",
        "/home/u/.config/containers/auth.json",
    ]


# -- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "scope"),
    [
        ("127.0.0.1:5001", ("127.0.0.1:5001", "")),
        ("http://127.0.0.1:5001", ("127.0.0.1:5001", "")),
        ("https://index.docker.io/v1/", ("docker.io", "")),
        ("docker.io", ("docker.io", "")),
        ("quay.io/team/app", ("quay.io", "team/app")),
        ("https://quay.io/team", ("quay.io", "")),  # a scheme: the whole registry, as docker
    ],
)
def test_key_scope(key: str, scope: tuple[str, str]) -> None:
    assert key_scope(key) == scope


def test_the_most_specific_namespace_wins() -> None:
    keys = ["quay.io", "quay.io/team", "quay.io/team/app", "quay.io/other"]
    assert best_key(keys, "quay.io", "team/app") == "quay.io/team/app"
    assert best_key(keys, "quay.io", "team/lib") == "quay.io/team"
    assert best_key(keys, "quay.io", "teamx/app") == "quay.io"
    assert best_key(["https://index.docker.io/v1/"], "registry-1.docker.io", "library/x") == (
        "https://index.docker.io/v1/"
    )
    assert best_key(["127.0.0.1:5000"], "127.0.0.1:5001") is None


@pytest.mark.parametrize(
    ("encoded", "pair"),
    [
        (token("ci", "p:w"), ("ci", "p:w")),  # the password may hold colons
        ("not base64!", None),
        (base64.b64encode(b"no-colon").decode(), None),
        (base64.b64encode(b":nouser").decode(), None),
    ],
)
def test_decode_auth(encoded: str, pair: tuple[str, str] | None) -> None:
    assert decode_auth(encoded) == pair


def test_a_credential_never_shows_its_password() -> None:
    found = Credential("ci", "s3cret-pw", "/x/config.json")
    assert "s3cret-pw" not in repr(found)
    assert found.authorization == f"Basic {token('ci', 's3cret-pw')}"
    assert found.secrets() == (b"s3cret-pw", token("ci", "s3cret-pw").encode())


# -- files and helpers -----------------------------------------------------------------------------


def test_the_first_file_with_an_entry_wins(tmp_path: Path) -> None:
    empty = auth_file(tmp_path / "a.json", {"auths": {"other:5000": {"auth": token("o", "p")}}})
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    entry = {"auths": {"127.0.0.1:5001": {"auth": token("ci", "pw")}}}
    docker = auth_file(tmp_path / "d/config.json", entry)
    found = lookup("127.0.0.1:5001", files=[empty, broken, tmp_path / "absent.json", docker])
    assert found.credential == Credential("ci", "pw", str(docker))
    assert found.credential.password == "pw"
    assert found.describe("127.0.0.1:5001") == (
        f"the credentials for 127.0.0.1:5001 in {docker} (user ci)"
    )
    none = lookup("127.0.0.1:5002", files=[empty, docker])
    assert none.credential is None
    assert none.describe("127.0.0.1:5002") == (
        f"no credentials for 127.0.0.1:5002 in {empty}, {docker}"
    )


def test_identity_tokens_and_empty_entries_are_not_credentials(tmp_path: Path) -> None:
    path = auth_file(
        tmp_path / "config.json",
        {"auths": {"a.io": {}, "b.io": {"identitytoken": "tok"}, "c.io": {"auth": ""}}},
    )
    assert [from_file(path, r) for r in ("a.io", "b.io", "c.io")] == [None, None, None]


def helper(directory: Path, name: str, username: str, secret: str) -> None:
    """A real ``docker-credential-NAME`` on PATH that answers for one server."""
    script = directory / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read -r server\n"
        f'[ "$server" = "127.0.0.1:5001" ] || {{ echo "credentials not found"; exit 1; }}\n'
        f"echo '{json.dumps({'ServerURL': '127.0.0.1:5001', 'Username': username, 'Secret': secret})}'\n"  # noqa: E501
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers_answer_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper(tmp_path, "pass", "ci", "from-helper")
    helper(tmp_path, "token", "<token>", "refresh-token")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    per_registry = auth_file(
        tmp_path / "helpers.json",
        {
            "credHelpers": {"127.0.0.1:5001": "pass"},
            "auths": {"127.0.0.1:5001": {"auth": token("ci", "from-auths")}},
        },
    )
    found = from_file(per_registry, "127.0.0.1:5001")
    assert found == Credential("ci", "from-helper", f"{per_registry} (docker-credential-pass)")
    # redaction reads files only: no helper process runs
    assert from_file(per_registry, "127.0.0.1:5001", helpers=False) == Credential(
        "ci", "from-auths", str(per_registry)
    )
    store = auth_file(tmp_path / "store.json", {"credsStore": "pass", "auths": {}})
    assert from_file(store, "127.0.0.1:5001") == Credential(
        "ci", "from-helper", f"{store} (docker-credential-pass)"
    )
    assert from_file(store, "127.0.0.1:5002") is None  # the helper has nothing for it
    tokens = auth_file(tmp_path / "token.json", {"credsStore": "token"})
    assert from_file(tokens, "127.0.0.1:5001") is None  # an identity token is not a password
    missing = auth_file(tmp_path / "missing.json", {"credsStore": "absent-helper"})
    assert from_file(missing, "127.0.0.1:5001") is None


def test_login_commands() -> None:
    assert credentials.login_command("/usr/bin/podman") == "podman login"
    assert credentials.login_command("docker") == "docker login"
    assert credentials.login_command("buildctl") == "docker login"


# -- the engines' words for a refused push ---------------------------------------------------------

TAG = "127.0.0.1:5001/app:1"

# the last lines each engine printed when the test bed's htpasswd registry refused a push
DOCKER_PUSH_WRONG = [
    "The push refers to repository [127.0.0.1:5001/app]",
    "c915cffc32a1: Preparing",
    "unauthorized: authentication required",
]
DOCKER_PUSH_NONE = ["c915cffc32a1: Preparing", "no basic auth credentials"]
BUILDX = [
    "#13 pushing 127.0.0.1:5001/app:1 with docker",
    "#13 pushing layer c915cffc32a1 0.0s done",
    "#13 ERROR: unauthorized: authentication required",
    "------",
    " > pushing 127.0.0.1:5001/app:1 with docker:",
    "------",
    "ERROR: unauthorized: authentication required",
]
PODMAN = [
    "Copying blob sha256:c915cffc32a1617b5ca62fbdc9879a3206951e78ae49357fa6f9e39412662d15",
    "Error: trying to reuse blob sha256:c915 at destination: checking whether a blob sha256:c915"
    " exists in 127.0.0.1:5001/app: unauthorized: authentication required",
]
BUILDAH_MANIFEST = [
    "Error: copying image 1/1 from manifest list: trying to reuse blob sha256:c915 at "
    "destination: checking whether a blob sha256:c915 exists in 127.0.0.1:5001/app: "
    "unauthorized: authentication required",
]
BUILDKIT_401 = [
    "#14 exporting to image",
    "#14 pushing layers 0.1s done",
    "#14 ERROR: failed to push 127.0.0.1:5001/app:1: unexpected status: 401 Unauthorized",
]
HUB = ["denied: requested access to the resource is denied"]


@pytest.mark.parametrize(
    ("lines", "pushing", "reason"),
    [
        (DOCKER_PUSH_WRONG, True, "unauthorized: authentication required"),
        (DOCKER_PUSH_NONE, True, "no basic auth credentials"),
        (BUILDX, False, "unauthorized: authentication required"),
        (PODMAN, True, "unauthorized: authentication required"),
        (BUILDAH_MANIFEST, True, "unauthorized: authentication required"),
        (BUILDKIT_401, False, "401 Unauthorized"),
        (HUB, True, "denied: requested access to the resource is denied"),
    ],
)
def test_each_engine_s_refusal_is_recognized(lines: list[str], pushing: bool, reason: str) -> None:
    assert auth_refusal(lines, [TAG], pushing=pushing) == AuthRefusal(TAG, reason)


def test_a_build_step_s_own_401_is_not_a_push_refusal() -> None:
    pip = [
        "#9 [4/6] RUN pip install -r requirements.txt",
        "#9 1.2 ERROR: HTTP error 401 Unauthorized while getting https://pypi.internal/x.whl",
        'ERROR: failed to solve: process "/bin/sh -c pip install" did not complete successfully',
    ]
    assert auth_refusal(pip, [TAG], pushing=False) is None
    assert auth_refusal(["Error: manifest unknown"], [TAG], pushing=True) is None
    assert auth_refusal(DOCKER_PUSH_NONE, [], pushing=True) is None


def test_the_refused_tag_is_the_one_whose_registry_the_output_names() -> None:
    tags = ["127.0.0.1:5000/app:1", "127.0.0.1:5001/app:1"]
    assert auth_refusal(PODMAN, tags, pushing=True) == AuthRefusal(
        "127.0.0.1:5001/app:1", "unauthorized: authentication required"
    )
    # docker push names no registry in the error: the first tag
    assert auth_refusal(DOCKER_PUSH_NONE, tags, pushing=True) == AuthRefusal(
        "127.0.0.1:5000/app:1", "no basic auth credentials"
    )


# -- the read-back against the test bed's htpasswd registry ----------------------------------------


@pytest.mark.registry_auth
def test_the_read_back_authenticates_from_a_containers_auth_file(
    auth_registry: AuthRegistry, tmp_path: Path
) -> None:
    address, user, password = auth_registry
    good = auth_file(tmp_path / "auth.json", {"auths": {address: {"auth": token(user, password)}}})
    bad = auth_file(tmp_path / "bad.json", {"auths": {address: {"auth": token(user, "nope")}}})
    home = {"HOME": str(tmp_path / "home")}  # nothing of this machine's own logins
    name = f"{address}/pipeline-test-never-pushed:1"
    # right credentials: past the 401, to the registry's own answer (no such manifest)
    with pytest.raises(Unreadable, match="HTTP 404"):
        registry_entries(name, family=DOCKER, environ={**home, "REGISTRY_AUTH_FILE": str(good)})
    with pytest.raises(Unreadable) as refused:
        registry_entries(name, family=CONTAINERS, environ={**home, "REGISTRY_AUTH_FILE": str(bad)})
    assert str(refused.value).endswith(
        f"HTTP 401: the credentials for {address} in {bad} (user {user}) were refused"
    )
    with pytest.raises(Unreadable) as wanted:
        registry_entries(name, family=CONTAINERS, environ=home)
    assert f"HTTP 401: it wants credentials; no credentials for {address} in " in str(wanted.value)
    for text in (str(refused.value), str(wanted.value)):
        assert password not in text and "nope" not in text
