"""Build contexts (write_context / temporary_context) and the entrypoint script."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.config import Bento, DockerOptions
from pipeline.errors import ConfigError
from pipeline.plan import (
    CA_CERT_SECRET_ID,
    RenderOptions,
    entrypoint_script,
    render_dockerfile,
    temporary_context,
    write_context,
)


def make_bento(root: Path, **docker: object) -> Bento:
    (root / "src").mkdir(parents=True)
    (root / "bento.yaml").write_text("service: service:svc\n", encoding="utf-8")
    (root / "src" / "service.py").write_text("print('hi')\n", encoding="utf-8")
    options = {"python_version": "3.11", **docker}
    return Bento(
        name="demo",
        version="v1",
        path=root,
        docker=DockerOptions(**options),  # type: ignore[arg-type]
    )


def test_ca_cert_secret_id() -> None:
    assert CA_CERT_SECRET_ID == "ca_cert"
    assert RenderOptions() == RenderOptions(
        template=None, buildkit=True, ca_cert=False, strict=False
    )


def test_write_context_contents(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    dockerfile = render_dockerfile(bento)
    dest = write_context(bento, tmp_path / "ctx", dockerfile)
    assert dest == tmp_path / "ctx"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == [
        "Dockerfile",
        "bento.yaml",
        "env/docker/entrypoint.sh",
        "env/python/requirements.txt",
        "src/service.py",
    ]
    assert (dest / "Dockerfile").read_text(encoding="utf-8") == dockerfile
    entrypoint = dest / "env/docker/entrypoint.sh"
    assert entrypoint.stat().st_mode & stat.S_IXUSR
    assert entrypoint.read_text(encoding="utf-8") == entrypoint_script()
    assert (dest / "env/python/requirements.txt").read_text(encoding="utf-8") == ""
    # nothing left next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento", "ctx"]


def test_write_context_into_an_empty_directory(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (tmp_path / "ctx").mkdir()
    write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert (tmp_path / "ctx" / "Dockerfile").read_text(encoding="utf-8") == "FROM scratch\n"


def test_write_context_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    dest = tmp_path / "ctx"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match="not empty"):
        write_context(bento, dest, "FROM scratch\n")
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_write_context_is_all_or_nothing(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    outside = tmp_path / "secret.txt"
    outside.write_text("s3cr3t", encoding="utf-8")
    (bento.path / "src" / "zz-link").symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink points outside the bento"):
        write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento", "secret.txt"]


def test_write_context_failure_removes_the_parents_it_created(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (bento.path / "src" / "zz-link").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="symlink points outside the bento"):
        write_context(bento, tmp_path / "new" / "deeper" / "ctx", "FROM scratch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento"]


def test_symlink_inside_the_bento_is_copied_as_a_file(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (bento.path / "src" / "alias.py").symlink_to(bento.path / "src" / "service.py")
    dest = write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    copied = dest / "src" / "alias.py"
    assert not copied.is_symlink() and copied.read_text(encoding="utf-8") == "print('hi')\n"


def test_symlink_outside_inside_a_linked_directory_is_refused(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    inner = bento.path / "data"
    inner.mkdir()
    (inner / "leak").symlink_to(tmp_path)
    (bento.path / "src" / "data-link").symlink_to(inner)
    with pytest.raises(ConfigError, match="outside the bento"):
        write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert not (tmp_path / "ctx").exists()


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    (bento.path / "src" / "loop").symlink_to(bento.path / "src")
    with pytest.raises(ConfigError, match="symlink loop"):
        write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bento"]


def test_setup_script_lands_at_its_fixed_place(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento", setup_script="scripts/setup.sh")
    script = bento.path / "scripts" / "setup.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho setup\n", encoding="utf-8")
    dest = write_context(bento, tmp_path / "ctx", render_dockerfile(bento))
    copied = dest / "env/docker/setup_script"
    assert copied.read_text(encoding="utf-8") == "#!/bin/sh\necho setup\n"
    assert copied.stat().st_mode & stat.S_IXUSR


def test_requirements_from_config_are_written(tmp_path: Path) -> None:
    root = tmp_path / "bento"
    bento = make_bento(root)
    from attrs import evolve

    from pipeline.config import PythonOptions

    bento = evolve(bento, python=PythonOptions(packages=("six==1.16.0",), requirements_text="a\n"))
    dest = write_context(bento, tmp_path / "ctx", "FROM scratch\n")
    assert (dest / "env/python/requirements.txt").read_text(encoding="utf-8") == "a\nsix==1.16.0\n"


def test_temporary_context_is_removed(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    with temporary_context(bento, "FROM scratch\n") as ctx:
        assert (ctx / "Dockerfile").is_file()
        holder = ctx.parent
    assert not holder.exists()


def test_temporary_context_is_removed_on_error(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento")
    with pytest.raises(RuntimeError), temporary_context(bento, "FROM scratch\n") as ctx:
        raise RuntimeError("boom")
    assert not ctx.exists()


def test_render_is_pure(tmp_path: Path) -> None:
    bento = make_bento(tmp_path / "bento", system_packages=("curl",))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert render_dockerfile(bento) == render_dockerfile(bento)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# -- the entrypoint script, run for real with a stand-in `bentoml` ---------------------------------


@pytest.fixture
def run_entrypoint(tmp_path: Path):  # type: ignore[no-untyped-def]
    script = tmp_path / "entrypoint.sh"
    script.write_text(entrypoint_script(), encoding="utf-8")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bentoml"
    fake.write_text('#!/bin/sh\necho "bentoml $*"\n', encoding="utf-8")
    fake.chmod(0o755)

    def run(*args: str, port: str | None = None) -> str:
        env = {"PATH": f"{bindir}:{os.environ['PATH']}", "BENTO_PATH": "/b"}
        if port is not None:
            env["PORT"] = port
        done = subprocess.run(
            ["sh", str(script), *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    return run


def test_entrypoint_serves_without_arguments(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert run_entrypoint() == "bentoml serve /b"


def test_entrypoint_serves_with_only_flags(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert (
        run_entrypoint("--production", "--workers", "2")
        == "bentoml serve /b --production --workers 2"
    )


def test_entrypoint_honours_port(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert run_entrypoint(port="8080") == "bentoml serve /b --port 8080"
    assert run_entrypoint("--port", "1", port="8080") == "bentoml serve /b --port 1"
    assert (
        run_entrypoint("bentoml", "serve", "/b", "--production", port="9")
        == "bentoml serve /b --production --port 9"
    )


def test_entrypoint_runs_other_commands(run_entrypoint) -> None:  # type: ignore[no-untyped-def]
    assert run_entrypoint("echo", "hello world") == "hello world"
    assert run_entrypoint("echo", "x", port="1") == "x"


@pytest.mark.parametrize("args", [(), ("bentoml", "serve", "/b", "--production")])
def test_entrypoint_explains_a_missing_bentoml(tmp_path: Path, args: tuple[str, ...]) -> None:
    script = tmp_path / "entrypoint.sh"
    script.write_text(entrypoint_script(), encoding="utf-8")
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        ["/bin/sh", str(script), *args],
        env={"PATH": str(empty), "BENTO_PATH": "/b"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 127
    assert "'bentoml' is not installed in this image" in done.stderr
    assert "python.packages" in done.stderr and "docker run IMAGE" in done.stderr
