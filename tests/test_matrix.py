"""pipeline.matrix: cell expansion and skips (pure), bad input, and the runner (concurrency,
failures, --fail-fast, cancellation) on a real process through a registered ``sh`` backend."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import pipeline
from pipeline.backends import registry
from pipeline.backends.base import native_platform
from pipeline.bento import list_bentos
from pipeline.cli import main
from pipeline.config import Bento, DockerOptions
from pipeline.errors import ConfigError
from pipeline.matrix import (
    DEFAULT_TAG_TEMPLATE,
    Cell,
    amatrix,
    expand_matrix,
    matrix,
)

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello"
SH_BACKEND = "matrix-sh"


def make_bento(tmp_path: Path, **docker: object) -> Bento:
    options = DockerOptions(**{"distro": "debian", "python_version": "3.11", **docker})  # type: ignore[arg-type]
    return Bento(name="Svc", version="1.0", path=tmp_path, docker=options)


@pytest.fixture(autouse=True)
def _env(isolated_build_env: Path) -> None:
    """Own store, own temp dir, no backend from the environment (tests/conftest.py)."""


# ---------------------------------------------------------------------------------------------
# Expansion (pure)


def test_axes_left_out_are_the_bentos_own_values(tmp_path: Path) -> None:
    plan = expand_matrix(make_bento(tmp_path, distro="alpine", python_version="3.12"))
    [planned] = plan.cells
    assert planned.cell == Cell(native_platform(), "3.12", "alpine", None)
    arch = native_platform().split("/")[1]
    assert planned.tag == f"svc:1.0-py3.12-alpine-{arch}"  # the default template, name lowercased
    assert DEFAULT_TAG_TEMPLATE == "{name}:{version}-py{python}-{distro}{cuda}-{arch}"


def test_cells_are_the_product_in_order_with_their_own_docker_options(tmp_path: Path) -> None:
    plan = expand_matrix(
        make_bento(tmp_path),
        platforms="linux/amd64,arm64",
        python_versions=["3.11", "3.12"],
        distros="debian,alpine",
    )
    keys = [p.cell.key for p in plan.cells]
    assert keys == [
        "py3.11-debian-amd64", "py3.11-debian-arm64", "py3.11-alpine-amd64",
        "py3.11-alpine-arm64", "py3.12-debian-amd64", "py3.12-debian-arm64",
        "py3.12-alpine-amd64", "py3.12-alpine-arm64",
    ]  # fmt: skip
    assert all(p.runnable for p in plan.cells)
    last = plan.cells[-1]
    assert (last.bento.docker.python_version, last.bento.docker.distro) == ("3.12", "alpine")
    assert last.tag == "svc:1.0-py3.12-alpine-arm64"
    assert len({p.tag for p in plan.cells}) == 8


def test_cells_a_distro_cannot_do_are_skipped_with_the_reason(tmp_path: Path) -> None:
    plan = expand_matrix(
        make_bento(tmp_path),
        platforms="amd64,s390x",
        python_versions="3.11,3.13",
        distros="debian,ubi8",
        cuda_versions="none,12.8",
    )
    skipped = {p.cell.key: p.skip_reason for p in plan.cells if not p.runnable}
    # the loader's own message for python_version on ubi8, with what is supported
    assert skipped["py3.13-ubi8-amd64"] == (
        "Python 3.13 is not supported on ubi8 (supported on ubi8: '3.9', '3.11' or '3.12')"
    )
    assert "s390x is not supported by ubi8" in str(skipped["py3.11-ubi8-s390x"])
    assert "s390x is not supported by debian CUDA images" in str(
        skipped["py3.11-debian-cuda12.8.1-s390x"]
    )
    assert "py3.11-debian-s390x" not in skipped  # debian has s390x python images
    ok = [p for p in plan.cells if p.runnable]
    assert all(p.tag for p in ok) and not any(p.tag for p in plan.cells if not p.runnable)
    cuda_cell = next(p for p in ok if p.cell.key == "py3.11-debian-cuda12.8.1-amd64")
    assert cuda_cell.bento.docker.cuda_version == "12.8.1"  # normalized like the loader does
    assert cuda_cell.tag == "svc:1.0-py3.11-debian-cuda12.8.1-amd64"


def test_cuda_on_a_distro_without_cuda_images_is_skipped(tmp_path: Path) -> None:
    plan = expand_matrix(make_bento(tmp_path), distros="debian,alpine", cuda_versions="12")
    reasons = {p.cell.distro: p.skip_reason for p in plan.cells}
    assert reasons["debian"] is None
    assert (
        reasons["alpine"]
        == "distro 'alpine' has no CUDA images (distros with CUDA: 'debian' or 'ubi8')"
    )


def test_equal_versions_give_one_cell(tmp_path: Path) -> None:
    plan = expand_matrix(
        make_bento(tmp_path),
        platforms="amd64",
        python_versions="3.11,3.11.4",
        cuda_versions="12.8,12.8.1",
    )
    assert [p.cell.key for p in plan.cells] == ["py3.11-debian-cuda12.8.1-amd64"]


def test_tag_template_placeholders(tmp_path: Path) -> None:
    plan = expand_matrix(
        make_bento(tmp_path),
        platforms="amd64",
        cuda_versions="none,12",
        tag_template="127.0.0.1:5000/x/{name}:{version}-{python_nodot}-{cuda_version}{os}-{platform}",
    )
    assert [p.tag for p in plan.cells] == [
        "127.0.0.1:5000/x/svc:1.0-311-linux-linux-amd64",
        "127.0.0.1:5000/x/svc:1.0-311-12.8.1linux-linux-amd64",
    ]


def test_a_bento_with_its_own_base_image_varies_only_the_platform(tmp_path: Path) -> None:
    bento = make_bento(tmp_path, base_image="example.com/base:1", distro=None, python_version=None)
    plan = expand_matrix(bento, platforms="amd64,arm64")
    assert [(p.cell.key, p.tag) for p in plan.cells] == [
        ("amd64", "svc:1.0-amd64"),
        ("arm64", "svc:1.0-arm64"),
    ]
    with pytest.raises(ConfigError) as info:
        expand_matrix(bento, python_versions="3.12")
    assert info.value.field == "--python"
    assert "base_image 'example.com/base:1'" in info.value.message


@pytest.mark.parametrize(
    ("axes", "field", "expected"),
    [
        ({"distros": "debain"}, "--distro", "unknown distro 'debain' (did you mean 'debian'?)"),
        ({"python_versions": "2.7"}, "--python", "no distro has Python 2.7"),
        ({"python_versions": "3"}, "--python", "'3' is not a Python version"),
        ({"python_versions": "3.11,"}, "--python", "empty value"),
        ({"cuda_versions": "99"}, "--cuda", "no distro has CUDA 99"),
        ({"cuda_versions": "12", "distros": "alpine"}, None, "every cell of the matrix is skipped"),
        ({"platforms": "linux/arm/v7"}, "--platform", "no distro has images for linux/arm/v7"),
        ({"platforms": "sparc"}, "--platform", "malformed platform 'sparc'"),
        ({"python_versions": "3.13", "distros": "ubi8"}, None, "3.13 is not supported on ubi8"),
        ({"tag_template": "{nme}:{arch}"}, "--tag-template", "unknown placeholder {nme}"),
        ({"tag_template": "{name}:{arch"}, "--tag-template", "malformed tag template"),
        ({"tag_template": "{name}:{arch}!"}, "--tag-template", "invalid image tag"),
    ],
)
def test_bad_input_is_a_config_error_naming_the_option(
    tmp_path: Path, axes: dict[str, str], field: str | None, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        expand_matrix(make_bento(tmp_path), **axes)
    assert info.value.field == field
    assert expected in str(info.value)


def test_unknown_distro_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        expand_matrix(make_bento(tmp_path), distros="debian,fedora")
    assert info.value.hint == "allowed: 'debian', 'alpine', 'ubi8', 'amazonlinux' or 'miniconda'"


def test_a_template_that_gives_two_cells_one_tag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        expand_matrix(
            make_bento(tmp_path), python_versions="3.11,3.12", tag_template="{name}:{arch}"
        )
    assert info.value.field == "--tag-template"
    assert "the same tag 'svc:" in info.value.message
    assert "{python}" in str(info.value.hint)


# ---------------------------------------------------------------------------------------------
# Running cells: a registered backend whose "engine" is sh (real processes, no containers)

SCRIPT = r"""
tag="$1"; platform="$2"; dir="$3"
echo "building $tag for $platform"
touch "$dir/running-$$"
echo "$(ls "$dir" | grep -c '^running-')" >> "$dir/concurrency"
echo $$ > "$dir/pid-$(echo "$tag" | tr ':/' '__')"
case "$tag" in *{fail}*) rm -f "$dir/running-$$"; echo "RUN step failed on $platform"; exit 3;; esac
sleep {seconds}
rm -f "$dir/running-$$"
echo "done $tag"
"""


@pytest.fixture
def sh_backend(tmp_path: Path) -> Iterator[dict[str, object]]:
    """``matrix-sh``: runs SCRIPT with the tag and platform; ``settings`` tune it per test."""
    work = tmp_path / "sh-work"
    work.mkdir()
    settings: dict[str, object] = {"dir": work, "fail": "no-cell-fails", "seconds": "0.3"}

    def construct(tag: tuple[str, ...], platform: tuple[str, ...], **_: object) -> list[str]:
        script = SCRIPT.replace("{fail}", str(settings["fail"])).replace(
            "{seconds}", str(settings["seconds"])
        )
        return ["sh", "-c", script, "sh", tag[0], platform[0], str(work)]

    pipeline.register_backend(
        SH_BACKEND,
        binary="sh",
        buildkit_support=False,
        health=lambda: True,
        construct_build_args=construct,
    )
    try:
        yield settings
    finally:
        registry.unregister_backend(SH_BACKEND)


def _cells(result: pipeline.MatrixResult) -> dict[str, tuple[str, str | None]]:
    return {row.cell.key: (row.status, row.error) for row in result.rows}


def test_a_failed_cell_does_not_stop_the_others(sh_backend: dict[str, object]) -> None:
    sh_backend["fail"] = "arm64"
    lines: list[tuple[str, str]] = []
    result = pipeline.matrix(
        HELLO,
        backend=SH_BACKEND,
        platforms="amd64,arm64,ppc64le",
        python_versions="3.11",
        on_output=lambda cell, line: lines.append((cell.key, line)),
    )
    status = {k: v[0] for k, v in _cells(result).items()}
    assert status == {
        "py3.11-debian-amd64": "ok",
        "py3.11-debian-arm64": "failed",
        "py3.11-debian-ppc64le": "ok",
    }
    assert not result.ok
    failed = result.by_status("failed")[0]
    assert "exit 3" in str(failed.error) or "RUN step failed on linux/arm64" in str(failed.error)
    assert failed.result is None and failed.duration > 0
    ok = result.by_status("ok")[0]
    assert ok.result is not None and ok.result.platforms == ("linux/amd64",)
    assert ok.tag == ok.result.tags[0] and ok.tag.endswith("-py3.11-debian-amd64")
    # each cell's output is attributed to it
    assert ("py3.11-debian-ppc64le", f"done {result.rows[2].tag}") in lines
    assert json.loads(json.dumps(result.to_json()))["counts"] == {
        "ok": 2, "failed": 1, "skipped": 0, "cancelled": 0,
    }  # fmt: skip


def test_fail_fast_cancels_the_rest(sh_backend: dict[str, object]) -> None:
    sh_backend["fail"] = "amd64"
    sh_backend["seconds"] = "30"
    started = time.monotonic()
    result = matrix(
        HELLO,
        backend=SH_BACKEND,
        platforms="amd64,arm64,ppc64le,s390x",
        concurrency=1,
        fail_fast=True,
    )
    assert time.monotonic() - started < 20
    assert [row.status for row in result.rows] == ["failed", "cancelled", "cancelled", "cancelled"]
    assert result.rows[1].error == "cancelled by --fail-fast"


def test_concurrency_bounds_the_running_cells(sh_backend: dict[str, object]) -> None:
    work = Path(str(sh_backend["dir"]))
    sh_backend["seconds"] = "0.6"
    result = matrix(HELLO, backend=SH_BACKEND, platforms="amd64,arm64,ppc64le,s390x", concurrency=2)
    assert result.ok and len(result.by_status("ok")) == 4
    seen = [int(n) for n in (work / "concurrency").read_text().split()]
    assert max(seen) == 2, seen

    (work / "concurrency").unlink()
    matrix(HELLO, backend=SH_BACKEND, platforms="amd64,arm64,ppc64le", concurrency=1)
    assert max(int(n) for n in (work / "concurrency").read_text().split()) == 1


def test_cancelling_stops_every_running_build(sh_backend: dict[str, object]) -> None:
    work = Path(str(sh_backend["dir"]))
    sh_backend["seconds"] = "60"

    async def main_task() -> None:
        with anyio.move_on_after(4):
            await amatrix(HELLO, backend=SH_BACKEND, platforms="amd64,arm64", concurrency=2)
            raise AssertionError("the matrix should have been cancelled")

    started = time.monotonic()
    anyio.run(main_task)
    assert time.monotonic() - started < 30
    pids = [int(p.read_text()) for p in work.glob("pid-*")]
    assert len(pids) == 2
    time.sleep(0.5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_project_is_built_into_the_store_once(sh_backend: dict[str, object]) -> None:
    result = matrix(HELLO, backend=SH_BACKEND, platforms="amd64,arm64", python_versions="3.11,3.12")
    assert len(result.rows) == 4 and result.ok
    assert [b.name for b in list_bentos()] == ["hello"]
    assert result.bento == list_bentos()[0].tag


def test_a_bad_matrix_stores_nothing_and_builds_nothing(
    sh_backend: dict[str, object], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError):
        matrix(HELLO, backend=SH_BACKEND, distros="debian,nope")
    assert list_bentos() == []
    assert not (Path(str(sh_backend["dir"])) / "concurrency").exists()


def test_options_a_cell_cannot_share_are_refused(sh_backend: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        matrix(HELLO, backend=SH_BACKEND, tags=["x:1"])
    assert "tag_template" in str(info.value)
    with pytest.raises(ConfigError) as info:
        matrix(HELLO, backend=SH_BACKEND, output="type=local,dest=out")
    assert info.value.field == "--output" and "same destination" in info.value.message
    for name, value, flag in (
        ("iidfile", "/tmp/id", "--iidfile"),
        ("metadata_file", "/tmp/meta.json", "--metadata-file"),
        ("quiet", True, "--quiet"),
    ):
        with pytest.raises(ConfigError) as info:
            matrix(HELLO, backend=SH_BACKEND, **{name: value})
        assert info.value.field == flag, name
    with pytest.raises(ConfigError) as info:
        matrix(HELLO, backend=SH_BACKEND, concurrency=0)
    assert info.value.field == "--concurrency"
    with pytest.raises(ConfigError) as info:  # ordinary build options are validated up front
        matrix(HELLO, backend=SH_BACKEND, build_args=["NOEQUALS"])
    assert info.value.field == "--build-arg"


def test_pipeline_matrix_is_the_function_even_after_the_module_is_imported() -> None:
    import pipeline.matrix as module

    assert callable(pipeline.matrix) and callable(module)
    assert pipeline.amatrix is amatrix


@pytest.mark.parametrize(
    "first",
    [
        "",
        "import pipeline.matrix",
        "from pipeline.matrix import dry_run_matrix",
        "pipeline.amatrix",
    ],
)
def test_pipeline_matrix_is_callable_and_has_the_modules_names_whatever_comes_first(
    first: str,
) -> None:
    code = (
        "import pipeline\n"
        f"{first}\n"
        "assert callable(pipeline.matrix) and pipeline.matrix.expand_matrix\n"
        "import pipeline.matrixbuild as impl\n"
        "assert pipeline.matrix.matrix is impl.matrix and pipeline.amatrix is impl.amatrix\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_pipeline_matrix_exports_every_public_name_of_the_implementation() -> None:
    import pipeline.matrix as face
    import pipeline.matrixbuild as impl
    import pipeline.matrixcells as cells

    defined: set[str] = set()
    sources = [Path(str(module.__file__)).read_text(encoding="utf-8") for module in (impl, cells)]
    for node in [node for source in sources for node in ast.parse(source).body]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {target.id for target in targets if isinstance(target, ast.Name)}
    public = {name for name in defined if not name.startswith("_")}
    assert public <= set(face.__all__), sorted(public - set(face.__all__))
    for name in face.__all__:
        home = impl if hasattr(impl, name) else cells
        assert getattr(face, name) is getattr(home, name), name


# ---------------------------------------------------------------------------------------------
# CLI (in process, so the registered backend is visible)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_dry_run_prints_each_cells_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "matrix", str(HELLO), "--backend", "podman", "--dry-run",
        "--platform", "linux/amd64,linux/s390x", "--cuda", "none", "--cuda", "12.8",
        "--python", "3.11",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0] == "# backend: podman"
    commands = [line for line in out.splitlines() if line.startswith("podman build")]
    assert len(commands) == 2
    # the engine's checks run: no s390x emulation here, so that cell's build would fail
    assert "# py3.11-debian-s390x: would fail: podman cannot build for linux/s390x" in out
    assert "-py3.11-debian-cuda12.8.1-amd64 --platform linux/amd64" in commands[1]
    assert "# py3.11-debian-cuda12.8.1-s390x: skipped: s390x is not supported" in out


def test_cli_dry_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "matrix", str(HELLO), "--backend", "docker", "--dry-run", "--output", "json",
        "--python", "3.11,3.12", "--platform", "amd64", "-t", "m/{name}:{python}",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert [c["tag"] for c in data["cells"]] == ["m/hello:3.11", "m/hello:3.12"]
    assert "FROM python:3.12-slim" in data["cells"][1]["dockerfile"]
    assert "docker build" in data["cells"][1]["command"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--distro", "debain"], "--distro: unknown distro 'debain' (did you mean 'debian'?)"),
        (["--python", "2.7"], "--python: no distro has Python 2.7"),
        (["-t", "{bogus}"], "unknown placeholder {bogus}"),
        (["--secret", "id=x,src=/no/such/file"], "does not exist"),
        (["--backend", "kaniko"], "kaniko"),
    ],
)
def test_cli_bad_input_exits_2_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "matrix", str(HELLO), "--dry-run", "--backend", "docker", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert out == ""
    assert list_bentos() == []


def test_cli_table_and_exit_1_when_a_cell_failed(
    capsys: pytest.CaptureFixture[str], sh_backend: dict[str, object]
) -> None:
    sh_backend["fail"] = "arm64"
    code, out, err = run(
        capsys, "matrix", str(HELLO), "--backend", SH_BACKEND, "--platform", "amd64,arm64",
        "--python", "3.11", "--distro", "debian,ubi8", "--progress", "plain",
    )  # fmt: skip
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["CELL", "PLATFORM", "STATUS", "TAG", "SECONDS", "NOTE"]
    table = {line.split()[0]: line.split()[2] for line in lines[1:-1]}
    assert table == {
        "py3.11-debian-amd64": "ok",
        "py3.11-debian-arm64": "failed",
        "py3.11-ubi8-amd64": "ok",
        "py3.11-ubi8-arm64": "failed",
    }
    assert lines[-1].endswith("s") and "2 ok, 2 failed" in lines[-1]
    assert "[py3.11-debian-arm64] RUN step failed on linux/arm64" in err
    assert "[py3.11-debian-arm64] error:" in err


def test_cli_json_result_and_exit_0(
    capsys: pytest.CaptureFixture[str], sh_backend: dict[str, object]
) -> None:
    code, out, err = run(
        capsys, "matrix", str(HELLO), "--backend", SH_BACKEND, "--platform", "amd64,s390x",
        "--cuda", "12.8", "--output", "json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] is True and data["backend"] == SH_BACKEND
    rows = {c["cell"].rsplit("-", 1)[1]: c for c in data["cells"]}
    assert rows["amd64"]["status"] == "ok" and rows["amd64"]["cuda"] == "12.8.1"
    assert rows["amd64"]["result"]["platforms"] == ["linux/amd64"]
    assert rows["s390x"]["status"] == "skipped"
    assert "not supported by debian CUDA images" in rows["s390x"]["error"]


def test_the_example_script_plans_four_cells(tmp_path: Path) -> None:
    script = ROOT / "examples" / "matrix" / "build_matrix.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--backend", "docker", "--dry-run"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        env={**os.environ, "BENTOML_HOME": str(tmp_path / "example-store")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = [line.split(":", 1)[0] for line in proc.stdout.splitlines()]
    assert cells == [
        "py3.11-debian-amd64", "py3.11-debian-arm64", "py3.12-debian-amd64", "py3.12-debian-arm64"
    ]  # fmt: skip
    assert "--tag localhost/hello-matrix:3.12-arm64 --platform linux/arm64" in proc.stdout


@pytest.mark.podman
def test_a_platform_the_engine_cannot_build_is_bad_input(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.backends.base import local_platforms

    if "linux/s390x" in local_platforms():
        pytest.skip("this machine emulates s390x")
    code, out, err = run(
        capsys, "matrix", str(HELLO), "--backend", "podman", "--platform", "amd64,s390x"
    )
    assert code == 2 and out == ""
    assert "--platform: podman cannot build for linux/s390x on this machine" in err
    assert list_bentos() == []  # checked before the project entered the store
