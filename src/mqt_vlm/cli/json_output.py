"""The JSON rule of every `mqt` command that reports data: `--json` prints the report as JSON on
stdout (and nothing else goes there, so it pipes into `jq` or `json.loads`), `--json-out FILE`
writes it to FILE; both may be given. Without `--json` stdout gets the human table.

A command takes both options as `as_json: JsonFlag = False, json_out: JsonOut = None` (plain
defaults: the function stays callable from Python) and ends with
`emit(report, as_json, json_out, table)`; tests/test_cli.py checks that every command with one of
the options has both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mqt_vlm.errors import MQTError

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout instead of the table.")]
JsonOut = Annotated[Path | None, typer.Option("--json-out", metavar="FILE", help="Also write the report as JSON to FILE.")]


def emit(report: dict[str, Any], as_json: bool, json_out: Path | None, table: Callable[[], str]) -> None:
    """Write FILE first (a full report even when printing fails half-way), then stdout."""
    text = json.dumps(report, indent=2)
    if json_out is not None:
        if str(json_out).startswith("-"):  # `--json-out --other-option`: click took the option as FILE
            raise MQTError(f"--json-out takes a FILE to write, got {str(json_out)!r}; "
                           "--json prints the JSON instead.")
        json_out = Path(json_out)
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n")
    print(text if as_json else table())
