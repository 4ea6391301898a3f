"""`mqt export`: a model as a plain folder, for tools that load by path (vLLM, `from_pretrained`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer


def export(
    model: str = typer.Argument(..., help="builtin:NAME or a model folder."),
    out: Path = typer.Argument(..., help="Folder to write; it must not exist yet (or be empty)."),
) -> None:
    """Copy a model (e.g. builtin:shapes, which lives inside the installed package) to a folder of
    its own, checked as `--model` loading checks it. vLLM takes the folder: docs/vllm.md."""
    from mqt_vlm.errors import MQTError
    from mqt_vlm.loading import _check_folder, resolve_model_path

    source = resolve_model_path(model)
    _check_folder(source)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MQTError(f"{out} already exists and is not an empty folder; choose a new one.")
    if out.resolve() == source.resolve():
        raise MQTError(f"{out} is the model itself.")
    out.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        if file.is_file():
            shutil.copy2(file, out / file.name)
    typer.echo(f"wrote {out}")
