from __future__ import annotations

import subprocess
import sys

import pytest

from lungspread import __version__
from lungspread.cli.app import COMMAND_MODULES, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lungspread {__version__}"


def _command_paths() -> list[list[str]]:
    import typer.main

    from lungspread.cli.app import _build_app

    root = typer.main.get_command(_build_app())
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        subcommands = getattr(cmd, "commands", None)
        if isinstance(subcommands, dict):
            for name, sub in subcommands.items():
                walk(sub, [*prefix, name])
        else:
            paths.append(prefix)

    walk(root, [])
    return paths


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert COMMAND_MODULES, "no command registered"
    paths = _command_paths()
    assert len(paths) >= len(COMMAND_MODULES)
    for path in paths:
        assert main([*path, "--help"]) == 0, path
        out = capsys.readouterr().out
        assert "Usage" in out, path


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "no-such-command" in capsys.readouterr().err


def test_console_script_runs_as_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lungspread", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert __version__ in proc.stdout
