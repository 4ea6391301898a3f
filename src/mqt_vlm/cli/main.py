"""`mqt`: one command line whose subcommands are plain typed functions (their docstring is the help).

Command modules import their heavy dependencies inside the functions, so `mqt --help` is fast.
What transformers prints, and how help text is laid out, is decided here for every command.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

from mqt_vlm.errors import MQTError

GROUPS = {"data": "Write a synthetic dataset, or check a LLaVA data file before training on it."}

# (group, command name, "module:function"); group "" is the top level
COMMANDS: list[tuple[str, str, str]] = [
    ("", "demo", "mqt_vlm.demo:demo"),
    ("", "convert", "mqt_vlm.cli.convert:convert"),
    ("", "export", "mqt_vlm.cli.export:export"),
    ("", "flops", "mqt_vlm.analysis.flops_cli:flops"),
    ("data", "synth", "mqt_vlm.data.synthetic:synth"),
    ("data", "check", "mqt_vlm.data.check:check"),
    ("", "train", "mqt_vlm.train.cli:train"),
    ("", "generate", "mqt_vlm.inference.cli:generate"),
    ("", "chat", "mqt_vlm.inference.cli:chat"),
    ("", "serve", "mqt_vlm.serve.cli:serve"),
    ("", "eval", "mqt_vlm.eval.cli:evaluate"),
    ("", "bench", "mqt_vlm.analysis.bench_cli:bench"),
    ("", "gradcam", "mqt_vlm.analysis.gradcam_cli:gradcam"),
]


def _resolve(target: str) -> Callable[..., Any] | None:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            return None  # feature not part of this build
        raise
    return getattr(module, attr)


def set_verbosity(verbose: bool) -> None:
    """What transformers prints, for every command. Quiet by default: each model load would draw a
    per-tensor "Loading weights" bar and log warnings that are either harmless or already our
    errors (loading is strict: loading.py). Hub download bars stay, since a download can take
    minutes, and so do our own bars on long work (eval, synth, training). --verbose leaves
    transformers as it is out of the box; TRANSFORMERS_VERBOSITY, when set, is left alone."""
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    if "TRANSFORMERS_VERBOSITY" not in os.environ:  # a level the user chose wins
        hf_logging.set_verbosity(hf_logging.WARNING if verbose else hf_logging.ERROR)
    if hub_constants.HF_HUB_DISABLE_PROGRESS_BARS is True:  # the user turned every bar off
        return
    if verbose:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()  # transformers' bars, and the hub's with them...
        hub_utils.enable_progress_bars()  # ...which come back: downloads keep their bar


def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show transformers' log messages and weight-loading progress bars."),
) -> None:
    """Elastic vision-language models with the Matryoshka Query Transformer."""
    set_verbosity(verbose)


def help_text(function: Callable[..., Any]) -> str:
    """A docstring laid out for typer's rich help: paragraphs as written, the lines inside each
    joined so that rich wraps them once to the terminal (it otherwise keeps our 100-column line
    breaks and wraps again, cutting sentences in two), and rich markup escaped so a `[...]` in the
    text is shown, not eaten. Docstrings are plain prose paragraphs; keep them so."""
    from rich.markup import escape

    text = (inspect.getdoc(function) or "").partition("\f")[0]
    return escape("\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip()))


def build_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      rich_markup_mode="rich")
    app.callback()(_root)
    groups: dict[str, typer.Typer] = {}
    for group, name, target in COMMANDS:
        function = _resolve(target)
        if function is None:
            continue
        parent = app
        if group:
            if group not in groups:
                groups[group] = typer.Typer(no_args_is_help=True, help=GROUPS[group])
                app.add_typer(groups[group], name=group)
            parent = groups[group]
        parent.command(name, help=help_text(function))(function)
    return app


def main(argv: list[str] | None = None) -> None:
    app = build_app()
    try:
        app(args=argv, prog_name="mqt", standalone_mode=True)
    except MQTError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
