"""The user's --iidfile / --metadata-file: one flag on the command line, the user's file written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.backends import docker, podman
from pipeline.backends.executor import ExternalExecutor
from pipeline.backends.userfiles import (
    absorb_file_opts,
    check_user_files,
    metadata_from_result,
    write_user_files,
)
from pipeline.errors import ConfigError, PipelineWarning
from pipeline.request import BuildRequest, BuildResult

CTX = Path("/tmp/ctx")


def test_file_opts_become_request_fields() -> None:
    request = BuildRequest(
        context=CTX,
        opts=(("iidfile", "/out/id"), ("network", "host"), ("metadata-file", "/out/m.json")),
    )
    absorbed = absorb_file_opts(request)
    assert absorbed.iidfile == Path("/out/id")
    assert absorbed.metadata_file == Path("/out/m.json")
    assert absorbed.opts == (("network", "host"),)
    assert absorb_file_opts(BuildRequest(context=CTX)) == BuildRequest(context=CTX)


def test_a_file_given_twice_differently_is_refused() -> None:
    request = BuildRequest(context=CTX, iidfile=Path("/a"), opts=(("iidfile", "/b"),))
    with pytest.raises(ConfigError) as info:
        absorb_file_opts(request)
    assert info.value.field == "--iidfile" and "'/a'" in str(info.value)
    same = BuildRequest(context=CTX, iidfile=Path("/a"), opts=(("iidfile", "/a"),))
    assert absorb_file_opts(same).iidfile == Path("/a")
    with pytest.raises(ConfigError, match="needs a file"):
        absorb_file_opts(BuildRequest(context=CTX, opts=(("iidfile", None),)))


@pytest.mark.parametrize("spec", [docker.SPEC, podman.SPEC])
def test_only_one_iidfile_reaches_the_engine(spec: object) -> None:
    """The user's file is written by us afterwards; argv carries our private one only."""
    executor = ExternalExecutor(spec)  # type: ignore[arg-type]
    request = absorb_file_opts(BuildRequest(context=CTX, opts=(("iidfile", "/mine"),)))
    argv = executor.argv(request, iidfile="/private/iid", metadata_file="/private/m")
    assert argv.count("--iidfile") == 1 and argv[argv.index("--iidfile") + 1] == "/private/iid"
    assert "/mine" not in " ".join(argv)
    assert "/mine" not in executor.dry_run(BuildRequest(context=CTX, opts=(("iidfile", "/mine"),)))


def test_user_files_get_the_id_and_metadata(tmp_path: Path) -> None:
    result = BuildResult(backend="docker", tags=("a:1", "b:2"), image_id="sha256:" + "a" * 64)
    request = BuildRequest(
        context=CTX, iidfile=tmp_path / "iid", metadata_file=tmp_path / "meta.json"
    )
    write_user_files(request, result)
    assert (tmp_path / "iid").read_text() == "sha256:" + "a" * 64
    assert json.loads((tmp_path / "meta.json").read_text()) == {
        "containerimage.config.digest": "sha256:" + "a" * 64,
        "image.name": "a:1,b:2",
    }
    # the engine's own metadata, when it wrote one, is copied as it is
    engine = tmp_path / "engine.json"
    engine.write_text('{"containerimage.digest": "sha256:b", "buildx.build.ref": "x"}')
    write_user_files(request, result, engine_metadata=engine)
    assert json.loads((tmp_path / "meta.json").read_text())["buildx.build.ref"] == "x"


def test_pushed_only_images_write_the_digest_and_nothing_known_warns(tmp_path: Path) -> None:
    request = BuildRequest(context=CTX, iidfile=tmp_path / "iid")
    write_user_files(request, BuildResult(backend="buildah", digest="sha256:d"))
    assert (tmp_path / "iid").read_text() == "sha256:d"
    assert metadata_from_result(BuildResult(backend="x")) == {}
    with pytest.warns(PipelineWarning, match="no image id"):
        write_user_files(
            BuildRequest(context=CTX, iidfile=tmp_path / "other"), BuildResult(backend="buildctl")
        )
    assert not (tmp_path / "other").exists()


def test_unwritable_user_files_are_refused_before_building(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        check_user_files(BuildRequest(context=CTX, metadata_file=tmp_path / "no" / "m.json"))
    assert info.value.field == "--metadata-file" and "does not exist" in str(info.value)
    with pytest.raises(ConfigError, match="is a directory"):
        check_user_files(BuildRequest(context=CTX, iidfile=tmp_path))
    check_user_files(BuildRequest(context=CTX, iidfile=tmp_path / "ok"))
