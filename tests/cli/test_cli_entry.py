"""``python -m pipeline``: every command listed, only the invoked one imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS, invoked_command, load_command
from tests.cli.clirun import ROOT, pipeline_cli


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_recorded_help_line_is_the_commands_own(name: str) -> None:
    command = load_command(name)
    assert command is not None
    assert command.name == name
    assert command.help == COMMANDS[name][1]


def test_the_command_word_is_the_first_non_option() -> None:
    assert invoked_command(["--debug", "build", "x", "--backend", "docker"]) == "build"
    assert invoked_command(["base-image", "--help"]) == "base-image"
    assert invoked_command(["--help"]) is None
    assert invoked_command(["buidl", "x"]) is None  # argparse reports the bad choice
    assert invoked_command([]) is None


def _modules_after(*argv: str) -> set[str]:
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
        env=dict(os.environ),
    )  # fmt: skip
    return set(done.stdout.split())


def test_a_command_imports_only_its_own_module() -> None:
    loaded = _modules_after("dockerfile", "--help")
    assert "pipeline.cli.dockerfile" in loaded
    others = {f"pipeline.cli.{module}" for module, _ in COMMANDS.values()} - {
        "pipeline.cli.dockerfile"
    }
    assert not loaded & others, sorted(loaded & others)
    base_image = {"pipeline.baseimage", "pipeline.basespec", "pipeline.ocilayout"}
    assert not loaded & base_image and "dagger" not in loaded


def test_top_level_help_lists_every_command_without_importing_them() -> None:
    loaded = _modules_after("--help")
    shared = {"pipeline.cli", "pipeline.cli.command"}  # the dispatcher and the Command type
    assert not {m for m in loaded if m.startswith("pipeline.cli.") and m not in shared}
    listing = pipeline_cli("--help", env=dict(os.environ)).stdout
    for name, (_module, one_line) in COMMANDS.items():
        assert name in listing and one_line[:30] in listing


def test_an_unknown_command_is_a_usage_error_naming_the_choices() -> None:
    done = pipeline_cli("buidl", "x", env=dict(os.environ))
    assert done.returncode == 2
    assert "invalid choice: 'buidl'" in done.stderr and "build" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_prints_the_package_version() -> None:
    import pipeline

    done = pipeline_cli("--version", env=dict(os.environ))
    assert done.returncode == 0
    assert done.stdout.strip() == f"bento-pipeline {pipeline.__version__}"


def test_json_is_one_flag_in_every_command_that_prints_a_result(
    isolated_build_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--json`` means "the result as JSON on stdout" wherever a result is printed."""
    from pipeline.cli import main

    hello = str(ROOT / "examples" / "hello")
    assert main(["bento", "build", hello]) == 0
    tag = capsys.readouterr().out.strip()
    runs = [
        ["bento", "list", "--json"],
        ["bento", "get", tag, "--json"],
        ["bento", "prune", "--dry-run", "--json"],
        ["backends", "--json"],
        ["plan", tag, "--backend", "podman", "--no-check", "--json"],
        ["build", tag, "--backend", "podman", "--dry-run", "--json"],
        ["matrix", tag, "--backend", "podman", "--dry-run", "--json"],
    ]
    for argv in runs:
        code = main(argv)
        out = capsys.readouterr().out
        assert code == 0, argv
        json.loads(out)  # the whole of stdout is one JSON document
    for argv in (["base-image", "--help"], ["matrix", "--help"], ["bento", "list", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "--json" in capsys.readouterr().out, argv
