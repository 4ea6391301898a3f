"""The `mqt` command line: help, demo, convert, errors as exit code 2 with a message."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mqt_vlm.cli.main import build_app, main
from released_reference import write_released_checkpoint


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_core_commands(runner):
    result = runner.invoke(build_app(), ["--help"])
    assert result.exit_code == 0
    for name in ("demo", "convert", "flops", "data"):
        assert name in result.output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "mqt_vlm.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "convert" in out.stdout


def test_demo_runs_on_tiny_random_model(runner):
    result = runner.invoke(build_app(), ["demo", "--model", "tiny-random", "--budgets", "2,16"])
    assert result.exit_code == 0, result.output
    assert "accuracy by budget over 1 questions" in result.output
    # one row per budget in the summary, and one vision-tower pass for the image at both budgets
    assert "\n  2        0.0" in result.output and "\n 16        0.0" in result.output
    assert "vision tower passes: 1 for 1 images at 2 budgets" in result.output


def test_convert_command_and_mqt_error_exit_code(tmp_path, llama_tokenizer_dir, capsys):
    src = tmp_path / "src"
    write_released_checkpoint(src, llama_tokenizer_dir)
    with pytest.raises(SystemExit) as ok:
        main(["convert", str(src), str(tmp_path / "dst"), "--dtype", "float32"])
    assert ok.value.code in (0, None)
    assert (tmp_path / "dst" / "model.safetensors").is_file()
    with pytest.raises(SystemExit) as bad:
        main(["convert", str(tmp_path / "missing"), str(tmp_path / "x")])
    assert bad.value.code == 2
    assert "not a folder" in capsys.readouterr().err
