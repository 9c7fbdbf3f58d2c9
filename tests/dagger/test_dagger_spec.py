"""The pure planning half of the Dagger executor: outputs, .dockerignore, # syntax, dry run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from pipeline.cacert import system_ca_bundle
from pipeline.dagger.executor import DaggerExecutor, loaded_image_id, read_secrets
from pipeline.dagger.failures import scrub
from pipeline.dagger.spec import (
    OutputSpec,
    SecretMount,
    check_secret_mounts,
    check_syntax_directive,
    parse_dockerignore,
    parse_output,
    read_dockerignore,
    secret_mounts,
    spec_from_request,
)
from pipeline.errors import ConfigError, PipelineWarning
from pipeline.request import BuildRequest, SecretSpec


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("type=oci,dest=out.tar", OutputSpec(kind="oci", dest=Path("out.tar"))),
        ("dest=out.tar", OutputSpec(kind="oci", dest=Path("out.tar"))),
        ("type=docker,dest=/x/i.tar", OutputSpec(kind="docker", dest=Path("/x/i.tar"))),
    ],
)
def test_parse_output(value: str, expected: OutputSpec) -> None:
    assert parse_output(value) == expected


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("type=local,dest=d", "allowed: 'oci' or 'docker'"),
        ("type=oci", "needs dest=FILE"),
        ("type=oci,dest=a,compression=zstd", "unknown key(s) compression"),
        ("oops", "malformed output"),
    ],
)
def test_parse_output_errors(value: str, complaint: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_output(value)
    assert complaint in str(info.value)
    assert info.value.field == "--output"


def test_dockerignore_patterns(tmp_path: Path) -> None:
    text = "# comment\n\n/.git\nnode_modules\n  **/*.pyc \n!/keep.pyc\n"
    assert parse_dockerignore(text) == (".git", "node_modules", "**/*.pyc", "!keep.pyc")
    (tmp_path / ".dockerignore").write_text("a\n")
    assert read_dockerignore(tmp_path, "Dockerfile") == ("a",)
    (tmp_path / "Dockerfile.dockerignore").write_text("b\n")
    assert read_dockerignore(tmp_path, "Dockerfile") == ("b",)  # per-Dockerfile file wins
    assert read_dockerignore(tmp_path / "missing", "Dockerfile") == ()


@pytest.mark.parametrize(
    "ref",
    [
        "docker/dockerfile:1",
        "docker.io/docker/dockerfile:1.7-labs",
        "moby/dockerfile-upstream@sha256:" + "0" * 64,
    ],
)
def test_known_syntax_frontends_are_kept(ref: str) -> None:
    text = f"# syntax={ref}\nFROM scratch\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_syntax_directive(text) == text


def test_unknown_syntax_frontend_is_dropped_with_warning() -> None:
    text = "# escape=\\\n# syntax=ghcr.io/acme/frontend:2\nFROM scratch\n"
    with pytest.warns(PipelineWarning, match=r"Dockerfile:2: dropped '# syntax=ghcr.io/acme"):
        assert check_syntax_directive(text) == "# escape=\\\nFROM scratch\n"
    # after the first instruction a "# syntax=" line is an ordinary comment
    late = "FROM scratch\n# syntax=ghcr.io/acme/frontend:2\n"
    assert check_syntax_directive(late) == late


def test_spec_rejects_duplicates_and_warns_on_ignored_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="platform 'linux/amd64' is given twice"):
        spec_from_request(BuildRequest(context=tmp_path, platforms=["linux/amd64"] * 2))
    with pytest.raises(ConfigError, match="--push needs at least one --tag"):
        spec_from_request(BuildRequest(context=tmp_path, push=True))
    with pytest.warns(PipelineWarning, match="ignores --cache-from"):
        spec_from_request(BuildRequest(context=tmp_path, cache_from=["type=registry,ref=x"]))


def test_dry_run_lists_operations_without_secret_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN", "dry-run-secret-value")
    request = BuildRequest(
        context=tmp_path,
        platforms=["linux/amd64", "linux/arm64"],
        build_args={"A": "1"},
        target="prod",
        secrets=[SecretSpec(id="tok", env="TOKEN")],
        labels={"org.opencontainers.image.title": "hello"},
        tags=["reg.test/hello:1"],
        push=True,
    )
    text = DaggerExecutor().dry_run(request)
    lines = text.splitlines()
    assert f"context = host.directory({str(tmp_path)!r})" in lines
    assert sum("dockerBuild(" in line for line in lines) == 2
    assert "platform='linux/arm64'" in text and "target='prod'" in text
    assert "secrets=[tok]" in text and "# from id=tok,env=TOKEN" in text
    assert "withLabel('org.opencontainers.image.title', 'hello')" in text
    assert lines[-1].startswith("publish(address='reg.test/hello:1', platformVariants=<1 more>")
    assert "dry-run-secret-value" not in text


def test_secret_reading_limits(tmp_path: Path) -> None:
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_secrets([SecretSpec(id="b", src=binary)])
    big = tmp_path / "big"
    big.write_bytes(b"x" * 128_001)
    with pytest.raises(ConfigError, match="at most 128000"):
        read_secrets([SecretSpec(id="big", src=big)])
    with pytest.raises(ConfigError, match="at most 128000") as info:
        read_secrets([SecretSpec(id="ca_cert", src=big)])
    assert info.value.field == "--ca-cert" and "another backend" in str(info.value.hint)
    ok = tmp_path / "ok"
    ok.write_text("value\n")
    assert read_secrets([SecretSpec(id="ok", src=ok)]) == {"ok": "value\n"}


def test_scrub_and_docker_load_parsing() -> None:
    assert scrub("a value\n and value", ["value\n"]) == "a *** and ***"
    assert loaded_image_id("Loaded image ID: sha256:abc\n") == "sha256:abc"
    assert loaded_image_id("Loaded image: app:1\n") == "app:1"
    assert loaded_image_id("nothing\n") is None


def test_secret_mounts_are_found_across_continuations() -> None:
    text = (
        "FROM x\n"
        "# RUN --mount=type=secret,id=commented\n"
        "RUN --mount=type=cache,target=/c \\\n"
        "    --mount=type=secret,target=/run/secrets/tok,required \\\n"
        "    true\n"
        "run --mount=type=secret,id=a,required=false --mount=type=secret,id=b,required=true x\n"
        "COPY --mount=type=secret,id=not-a-run . .\n"
    )
    assert secret_mounts(text) == (
        SecretMount(id="tok", line=3, required=True),
        SecretMount(id="a", line=6, required=False),
        SecretMount(id="b", line=6, required=True),
    )


def test_missing_secrets_warn_or_fail() -> None:
    text = "FROM x\nRUN --mount=type=secret,id=aws,target=/root/.aws/credentials true\n"
    with pytest.warns(PipelineWarning, match=r"Dockerfile:2 mounts secret 'aws' but it was not"):
        check_secret_mounts(text, [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_secret_mounts(text, ["aws"])
    with pytest.raises(ConfigError, match=r"'tok' \(required=true\) .* --secret id=tok,src=FILE"):
        check_secret_mounts("FROM x\nRUN --mount=type=secret,id=tok,required=true x\n", ["aws"])


def test_oversized_ca_bundle_keeps_only_the_users_certificates(tmp_path: Path) -> None:
    system = system_ca_bundle()
    if system is None or system.stat().st_size <= 128_000:
        pytest.skip("needs a system CA bundle bigger than a Dagger secret")
    own = "-----BEGIN CERTIFICATE-----\nMIIBproxyCA\n-----END CERTIFICATE-----"
    bundle = tmp_path / "ca-bundle.crt"
    bundle.write_text(system.read_text() + "\n" + own + "\n")
    with pytest.warns(PipelineWarning, match="trusts only your certificate"):
        values = read_secrets([SecretSpec(id="ca_cert", src=bundle)])
    assert values == {"ca_cert": own + "\n"}
