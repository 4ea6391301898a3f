"""`mqt convert`."""

from __future__ import annotations

from pathlib import Path

import typer


def convert(
    src: Path,
    dst: Path,
    vision_tower: str | None = typer.Option(None, help="CLIP folder or hub id, when SRC holds no tower weights."),
    dtype: str = typer.Option("auto", help="auto (keep the checkpoint's), float32, bfloat16 or float16."),
    query_abstractor: Path | None = typer.Option(None, help="A stage-1 query_abstractor.bin to use for the MQT."),
    language_model: Path | None = typer.Option(None, help="Folder with the LLM weights (for a stage-1 SRC)."),
    mqt_heads: int = typer.Option(16, help="Attention heads of the query transformer (16 in MQT-LLaVA)."),
    key_source: str = typer.Option("position", help="position (released) or feature+position (Qwen-VL)."),
    strict: bool = typer.Option(True, help="Fail on missing or unexpected tensors."),
) -> None:
    """Convert a released MQT-LLaVA checkpoint (or a stage-1 output) into an mqt_vlm folder."""
    from mqt_vlm.checkpoints.convert import convert_released

    out = convert_released(src, dst, vision_tower=vision_tower, dtype=dtype, query_abstractor=query_abstractor,
                           language_model=language_model, mqt_heads=mqt_heads, key_source=key_source, strict=strict)
    typer.echo(f"wrote {out}")
