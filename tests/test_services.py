"""bento.yaml ``services:`` read from the code, as ``bentoml build`` records them (BentoML 1.2+
looks every running service up there by name at start-up; ``services: []`` never serves)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.bento import build_bento
from pipeline.services import service_entries

ROOT = Path(__file__).resolve().parents[1]


def entry(name: str, dependencies: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {
        "name": name,
        "service": "",
        "models": [],
        "dependencies": dependencies or [],
        "config": {},
    }


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_decorated_classes_under_their_names(tmp_path: Path) -> None:
    code = write(
        tmp_path,
        "service.py",
        "import bentoml\n"
        "from bentoml import service as svc, depends\n\n"
        "@bentoml.service(name='pre-process', resources={'cpu': '1'})\n"
        "class Pre:\n    pass\n\n"
        "@svc\nclass Model:\n    pass\n\n"
        "@bentoml.service\n"
        "class Api:\n"
        "    pre = bentoml.depends(Pre)\n"
        "    model: Model = depends(on=Model)\n"
        "    remote = bentoml.depends(deployment='other-deploy')\n"
        "    unknown = bentoml.depends(make_one())\n\n"
        "class NotAService:\n    pass\n",
    )
    none = {"deployment": None, "cluster": None, "url": None}
    assert service_entries([code]) == [
        entry("pre-process"),
        entry("Model"),
        entry(
            "Api",
            [
                {"service": "pre-process", **none},
                {"service": "Model", **none},
                {"service": None, "deployment": "other-deploy", "cluster": None, "url": None},
            ],
        ),
    ]


def test_other_decorators_and_broken_files_are_not_services(tmp_path: Path) -> None:
    code = write(
        tmp_path,
        "a.py",
        "import attrs\nfrom other import service\n\n@attrs.define\nclass A:\n    pass\n\n"
        "@service\nclass B:\n    pass\n",
    )
    broken = write(tmp_path, "b.py", "def (:\n")
    assert service_entries([code, broken, write(tmp_path, "notes.txt", "@bentoml.service")]) == []


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("PIPELINE_BENTOML_VERSION", "1.4.40")
    return tmp_path / "store"


def test_bento_build_records_the_service(store: Path) -> None:
    """The real-bento fixture project: `bentoml build` writes `services: [{name: Transform...}]`
    and so must we, or BentoML's server stops with StopIteration in the container."""
    project = ROOT / "tests" / "fixtures" / "bentoml" / "lock-off"  # lock off: no uv resolve
    bento = build_bento(project, store=store)
    meta = yaml.safe_load((bento.path / "bento.yaml").read_text(encoding="utf-8"))
    assert meta["entry_service"] == "Transform"
    assert meta["services"] == [entry("Transform")]
