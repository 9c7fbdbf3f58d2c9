"""Every example under examples/ renders (through the real bento loader and store), lint-clean,
with the user's template lines verbatim; the buildable ones are built with real docker."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.bento import resolve_bento
from pipeline.config import Bento
from pipeline.context import temporary_context
from pipeline.rendering import RenderOptions, render_dockerfile
from tests.seed_examples import SEED_EXAMPLES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "bentofile.yaml").is_file())
TEMPLATED = [e for e in EXAMPLES if (ROOT / "examples" / e / "Dockerfile.template").is_file()]


@pytest.fixture(autouse=True)
def _store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))


def load(example: str) -> Bento:
    return resolve_bento(ROOT / "examples" / example)


def test_the_examples_are_there() -> None:
    for name in ("hello", "secret-mount", "setup-script", *SEED_EXAMPLES):
        assert name in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_renders_lint_clean(example: str) -> None:
    bento = load(example)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = render_dockerfile(bento, RenderOptions(strict=True))
    assert re.search(r"^FROM \S+ AS base-container$", text, re.MULTILINE)
    assert 'ENTRYPOINT [ "' in text


@pytest.mark.parametrize("example", TEMPLATED)
def test_template_lines_appear_as_written(example: str) -> None:
    template = (ROOT / "examples" / example / "Dockerfile.template").read_text(encoding="utf-8")
    rendered = render_dockerfile(load(example)).splitlines()
    for line in template.splitlines():
        if line.strip() and "{" not in line:
            assert line.rstrip() in rendered, line


def test_hello_installs_nothing() -> None:
    text = render_dockerfile(load("hello"))
    assert "pip install" not in text and "apt-get" not in text


def test_secret_mount_is_refused_without_buildkit() -> None:
    from pipeline.errors import TemplateError

    with pytest.raises(TemplateError, match="BuildKit"):
        render_dockerfile(load("secret-mount"), RenderOptions(buildkit=False))


# -- real builds ----------------------------------------------------------------------------------


def docker(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", *args],
        input=input,
        capture_output=True,
        check=True,
        timeout=600,
        env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/local/bin:/usr/bin:/bin"},
    )


@pytest.fixture
def image_tag() -> Iterator[str]:
    tag = f"bento-pipeline-test/{uuid.uuid4().hex[:12]}:1"
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def build(bento: Bento, tag: str, *extra: str, options: RenderOptions | None = None) -> None:
    with temporary_context(bento, render_dockerfile(bento, options)) as ctx:
        try:
            docker("build", "-q", "-t", tag, *extra, str(ctx))
        except subprocess.CalledProcessError as exc:
            raise AssertionError(exc.stderr.decode(errors="replace")[-3000:]) from None


@pytest.mark.docker
@pytest.mark.slow
def test_hello_builds_runs_and_answers(image_tag: str) -> None:
    build(load("hello"), image_tag)
    assert docker("run", "--rm", image_tag, "id", "-u").stdout.strip() == b"1034"
    container = (
        docker(
            "run",
            "-d",
            "-p",
            "127.0.0.1::3000",
            image_tag,
            "python",
            "/home/bentoml/bento/src/service.py",
        )
        .stdout.decode()
        .strip()
    )
    try:
        port = docker("port", container, "3000/tcp").stdout.decode().split(":")[-1].strip()
        body = None
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.2)
        assert body is not None and body["message"] == "hello from bento-pipeline"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


@pytest.mark.docker
@pytest.mark.slow
def test_secret_mount_hash_but_never_the_secret(image_tag: str, tmp_path: Path) -> None:
    secret = b"aws_secret_access_key = s3cr3t-" + uuid.uuid4().hex.encode()
    source = tmp_path / "credentials"
    source.write_bytes(secret)
    build(load("secret-mount"), image_tag, "--secret", f"id=aws,src={source}")
    written = docker("run", "--rm", image_tag, "cat", "/home/bentoml/bento/secret.sha256").stdout
    assert written.decode().strip() == hashlib.sha256(secret).hexdigest()
    saved = docker("save", image_tag).stdout
    assert secret not in saved
    assert b"s3cr3t" not in docker("history", "--no-trunc", image_tag).stdout


@pytest.mark.docker
@pytest.mark.slow
def test_quoted_env_values_read_back_literally(image_tag: str, tmp_path: Path) -> None:
    from attrs import evolve

    nasty = {
        "QUOTES": 'say "hi"',
        "DOLLAR": "$HOME and ${PATH}",
        "BACKSLASH": "a\\b\\",
        "MIX": "'\"$\\",
        "INJECT": '"; RUN touch /pwned #',
    }
    bento = load("hello")
    bento = evolve(bento, docker=evolve(bento.docker, env=nasty), labels={"note": 'x"$y\\'})
    build(bento, image_tag)
    out = docker(
        "run",
        "--rm",
        image_tag,
        "python",
        "-c",
        f"import json, os; print(json.dumps({{k: os.environ[k] for k in {sorted(nasty)!r}}}))",
    )
    assert json.loads(out.stdout) == nasty
    labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}", image_tag).stdout)
    assert labels["note"] == 'x"$y\\'
    assert (
        docker("run", "--rm", image_tag, "sh", "-c", "test ! -e /pwned && echo clean").stdout
        == b"clean\n"
    )


@pytest.mark.docker
@pytest.mark.slow
def test_no_buildkit_output_builds_with_the_classic_builder(image_tag: str) -> None:
    bento = load("hello")
    with temporary_context(bento, render_dockerfile(bento, RenderOptions(buildkit=False))) as ctx:
        done = subprocess.run(
            ["docker", "build", "-q", "-t", image_tag, str(ctx)],
            capture_output=True,
            timeout=600,
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert docker("run", "--rm", image_tag, "id", "-un").stdout.strip() == b"bentoml"


CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.skipif(not CA_BUNDLE.is_file(), reason="no CA bundle on this machine")
def test_ca_cert_installs_from_pypi_and_leaves_no_trace(image_tag: str, tmp_path: Path) -> None:
    """pip reaches PyPI through the (TLS-intercepting) network only with the bundle mounted as
    secret ``ca_cert``; the bundle is in no layer, ENV or history."""
    from attrs import evolve

    from pipeline.config import PythonOptions
    from pipeline.rendering import CA_CERT_SECRET_ID

    marker = f"# bento-pipeline-marker-{uuid.uuid4().hex}"
    bundle = tmp_path / "ca.crt"
    bundle.write_text(CA_BUNDLE.read_text(encoding="utf-8") + f"\n{marker}\n", encoding="utf-8")
    bento = load("hello")
    bento = evolve(bento, python=PythonOptions(packages=("six==1.16.0",)))
    (bento.path / "env" / "python" / "requirements.txt").write_text(
        "six==1.16.0\n", encoding="utf-8"
    )
    build(
        bento,
        image_tag,
        "--secret",
        f"id={CA_CERT_SECRET_ID},src={bundle}",
        options=RenderOptions(ca_cert=True),
    )
    out = docker("run", "--rm", image_tag, "python", "-c", "import six; print(six.__version__)")
    assert out.stdout.strip() == b"1.16.0"
    env = json.loads(docker("inspect", "--format", "{{json .Config.Env}}", image_tag).stdout)
    assert not [e for e in env if "ca_cert" in e or "/run/secrets" in e]
    assert marker.encode() not in docker("save", image_tag).stdout
    assert marker.encode() not in docker("history", "--no-trunc", image_tag).stdout


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "check", "expected"),
    [
        ("echo-block", "id -un", b"bentoml"),
        (
            "custom-user",
            "id -un; id -u; echo $BENTO_PATH; ls /srv/app/bento/src",
            b"app\n4321\n/srv/app/bento\nservice.py",
        ),
        ("setup-script", "cat /etc/bento-setup-script.done", b"uid=0 os=debian"),
    ],
)
def test_offline_examples_build(image_tag: str, example: str, check: str, expected: bytes) -> None:
    build(load(example), image_tag)
    assert docker("run", "--rm", image_tag, "sh", "-c", check).stdout.strip() == expected
