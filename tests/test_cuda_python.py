"""CUDA bases get the requested python_version or a clear error, never the OS's own other one
(bentofile level: the error names the user's file, line and field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.loader import load_bentofile
from render.distros import DISTROS


def bentofile(tmp_path: Path, docker: str) -> Path:
    (tmp_path / "service.py").write_text("svc = 1\n")
    path = tmp_path / "bentofile.yaml"
    path.write_text(f"service: service:svc\ndocker:\n{docker}")
    return path


def test_a_python_the_cuda_image_cannot_have_names_the_field_and_the_versions(
    tmp_path: Path,
) -> None:
    path = bentofile(tmp_path, '  cuda_version: "12.1.1"\n  python_version: "3.14"\n')
    with pytest.raises(ConfigError) as info:
        load_bentofile(path)
    error = info.value
    assert (error.file, error.line, error.field) == (str(path), 4, "docker.python_version")
    assert "Python 3.14 cannot be installed on the CUDA 12.1.1 image (ubuntu22.04)" in str(error)
    assert "'3.9', '3.10', '3.11', '3.12' or '3.13'" in str(error)


def test_dockerfile_cli_refuses_it_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bentofile(tmp_path, '  distro: ubi8\n  cuda_version: "12"\n  python_version: "3.12"\n')
    assert main(["dockerfile", str(tmp_path)]) == 0  # ubi8 has python3.12
    capsys.readouterr()
    bentofile(tmp_path, '  cuda_version: "12.1.1"\n  python_version: "3.14"\n')
    assert main(["dockerfile", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bentofile.yaml:4: docker.python_version: Python 3.14 cannot be installed" in err
    assert "Traceback" not in err and ".tmp-" not in err


@pytest.mark.parametrize("distro", ["debian", "ubi8"])
def test_every_cuda_image_offers_the_pythons_the_table_claims(distro: str) -> None:
    spec = DISTROS[distro]
    for full in spec.cuda_images:
        versions = spec.cuda_python(full).versions
        assert versions, full
        assert set(versions) <= set(spec.python_versions), (full, versions)
