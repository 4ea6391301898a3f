"""`mqt`: one command line whose subcommands are plain typed functions (their docstring is the help).

Command modules import their heavy dependencies inside the functions, so `mqt --help` is fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from mqt_vlm.errors import MQTError

# (group, command name, "module:function"); group "" is the top level
COMMANDS: list[tuple[str, str, str]] = [
    ("", "demo", "mqt_vlm.demo:demo"),
    ("", "convert", "mqt_vlm.cli.convert:convert"),
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


def build_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Elastic vision-language models with the Matryoshka Query Transformer.")
    groups: dict[str, typer.Typer] = {}
    for group, name, target in COMMANDS:
        function = _resolve(target)
        if function is None:
            continue
        parent = app
        if group:
            if group not in groups:
                groups[group] = typer.Typer(no_args_is_help=True, help=f"{group} commands")
                app.add_typer(groups[group], name=group)
            parent = groups[group]
        parent.command(name)(function)
    return app


def main(argv: list[str] | None = None) -> None:
    app = build_app()
    try:
        app(args=argv, prog_name="mqt", standalone_mode=True)
    except MQTError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
