"""The `mqt` command line: help, demo, convert, errors as exit code 2 with a message, and the rules
every command follows (quiet by default, help as written, --json / --json-out)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import click
import pytest
import typer
import typer.main
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


# --- the CLI rules (issue 12 item 7): quiet by default, help as written, one JSON convention ---


@pytest.fixture(autouse=True)
def _restore_transformers_output():
    """In-process `mqt` runs set transformers' verbosity and bars (cli/main.py): put them back."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    yield
    logging.set_verbosity(level)
    (logging.enable_progress_bar if bars else logging.disable_progress_bar)()


def _commands() -> dict[str, click.Command]:
    """Every leaf command of `mqt`, by its full name ('flops', 'data check', ...)."""
    found = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found[prefix + name] = command

    walk(typer.main.get_command(build_app()), "")
    return found


def test_every_command_with_json_output_has_both_options():
    """--json is a flag that prints JSON on stdout, --json-out takes the FILE to write: a command
    with one of them has both, spelled the same everywhere."""
    with_json = 0
    for name, command in _commands().items():
        options = {opt: param for param in command.params for opt in param.opts}
        if "--json" not in options and "--json-out" not in options:
            continue
        with_json += 1
        assert "--json" in options and "--json-out" in options, f"mqt {name} has only one of --json/--json-out"
        assert options["--json"].is_flag, f"mqt {name}: --json must be a flag"
        assert not options["--json-out"].is_flag, f"mqt {name}: --json-out must take a FILE"
    assert with_json >= 2  # flops and bench at least


def test_flops_json_on_stdout_and_json_out_file(runner, tmp_path):
    result = runner.invoke(build_app(), ["flops", "--budgets", "2,256", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout is the JSON and nothing else
    assert [row["budget"] for row in report["rows"]] == [2, 256]
    out = tmp_path / "sub" / "flops.json"
    result = runner.invoke(build_app(), ["flops", "--budgets", "2,256", "--json-out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == report
    assert "TFLOPs per image" in result.stdout and not result.stdout.lstrip().startswith("{")  # the table
    result = runner.invoke(build_app(), ["flops", "--json-out", "--json"])  # the old flag spelling
    assert result.exit_code != 0 and "--json-out takes a FILE" in str(result.exception)


def test_verbose_is_a_root_option(runner):
    result = runner.invoke(build_app(), ["--verbose", "flops", "--budgets", "4", "--baseline", "none"])
    assert result.exit_code == 0, result.output
    assert "--verbose" in runner.invoke(build_app(), ["--help"]).output


def _run_mqt(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    env.pop("TRANSFORMERS_VERBOSITY", None)
    return subprocess.run([sys.executable, "-m", "mqt_vlm.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_model_loading_is_quiet_unless_verbose(tmp_path, random_image):
    """No per-tensor "Loading weights" bar (nor transformers warnings) on an ordinary command;
    --verbose brings them back, which also shows the check looks at the right stream."""
    random_image.save(tmp_path / "image.png")
    command = ("generate", "--model", "builtin:shapes", "--image", str(tmp_path / "image.png"),
               "-p", "What colour is the circle?", "--budgets", "2", "--max-new-tokens", "1")
    quiet = _run_mqt(*command)
    assert quiet.returncode == 0, quiet.stderr
    assert "Loading weights" not in quiet.stderr + quiet.stdout
    assert [line for line in quiet.stderr.splitlines() if not line.startswith("[m=2,")] == [], quiet.stderr
    loud = _run_mqt("--verbose", *command)
    assert loud.returncode == 0, loud.stderr
    assert "Loading weights" in loud.stderr
    assert loud.stdout == quiet.stdout  # the answer itself is the same


def _description(command: list[str], width: int) -> list[str]:
    """The help text of a command as rendered at `width` columns: the lines between the usage
    line and the first panel."""
    result = CliRunner().invoke(build_app(), [*command, "--help"], terminal_width=width,
                                env={"COLUMNS": str(width)}, prog_name="mqt")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return [line.rstrip() for line in lines[start:end]]


@pytest.mark.parametrize("width", [80, 132])
def test_help_shows_docstring_paragraphs_as_written(width):
    """Each paragraph of a command's docstring comes out whole (no word lost to markup, e.g. a
    `[extra]` or `<image>`), re-wrapped once: a line ends early only where the next word would not
    have fitted, so no sentence is cut by our own line breaks."""
    from mqt_vlm.cli.main import COMMANDS, _resolve

    for group, name, target in COMMANDS:
        function = _resolve(target)
        if function is None:
            continue
        label = " ".join(filter(None, (group, name)))
        paragraphs = [" ".join(p.split()) for p in inspect.getdoc(function).split("\n\n")]
        text = "\n".join(_description(label.split(), width))
        shown = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
        assert shown == paragraphs, f"mqt {label}"
        for block in text.split("\n\n"):
            lines = [line for line in block.splitlines() if line.strip()]
            for line, following in zip(lines, lines[1:]):
                next_word = following.split()[0]
                assert len(line) + 1 + len(next_word) > width - 2, (
                    f"mqt {label}: line broken early at {width} columns:\n{line}\n{following}")
