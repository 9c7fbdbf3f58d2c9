"""`bento build` stores requirements as `bentoml build` does: the bentoml pin, requirements.in,
a uv lock (or the file as given with lock_packages: false), and a service the bento carries."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pipeline import requirements
from pipeline.bento import build_bento
from pipeline.cli import main
from pipeline.config import PythonOptions
from pipeline.errors import ConfigError
from pipeline.requirements import SOURCE_BUILDS_PATH

BENTOML_SERVICE = """\
import bentoml


@bentoml.service
class Svc:
    @bentoml.api
    def hello(self) -> str:
        return "hi"
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.delenv(requirements.BENTOML_VERSION_ENV, raising=False)
    return home


def project(root: Path, bentofile: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bentofile.yaml").write_text(textwrap.dedent(bentofile), encoding="utf-8")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def env_python(bento_path: Path, name: str) -> str:
    return (bento_path / "env" / "python" / name).read_text(encoding="utf-8")


# --- the bentoml pin ---------------------------------------------------------------------------


def test_a_bentoml_service_gets_bentoml_pinned_and_locked(store: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "service: service:Svc\n", {"service.py": BENTOML_SERVICE})
    bento = build_bento(root, bentoml_version="1.4.40")
    assert env_python(bento.path, "requirements.in") == "bentoml==1.4.40\n"
    locked = env_python(bento.path, "requirements.txt").splitlines()
    pins = {line.split("==")[0]: line for line in locked if line and not line.startswith("-")}
    assert pins["bentoml"] == "bentoml==1.4.40"
    # bentoml's own dependencies are pinned too (a real lock, not the input copied)
    assert {"starlette", "uvicorn", "pydantic"} <= set(pins)
    assert all("==" in line for line in pins.values())
    data = yaml.safe_load((bento.path / "bento.yaml").read_text())
    assert data["bentoml_version"] == "1.4.40"
    assert data["python"]["lock_packages"] is True


def test_pin_version_from_the_environment_variable(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(requirements.BENTOML_VERSION_ENV, "1.2.20")
    root = project(
        tmp_path / "p",
        "service: service:Svc\npython:\n  lock_packages: false\n",
        {"service.py": "from bentoml import service\nSvc = service(object)\n"},
    )
    bento = build_bento(root)
    assert env_python(bento.path, "requirements.txt") == "bentoml==1.2.20\n"


def test_pin_follows_a_bentoml_installed_beside_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    info = site / "bentoml-1.3.7.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bentoml\nVersion: 1.3.7\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(requirements.BENTOML_VERSION_ENV, raising=False)
    assert requirements.choose_bentoml_pin() == requirements.BentomlPin("1.3.7", "installed")
    assert requirements.choose_bentoml_pin("1.4.1").version == "1.4.1"


def test_default_pin_when_bentoml_is_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(requirements.BENTOML_VERSION_ENV, raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    if requirements.installed_bentoml_version() is not None:
        pytest.fail("bentoml must not be installed in the product's environment")
    assert requirements.choose_bentoml_pin() == requirements.BentomlPin(
        requirements.DEFAULT_BENTOML_VERSION, "default"
    )


def test_no_pin_for_a_service_without_bentoml(store: Path, tmp_path: Path) -> None:
    root = project(
        tmp_path / "p",
        "service: app:svc\npython:\n  packages: [six]\n  lock_packages: false\n",
        {"app.py": "import json\nsvc = json\n"},
    )
    bento = build_bento(root)
    assert env_python(bento.path, "requirements.txt") == "six\n"
    assert yaml.safe_load((bento.path / "bento.yaml").read_text())["bentoml_version"] is None


def test_a_bentoml_from_a_url_is_not_pinned_over() -> None:
    user = ["bentoml @ git+https://github.com/bentoml/BentoML@main"]
    pin = requirements.BentomlPin("1.4.40", "default")
    assert requirements.requirements_in(user, PythonOptions(), pin) == user[0] + "\n"
    # a version range is kept, and the pin is added beside it (uv intersects them)
    text = requirements.requirements_in(["BentoML[io]>=1.3"], PythonOptions(), pin)
    assert text == "BentoML[io]>=1.3\nbentoml==1.4.40\n"


def test_index_options_go_on_top_of_requirements_in() -> None:
    python = PythonOptions(
        index_url="https://mirror.example/simple",
        no_index=True,
        trusted_host=("mirror.example",),
        extra_index_url=("https://extra.example/simple",),
        find_links=("./wheels",),
    )
    assert requirements.requirements_in(["six"], python, None).splitlines() == [
        "--index-url https://mirror.example/simple",
        "--no-index",
        "--trusted-host mirror.example",
        "--extra-index-url https://extra.example/simple",
        "--find-links ./wheels",
        "six",
    ]


def test_bad_bentoml_version_is_a_clear_error(store: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "p", "service: service:Svc\n", {"service.py": BENTOML_SERVICE})
    with pytest.raises(ConfigError, match="not a bentoml version") as info:
        build_bento(root, bentoml_version="latest; rm -rf /")
    assert info.value.field == "--bentoml-version"
    assert not (store / "bentos").exists()


# --- locking -----------------------------------------------------------------------------------


def test_lock_off_keeps_requirements_as_given(store: Path, tmp_path: Path) -> None:
    root = project(
        tmp_path / "p",
        "service: app:svc\npython:\n  lock_packages: false\n  requirements_txt: req.txt\n",
        {"app.py": "svc = 1\n", "req.txt": "six>=1.10\n# keep me\n"},
    )
    bento = build_bento(root)
    assert env_python(bento.path, "requirements.txt") == "six>=1.10\n# keep me\n"
    assert env_python(bento.path, "requirements.in") == "six>=1.10\n# keep me\n"


def test_lock_pins_every_package_for_the_bentos_python(store: Path, tmp_path: Path) -> None:
    root = project(
        tmp_path / "p",
        "service: app:svc\npython:\n  packages: ['six>=1.10']\ndocker:\n  python_version: '3.12'\n",
        {"app.py": "svc = 1\n"},
    )
    bento = build_bento(root)
    assert env_python(bento.path, "requirements.in") == "six>=1.10\n"
    lines = [line for line in env_python(bento.path, "requirements.txt").splitlines() if line]
    assert lines[0].startswith("--index-url ")
    assert len(lines) == 2 and lines[1].startswith("six==")


def test_requirements_without_wheels_are_recorded_beside_the_lock(
    store: Path, tmp_path: Path
) -> None:
    # crcmod 1.7 is an sdist only: the image build compiles it, so the build stage installs its
    # compilers up front; six has a wheel, so a bento of six alone records nothing
    compiled = project(
        tmp_path / "c",
        "service: app:svc\npython:\n  packages: ['crcmod==1.7', 'six']\n",
        {"app.py": "svc = 1\n"},
    )
    recorded = build_bento(compiled).path / SOURCE_BUILDS_PATH
    assert recorded.read_text() == "crcmod\n"
    wheels = project(
        tmp_path / "w", "service: app:svc\npython:\n  packages: ['six']\n", {"app.py": "svc = 1\n"}
    )
    assert (build_bento(wheels).path / SOURCE_BUILDS_PATH).read_text() == ""  # checked: none


def test_a_lock_that_cannot_resolve_is_exit_2_and_stores_nothing(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path / "p",
        "service: app:svc\npython:\n  packages: ['six==0.0.0.404']\n",
        {"app.py": "svc = 1\n"},
    )
    code = main(["bento", "build", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{root / 'bentofile.yaml'}: python: locking the python requirements" in err
    assert "six" in err and "lock_packages: false" in err and "Traceback" not in err
    assert list(store.rglob("bento.yaml")) == []


def test_uv_lock_argv_is_universal_for_the_bentos_python(tmp_path: Path) -> None:
    argv = requirements.lock_argv("uv", tmp_path / "r.in", tmp_path / "r.txt", "3.12")
    assert argv[:4] == ["uv", "pip", "compile", str(tmp_path / "r.in")]
    assert "--universal" in argv and "--python-version=3.12" in argv
    assert "--emit-index-url" in argv and f"--output-file={tmp_path / 'r.txt'}" in argv


# --- the service must be in the bento --------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "files", "message"),
    [
        ("service:Svc", {"other.py": "Svc = 1\n"}, "service module 'service' is not in the bento"),
        ("service:Svc", {"service.py": "Other = 1\n"}, "service.py defines no 'Svc'"),
        ("pkg.api:Svc", {"pkg/api.txt": ""}, "none of pkg/api.py or pkg/api/__init__.py"),
        ("service:Svc", {"service.py": "def broken(:\n"}, "service.py does not parse"),
    ],
)
def test_a_service_the_bento_lacks_is_refused(
    store: Path, tmp_path: Path, service: str, files: dict[str, str], message: str
) -> None:
    root = project(tmp_path / "p", f"service: '{service}'\n", files)
    with pytest.raises(ConfigError, match=message) as info:
        build_bento(root)
    assert info.value.field == "service"
    assert info.value.file == str(root / "bentofile.yaml")
    assert not (store / "bentos").exists()


def test_an_excluded_service_module_is_refused_at_the_cli(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path / "p",
        "service: service:Svc\nexclude: ['service.py']\n",
        {"service.py": BENTOML_SERVICE, "helper.py": ""},
    )
    assert main(["bento", "build", str(root)]) == 2
    err = capsys.readouterr().err
    assert "service module 'service' is not in the bento" in err
    assert "included Python files: helper.py" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("service", "files"),
    [
        ("service:Svc", {"service.py": BENTOML_SERVICE}),
        (
            "pkg.api:svc",
            {"pkg/api/__init__.py": "try:\n    svc = 1\nexcept ImportError:\n    pass\n"},
        ),
        ("service.py:Svc", {"service.py": "from impl import *\n", "impl.py": "Svc = 1\n"}),
        ("service", {"service.py": ""}),
        ("app:Svc", {"app.py": "from x import Svc\n"}),
    ],
)
def test_services_a_reader_can_find_build(
    store: Path, tmp_path: Path, service: str, files: dict[str, str]
) -> None:
    root = project(
        tmp_path / "p", f"service: '{service}'\npython:\n  lock_packages: false\n", files
    )
    assert build_bento(root).service == service


def test_bento_build_cli_takes_bentoml_version(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path / "p",
        "service: service:Svc\npython:\n  lock_packages: false\n",
        {"service.py": BENTOML_SERVICE},
    )
    assert main(["bento", "build", str(root), "--bentoml-version", "1.4.3"]) == 0
    tag = capsys.readouterr().out.strip()
    bento_dir = store / "bentos" / tag.replace(":", "/")
    assert env_python(bento_dir, "requirements.txt") == "bentoml==1.4.3\n"


@pytest.mark.parametrize(
    ("text", "locked"),
    [
        ("six==1.16.0\n", True),
        (
            "# locked by uv\n--index-url https://pypi.org/simple\nsix==1.16.0\nattrs[tests]==23.1\n",
            True,
        ),
        ("six==1.16.0 ; python_version >= '3.8'  # via x\n", True),
        ("six==1.16.0 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\n", True),
        ("six\n", False),
        ("six>=1.16\n", False),
        ("six==1.16.0\n-r other.txt\n", False),
        ("-e .\n", False),
        ("./wheels/demo-1.0-py3-none-any.whl\n", False),
        ("# nothing\n\n", False),
    ],
)
def test_a_lock_pins_every_requirement_and_nothing_else(text: str, locked: bool) -> None:
    assert requirements.is_locked(text) is locked


def _stored(root: Path, locked: str, record: str | None = None) -> Path:
    (root / "env" / "python").mkdir(parents=True)
    (root / "env" / "python" / "requirements.txt").write_text(locked)
    if record is not None:
        (root / requirements.SOURCE_BUILDS_PATH).write_text(record)
    return root


def test_source_builds_are_checked_with_uv_once_per_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    bento = _stored(tmp_path / "b", "crcmod==1.7\nsix==1.16.0\n")
    assert requirements.source_builds(bento, python_version="3.11") == ("crcmod",)
    wheels = _stored(tmp_path / "w", "six==1.16.0\n")
    assert requirements.source_builds(wheels, python_version="3.11") == ()

    def no_uv() -> str:
        raise AssertionError("uv must not run again for a lock already checked")

    monkeypatch.setattr(requirements, "find_uv", no_uv)
    assert requirements.source_builds(bento, python_version="3.11") == ("crcmod",)
    assert requirements.source_builds(wheels, python_version="3.11") == ()
    # the record `bento build` wrote wins, and an unlocked file is never checked
    recorded = _stored(tmp_path / "r", "crcmod==1.7\n", record="")
    assert requirements.source_builds(recorded, python_version="3.11") == ()
    unlocked = _stored(tmp_path / "u", "crcmod\n")
    assert requirements.source_builds(unlocked, python_version="3.11") == ()


def test_a_check_that_fails_otherwise_is_unknown_and_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(cache))
    bento = _stored(tmp_path / "b", "six==99.99.99\n")  # no such release
    assert requirements.source_builds(bento, python_version="3.11") == ()
    assert not (cache / "source-builds.json").exists()
