"""``pipeline.baseimage`` (with ``pipeline.basespec`` and ``pipeline.ocilayout``) and
``python -m pipeline base-image``: option resolution, the mmdebstrap command, deterministic
layers and OCI layouts (pure, fast), bad input through the CLI (exit 2, nothing tagged or
written), and one real build loaded into docker (slow)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import uuid
from pathlib import Path

import pytest

from pipeline import baseimage, basespec, ocilayout
from pipeline.basespec import (
    PLATFORMS,
    SUITES,
    LayerBlob,
    parse_platforms,
    resolve_spec,
)
from pipeline.errors import BackendError, ConfigError

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
HAS_MMDEBSTRAP = shutil.which("mmdebstrap") is not None

PEM = """\
-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQ2FmZmVpbmF0ZWRCZWFuc1Rlc3QwCgYIKoZIzj0EAwIw
-----END CERTIFICATE-----
"""


# ------------------------------------------------------------------------------ resolution


def test_suites_map_to_their_python() -> None:
    assert {name: s.python for name, s in SUITES.items()} == {
        "bookworm": "3.11",
        "trixie": "3.13",
        "bullseye": "3.9",
    }


def test_platforms_parse_aliases_in_order_without_duplicates() -> None:
    result = parse_platforms("linux/arm64, amd64,aarch64,linux/amd64")
    assert [p.name for p in result] == ["linux/arm64", "linux/amd64"]


@pytest.mark.parametrize("text", ["linux/s390x", "windows/amd64", "linux/arm", ","])
def test_unsupported_platform_names_allowed_ones(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_platforms(text)
    assert info.value.field == "--platform"
    assert "linux/amd64" in str(info.value) and "linux/arm64" in str(info.value)


def test_unknown_suite_suggests_and_lists() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_spec(suite="bookwrm")
    message = str(info.value)
    assert "did you mean 'bookworm'" in message
    assert "'bookworm', 'trixie' or 'bullseye'" in message


def test_defaults_tag_and_output() -> None:
    spec = resolve_spec(suite="trixie", platforms="linux/amd64")
    assert spec.tag == "python:3.13-slim"
    assert [(o.kind, o.target) for o in spec.outputs] == [("load", "auto")]
    assert spec.mirror == basespec.DEFAULT_MIRROR
    assert spec.apt_sources() == (
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main",
    )


def test_custom_mirror_has_no_implicit_security_archive() -> None:
    spec = resolve_spec(platforms="amd64", mirror="http://mirror.example/debian/")
    assert spec.apt_sources() == ("deb http://mirror.example/debian bookworm main",)


def test_snapshot_pins_both_archives() -> None:
    spec = resolve_spec(platforms="amd64", snapshot="20250520")
    assert spec.snapshot == "20250520T000000Z"
    assert spec.apt_sources() == (
        "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20250520T000000Z "
        "bookworm main",
        "deb [check-valid-until=no] "
        "http://snapshot.debian.org/archive/debian-security/20250520T000000Z "
        "bookworm-security main",
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"snapshot": "yesterday"}, "--snapshot"),
        ({"snapshot": "20250520", "mirror": "http://x/debian"}, "--snapshot"),
        ({"mirror": "ftp://x/debian"}, "--mirror"),
        ({"tag": "bad tag"}, "--tag"),
        ({"push": "reg:5000/x;rm -rf"}, "--push"),
        ({"load": "nerdctl"}, "--load"),
        ({"platforms": "linux/amd64,linux/arm64"}, "--platform"),  # load needs one platform
        ({"source_date_epoch": "yesterday"}, "SOURCE_DATE_EPOCH"),
        ({"source_date_epoch": "-5"}, "SOURCE_DATE_EPOCH"),
    ],
)
def test_bad_values_name_their_option(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_spec(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.exit_code == 2


def test_multi_platform_is_fine_for_push_and_archive() -> None:
    spec = resolve_spec(
        platforms="linux/amd64,linux/arm64",
        push="127.0.0.1:5000/library/python:3.11-slim",
        oci_archive="out.tar",
    )
    assert [o.kind for o in spec.outputs] == ["push", "oci-archive"]
    assert spec.outputs[0].tls_verify is False  # loopback registry: plain HTTP


def test_remote_registry_verifies_tls_unless_told() -> None:
    assert resolve_spec(push="registry.example/py:1").outputs[0].tls_verify is True
    spec = resolve_spec(push="registry.example/py:1", tls_verify=False)
    assert spec.outputs[0].tls_verify is False


def test_ca_cert_files_are_split_and_deduplicated(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(PEM + "junk between\n" + PEM.replace("MIIB", "MIIC"))
    again = tmp_path / "again.crt"
    again.write_text(PEM)
    spec = resolve_spec(platforms="amd64", ca_cert_files=[str(bundle), str(again)])
    assert len(spec.ca_certs) == 2
    assert all(c.startswith("-----BEGIN CERTIFICATE-----\n") for c in spec.ca_certs)


def test_ca_cert_without_certificate_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-cert.txt"
    empty.write_text("hello\n")
    with pytest.raises(ConfigError) as info:
        resolve_spec(platforms="amd64", ca_cert_files=[str(empty)])
    assert info.value.file == str(empty)
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as info:
        resolve_spec(platforms="amd64", ca_cert_files=[str(missing)])
    assert info.value.file == str(missing)


# --------------------------------------------------------------------------- pure planning


def test_mmdebstrap_argv() -> None:
    spec = resolve_spec(platforms="linux/arm64", push="127.0.0.1:5000/p:1")
    argv = basespec.mmdebstrap_argv(spec, PLATFORMS["linux/arm64"], Path("/tmp/rootfs"))
    assert argv[:5] == [
        "mmdebstrap",
        "--mode=root",
        "--format=directory",
        "--variant=minbase",
        "--arch=arm64",
    ]
    assert "--include=python3,python3-venv,python3-pip,ca-certificates,python-is-python3" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    tail = argv[argv.index("bookworm") :]
    assert tail[:2] == ["bookworm", "/tmp/rootfs"]
    assert tail[2].startswith("deb http://deb.debian.org/debian bookworm main")


def test_cache_key_follows_inputs() -> None:
    amd64 = PLATFORMS["linux/amd64"]
    one = resolve_spec(platforms="amd64", source_date_epoch="1")
    assert basespec.cache_key(one, amd64) == basespec.cache_key(one, amd64)
    others = [
        resolve_spec(platforms="amd64", source_date_epoch="2"),
        resolve_spec(platforms="amd64", source_date_epoch="1", suite="trixie"),
        resolve_spec(platforms="amd64", source_date_epoch="1", snapshot="20250101"),
    ]
    keys = {basespec.cache_key(spec, amd64) for spec in [one, *others]}
    assert len(keys) == 4
    assert basespec.cache_key(one, amd64) != basespec.cache_key(one, PLATFORMS["linux/arm64"])


def test_image_config_matches_python_slim_layout() -> None:
    spec = resolve_spec(platforms="linux/arm64", push="r:5000/p:1", source_date_epoch="0")
    layer = LayerBlob(Path("x"), "sha256:aa", "sha256:bb", 1, "3.11.2")
    created = basespec.created_timestamp(spec.source_date_epoch)
    config = basespec.image_config(spec, PLATFORMS["linux/arm64"], layer, created)
    assert created == "1970-01-01T00:00:00Z" == config["created"]
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm64", "v8")
    assert config["config"]["Cmd"] == ["python3"]
    env = config["config"]["Env"]
    assert env[:3] == [f"PATH={basespec.IMAGE_PATH}", "LANG=C.UTF-8", "PYTHON_VERSION=3.11.2"]
    assert not any(e.startswith("PIP_CERT=") for e in env)  # only with --ca-cert
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:bb"]}


def test_ca_cert_env_points_installers_at_the_system_store(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text(PEM)
    spec = resolve_spec(platforms="amd64", ca_cert_files=[str(cert)])
    env = basespec.image_env(spec, "3.11.2")
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in env
    assert "UV_NATIVE_TLS=1" in env


def _tree(root: Path) -> None:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    (root / "usr/bin/tool").chmod(0o4755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-hardlink")
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "dev").mkdir()
    os.mkfifo(root / "dev/fifo")
    (root / "tmp").mkdir()
    (root / "tmp/scratch").write_text("x")
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").write_text("nameserver 10.0.0.1\n")
    (root / "etc/os-release").write_text("ID=debian\n")


def test_layer_is_deterministic_and_clean(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    _tree(root)
    os.utime(root / "etc/os-release", (4_000_000_000, 4_000_000_000))
    first = ocilayout.write_layer(root, tmp_path / "a.tar.gz", source_date_epoch=1_000)
    os.utime(root / "usr/bin/tool", (5_000_000_000, 5_000_000_000))  # later mtimes clamp too
    second = ocilayout.write_layer(root, tmp_path / "b.tar.gz", source_date_epoch=1_000)
    assert first == second
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    digest, diff_id, size = first
    blob = (tmp_path / "a.tar.gz").read_bytes()
    assert digest == "sha256:" + hashlib.sha256(blob).hexdigest() and size == len(blob)

    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "etc/resolv.conf" not in members  # host file
    assert "tmp" in members and "tmp/scratch" not in members  # emptied
    assert "dev" in members and "dev/fifo" not in members
    assert (
        members["usr/bin/python3"].issym() and members["usr/bin/python3"].linkname == "python3.11"
    )
    assert members["usr/bin/tool"].mode == 0o4755
    assert members["usr/bin/tool-hardlink"].islnk()
    assert {m.mtime for m in members.values()} <= {1_000}
    assert {(m.uname, m.gname) for m in members.values()} == {("", "")}


def test_layer_changes_with_the_epoch(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    _tree(root)
    one = ocilayout.write_layer(root, tmp_path / "a.tar.gz", source_date_epoch=1_000)
    two = ocilayout.write_layer(root, tmp_path / "b.tar.gz", source_date_epoch=2_000)
    assert one[0] != two[0]


def _layout(tmp_path: Path, platforms: str) -> tuple[Path, str, list[dict]]:  # type: ignore[type-arg]
    spec = resolve_spec(platforms=platforms, push="r:5000/p:1", source_date_epoch="10")
    layers = []
    for platform in spec.platforms:
        root = tmp_path / f"root-{platform.deb_arch}"
        _tree(root)
        (root / "etc/arch").write_text(platform.deb_arch)
        blob = tmp_path / f"{platform.deb_arch}.tar.gz"
        digest, diff_id, size = ocilayout.write_layer(root, blob, source_date_epoch=10)
        layers.append((platform, LayerBlob(blob, digest, diff_id, size, "3.11.2")))
    layout = tmp_path / "oci"
    top, manifests = ocilayout.write_oci_layout(spec, layers, layout, created="x")
    return layout, top, manifests


def test_oci_layout_multi_platform_index(tmp_path: Path) -> None:
    layout, top, manifests = _layout(tmp_path, "linux/amd64,linux/arm64")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == top
    assert index["manifests"][0]["mediaType"] == basespec.OCI_INDEX
    nested = json.loads((layout / "blobs/sha256" / top.split(":")[1]).read_text())
    assert [m["platform"]["architecture"] for m in nested["manifests"]] == ["amd64", "arm64"]
    for blob in (layout / "blobs/sha256").iterdir():  # every blob is stored under its digest
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert len(manifests) == 2


def test_oci_layout_single_platform_points_at_manifest(tmp_path: Path) -> None:
    layout, top, _ = _layout(tmp_path, "linux/amd64")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["mediaType"] == basespec.OCI_MANIFEST
    assert index["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}


def test_tar_directory_is_deterministic(tmp_path: Path) -> None:
    layout, _, manifests = _layout(tmp_path, "linux/amd64")
    extra = {"manifest.json": ocilayout.docker_archive_manifest("t:1", manifests[0])}
    ocilayout.tar_directory(layout, tmp_path / "a.tar", mtime=10, extra=extra)
    ocilayout.tar_directory(layout, tmp_path / "b.tar", mtime=10, extra=extra)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        manifest = json.loads(handle.read())
        assert manifest[0]["RepoTags"] == ["t:1"]
        assert manifest[0]["Layers"][0] in tar.getnames()


def test_prerequisites_report_missing_mmdebstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseimage.shutil, "which", lambda name: None)
    monkeypatch.setattr(baseimage.os, "geteuid", lambda: 0)
    spec = resolve_spec(platforms="amd64", oci_archive="x.tar")
    with pytest.raises(BackendError, match="mmdebstrap is not installed") as info:
        baseimage.check_prerequisites(spec)
    assert "apt-get install mmdebstrap" in str(info.value)


def test_prerequisites_require_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseimage.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(baseimage.shutil, "which", lambda name: None)
    spec = resolve_spec(platforms="amd64", oci_archive="x.tar")
    with pytest.raises(BackendError, match="must run as root") as info:
        baseimage.check_prerequisites(spec)
    assert "apt-get install mmdebstrap" in str(info.value)


# -------------------------------------------------------------------------- CLI, bad input


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "base-image", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr


def image_exists(tag: str) -> bool:
    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            continue
        proc = subprocess.run([engine, "image", "inspect", tag], capture_output=True, check=False)
        if proc.returncode == 0:
            return True
    return False


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--suite", "sid"], ["--suite", "unknown suite 'sid'", "'bookworm'"]),
        (["--platform", "linux/s390x"], ["--platform", "unsupported platform", "linux/arm64"]),
        (["--platform", "linux/amd64,linux/arm64"], ["--push REF / --oci-archive FILE"]),
        (["--snapshot", "last-tuesday"], ["--snapshot", "YYYYMMDD"]),
        (["--ca-cert", "/nonexistent/ca.pem"], ["/nonexistent/ca.pem", "--ca-cert"]),
    ],
)
def test_cli_rejects_bad_input(args: list[str], needles: list[str], tmp_path: Path) -> None:
    archive = tmp_path / "out.tar"
    tag = f"localhost/pipeline-bad-input:{uuid.uuid4().hex[:8]}"
    proc = run_cli(
        "--tag",
        tag,
        *args,
        *(["--oci-archive", str(archive)] if args[0] != "--platform" else []),
    )
    assert_clean_failure(proc, *needles)
    assert not archive.exists()
    assert not image_exists(tag)


@pytest.mark.skipif(not (IS_ROOT and HAS_MMDEBSTRAP), reason="needs root and mmdebstrap")
def test_cli_unreachable_mirror_tags_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "out.tar"
    tag = f"localhost/pipeline-bad-mirror:{uuid.uuid4().hex[:8]}"
    proc = run_cli(
        "--mirror", "http://127.0.0.1:9/debian", "--tag", tag, "--oci-archive", str(archive)
    )
    assert_clean_failure(proc, "--mirror", "mirror unreachable", "http://127.0.0.1:9/debian")
    assert not archive.exists() and not image_exists(tag)


@pytest.mark.skipif(not (IS_ROOT and HAS_MMDEBSTRAP), reason="needs root and mmdebstrap")
def test_cli_mirror_without_the_suite(tmp_path: Path) -> None:
    proc = run_cli("--suite", "bullseye", "--mirror", "http://deb.debian.org/debian/nowhere")
    assert_clean_failure(proc, "mirror unreachable", "HTTP 404")


def test_cli_missing_mmdebstrap(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with python but no mmdebstrap/debootstrap
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    proc = run_cli("--oci-archive", str(tmp_path / "o.tar"), env={"PATH": str(bin_dir)})
    expected = "mmdebstrap is not installed" if IS_ROOT else "must run as root"
    assert_clean_failure(proc, expected, "apt-get install mmdebstrap")


@pytest.mark.skipif(not IS_ROOT or shutil.which("setpriv") is None, reason="needs root + setpriv")
def _others_can_enter(*paths: Path) -> bool:
    """Whether another user can reach ``paths``: every directory above each is o+x."""
    for path in paths:
        for directory in [path, *path.parents]:
            if directory.is_dir() and not directory.stat().st_mode & 0o001:
                return False
    return True


def test_cli_not_root(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    argv = ["-m", "pipeline", "base-image", "--oci-archive", str(tmp_path / "o.tar")]
    if _others_can_enter(REPO, Path(sys.prefix)):
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
        command += argv
    else:
        # a checkout in a private directory (`mktemp -d` is 0700): user 65534 cannot import
        # the package there, so the same CLI runs in its own process with the uid it reads set
        code = (
            "import os, runpy, sys; os.geteuid = lambda: 65534; "
            "sys.argv = ['pipeline', *sys.argv[1:]]; "
            "runpy.run_module('pipeline', run_name='__main__')"
        )
        command = [sys.executable, "-c", code, *argv[2:]]
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert_clean_failure(proc, "base-image must run as root")
    assert not (tmp_path / "o.tar").exists()


# ------------------------------------------------------------------------- real build (slow)


def _testbed_bootstrap() -> tuple[Path, str, dict[str, object]] | None:
    """The inputs the test bed bootstrapped its bookworm base image with (the machine's CA
    bundle, its SOURCE_DATE_EPOCH) and the layer it got, when this machine has them."""
    cache = os.environ.get("PIPELINE_TESTBED_BASE_IMAGE_CACHE")
    epoch = os.environ.get("PIPELINE_TESTBED_SOURCE_DATE_EPOCH")
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not (cache and epoch and bundle.is_file() and bundle.stat().st_size):
        return None
    spec = resolve_spec(ca_cert_files=[str(bundle)], source_date_epoch=epoch)
    meta = Path(cache) / f"{basespec.cache_key(spec, spec.platforms[0])}.json"
    if not meta.is_file():
        return None
    return bundle, epoch, json.loads(meta.read_text())


def _pem_lines(text: str) -> list[str]:
    """A line from the middle of each certificate in a PEM bundle."""
    blocks = text.split("-----BEGIN CERTIFICATE-----")[1:]
    lines = [block.split("-----END")[0].split() for block in blocks]
    return [body[len(body) // 2] for body in lines if body]


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.skipif(not (IS_ROOT and HAS_MMDEBSTRAP), reason="needs root and mmdebstrap")
def test_build_loads_a_python_slim_lookalike(tmp_path: Path) -> None:
    """One fresh bootstrap (no layer cache), loaded into docker and written as an OCI archive.

    Reproducible: on the test bed it is bootstrapped with the test bed's inputs and must give
    exactly the layer the test bed's own bootstrap got (its cache); elsewhere a second fresh
    bootstrap with a throw-away CA must give a bit-for-bit equal archive."""
    testbed = _testbed_bootstrap()
    if testbed is not None:
        cert, epoch, reference = testbed
    else:
        key, cert, epoch, reference = tmp_path / "ca.key", tmp_path / "ca.pem", "1700000000", None
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=pipeline test CA", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    tag = f"localhost/pipeline-base-image-test:{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "image.tar"
    # A Debian bootstrap plus a load into docker: several minutes on a slow CI machine.
    proc = run_cli(
        "--tag", tag, "--load", "docker", "--oci-archive", str(archive), "--ca-cert", str(cert),
        env={"SOURCE_DATE_EPOCH": epoch}, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        script = (
            "set -e; for c in python python3 pip; do command -v $c; done; python --version; "
            "echo $LANG; mkdir /tmp/p; cd /tmp/p; "
            'echo \'from setuptools import setup; setup(name="x", version="1")\' > setup.py; '
            "pip install --quiet --no-build-isolation --no-index . && echo pip-allowed; "
            "python -m venv /tmp/v && /tmp/v/bin/python -c 'print(\"venv-ok\")'"
        )
        run = subprocess.run(
            ["docker", "run", "--rm", tag, "sh", "-c", script],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        out = run.stdout.splitlines()
        assert out[:3] == ["/usr/local/bin/python", "/usr/local/bin/python3", "/usr/local/bin/pip"]
        assert out[3].startswith("Python 3.11.")
        assert "C.UTF-8" in out and "pip-allowed" in out and "venv-ok" in out
        with tarfile.open(archive) as tar:
            names = tar.getnames()
        assert "index.json" in names and "oci-layout" in names
        # Every certificate given with --ca-cert is in the image's system bundle.
        trusted = subprocess.run(
            ["docker", "run", "--rm", tag, "cat", "/etc/ssl/certs/ca-certificates.crt"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        wanted = _pem_lines(cert.read_text())
        assert wanted and [line for line in wanted if line not in trusted] == []
        inspect = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", tag], capture_output=True, text=True, check=True
            ).stdout
        )[0]
        created = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
        assert inspect["Created"].startswith(created.strftime("%Y-%m-%dT%H:%M:%S"))
        assert inspect["Config"]["Cmd"] == ["python3"]

        if reference is not None:
            # Reproducible: the same layer, byte for byte, as the test bed's own bootstrap.
            digest = str(reference["digest"]).removeprefix("sha256:")
            assert f"blobs/sha256/{digest}" in names
        else:
            # Reproducible: a second fresh bootstrap (same packages, same epoch) is equal.
            again = tmp_path / "again.tar"
            proc = run_cli(
                "--tag", tag, "--oci-archive", str(again), "--ca-cert", str(cert),
                env={"SOURCE_DATE_EPOCH": epoch}, timeout=900,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert (
                hashlib.sha256(again.read_bytes()).digest()
                == hashlib.sha256(archive.read_bytes()).digest()
            )
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


# ------------------------------------------- delivery to real engines, from a seeded cache
# The layer cache lets these run without mmdebstrap: a small fake rootfs is cached under the
# key the spec would use, so build_base_image goes straight to load / push / archive.


def seed_cache(spec: basespec.BaseImageSpec, cache: Path, tmp_path: Path) -> None:
    for platform in spec.platforms:
        root = tmp_path / f"fake-{platform.deb_arch}"
        _tree(root)
        (root / "etc/arch").write_text(platform.deb_arch)
        key = basespec.cache_key(spec, platform)
        cache.mkdir(parents=True, exist_ok=True)
        blob = cache / f"{key}.tar.gz"
        digest, diff_id, size = ocilayout.write_layer(root, blob, source_date_epoch=5)
        meta = {"digest": digest, "diff_id": diff_id, "size": size, "python": "3.11.99"}
        (cache / f"{key}.json").write_text(json.dumps(meta))


def quiet(message: str) -> None:
    pass


@pytest.mark.parametrize(
    "engine", [pytest.param(e, marks=getattr(pytest.mark, e)) for e in ("docker", "podman")]
)
def test_load_into_engine_from_cache(engine: str, tmp_path: Path) -> None:
    tag = f"localhost/pipeline-load-test:{uuid.uuid4().hex[:8]}"
    spec = resolve_spec(platforms="amd64", tag=tag, load=engine, source_date_epoch="5")
    seed_cache(spec, tmp_path / "cache", tmp_path)
    try:
        result = baseimage.build_base_image(
            spec, cache_dir=tmp_path / "cache", progress=quiet, check=False
        )
        assert result.outputs[0].target == engine
        proc = subprocess.run(
            [engine, "image", "inspect", tag], capture_output=True, text=True, check=True
        )
        image = json.loads(proc.stdout)[0]
        config = image.get("Config") or image["ContainerConfig"]
        assert config["Cmd"] == ["python3"]
        assert "PYTHON_VERSION=3.11.99" in config["Env"]
        assert image["Architecture"] == "amd64"
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, check=False)


@pytest.mark.registry
@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_push_multi_platform_manifest_list(registry_url: str, tmp_path: Path) -> None:
    ref = f"{registry_url}/pipeline-test/fake-python:{uuid.uuid4().hex[:8]}"
    archive = tmp_path / "image.tar"
    spec = resolve_spec(
        platforms="linux/amd64,linux/arm64",
        push=ref,
        oci_archive=str(archive),
        source_date_epoch="5",
    )
    seed_cache(spec, tmp_path / "cache", tmp_path)
    result = baseimage.build_base_image(
        spec, cache_dir=tmp_path / "cache", progress=quiet, check=False
    )
    repository, tag = ref.split("/", 1)[1].rsplit(":", 1)
    request = urllib.request.Request(
        f"http://{registry_url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": basespec.OCI_INDEX},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        index = json.loads(response.read())
        assert response.headers["Docker-Content-Digest"] == result.digest
    platforms = [
        (m["platform"]["architecture"], m["platform"].get("variant")) for m in index["manifests"]
    ]
    assert platforms == [("amd64", None), ("arm64", "v8")]
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("index.json")
        assert handle is not None
        top = json.loads(handle.read())["manifests"][0]
    assert top["digest"] == result.digest
    assert top["annotations"][basespec.REF_NAME] == spec.tag


def test_build_layer_fills_and_reuses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def fake_bootstrap(
        spec: basespec.BaseImageSpec, platform: basespec.Platform, dest: Path, **kw: object
    ) -> None:
        calls.append(platform.name)
        _tree(dest)
        (dest / "var/lib/dpkg").mkdir(parents=True)
        (dest / "var/lib/dpkg/status").write_text(
            "Package: python3.11\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n"
        )

    monkeypatch.setattr(baseimage, "bootstrap_rootfs", fake_bootstrap)
    spec = resolve_spec(platforms="amd64", oci_archive="x.tar", source_date_epoch="7")
    amd64 = PLATFORMS["linux/amd64"]
    cache = tmp_path / "cache"
    work = tmp_path / "work"
    work.mkdir()
    first = baseimage.build_layer(spec, amd64, work, cache_dir=cache, progress=quiet, verbose=False)
    assert first.python_version == "3.11.2"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f"{basespec.cache_key(spec, amd64)}.json", f"{basespec.cache_key(spec, amd64)}.tar.gz"]
    )
    assert not (work / "rootfs-amd64").exists()  # the rootfs is removed after tarring
    second = baseimage.build_layer(
        spec, amd64, work, cache_dir=cache, progress=quiet, verbose=False
    )
    assert calls == ["linux/amd64"]
    assert (second.digest, second.diff_id, second.size) == (first.digest, first.diff_id, first.size)
