"""`mqt gradcam`: one figure with a Grad-CAM panel per budget, or the MQT's attention maps.

The computation lives in `gradcam.py`; this file turns an image and a prompt into model inputs per
budget and draws the figure (matplotlib's Agg canvas, imported only here and only when drawing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mqt_vlm.errors import MQTError


def explain(
    model: Any,
    processor: Any,
    image: Any,
    prompt: str,
    budgets: list[int],
    target_token: int | None = None,
) -> tuple[Any, list[Any]]:
    """(the image as the model sees it [H, W, 3], one `GradCAMResult` per budget)."""
    from mqt_vlm.analysis.gradcam import gradcam_maps, model_view

    text = prompt if processor.image_token in prompt else processor.format_prompt(prompt)
    ids = {m: processor(images=image, text=text, num_visual_tokens=m)["input_ids"] for m in budgets}
    pixel_values = processor.image_processor(image)["pixel_values"]  # [1, 3, H, W]
    results = gradcam_maps(model, pixel_values, ids, target_token, decode=lambda t: processor.decode([t]))
    return model_view(pixel_values, processor.image_processor), results


def _figure(panels: int, columns: int, title: str) -> tuple[Any, list[Any]]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MQTError("Drawing needs matplotlib: pip install 'mqt-vlm[eval]'.") from exc
    rows = (panels + columns - 1) // columns
    fig = Figure(figsize=(3.2 * columns, 3.6 * rows + 0.7), dpi=90)
    FigureCanvasAgg(fig)  # the Agg backend without touching pyplot's global state
    axes = [fig.add_subplot(rows, columns, i + 1) for i in range(panels)]
    fig.suptitle(title, fontsize=10)
    return fig, axes


def _overlay(ax: Any, view: Any, heat: Any, label: str) -> None:
    from mqt_vlm.analysis.gradcam import upsample

    ax.imshow(view.numpy())
    ax.imshow(upsample(heat, tuple(view.shape[:2])).numpy(), cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    ax.set_title(label, fontsize=9)
    ax.axis("off")


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_gradcam(view: Any, results: list[Any], title: str, path: Path) -> Path:
    """A row of panels, one per budget: the map over the image the model sees."""
    fig, axes = _figure(len(results), len(results), title)
    for ax, result in zip(axes, results):
        empty = "" if float(result.cam.max()) > 0 else "\n(no positive evidence)"
        _overlay(ax, view, result.cam, f"m = {result.budget}: {result.target}{empty}")
    return _save(fig, path)


def default_queries(num_queries: int, count: int = 8) -> list[int]:
    """`count` queries spread over 0..M-1, the first always included (every budget uses it)."""
    count = min(count, num_queries)
    return sorted({round(i * (num_queries - 1) / max(count - 1, 1)) for i in range(count)})


def parse_queries(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise MQTError(f"--queries must be comma-separated ints like '0,5,17', got {text!r}.") from exc


def plot_attention(model: Any, view: Any, pixel_values: Any, queries: list[int], path: Path) -> Path:
    """A grid of the chosen queries' attention over the patch grid, with what it depends on."""
    from mqt_vlm.analysis.gradcam import attention_maps

    maps = attention_maps(model, pixel_values, queries)
    source = model.mqt.config.key_source
    note = (
        "keys are positions only, so these maps do not depend on the image"
        if source == "position"
        else "keys include image features, so these maps depend on the image"
    )
    title = f"MQT attention per query, colour range stretched per map\n(key_source={source}: {note})"
    fig, axes = _figure(len(queries), min(4, len(queries)), title)
    patches = maps[0].numel()
    for ax, q, weights in zip(axes, queries, maps):
        low, high = float(weights.min()), float(weights.max())  # stretched for display; the label keeps the scale
        stretched = (weights - low) / max(high - low, 1e-12)
        _overlay(ax, view, stretched, f"query {q} (used when m > {q})\nmax {high * patches:.2f}x, min {low * patches:.2f}x uniform")
    return _save(fig, path)


def gradcam(
    model: str = typer.Option("builtin:shapes", help="An mqt_vlm model folder or builtin:NAME."),
    image: Path = typer.Option(..., help="Image file to explain."),
    prompt: str = typer.Option("What is in the image?", help="Question (put in the chat template) or a full prompt with <image>."),
    budgets: str = typer.Option("2,8,M", help="Comma-separated budgets, one panel each (each <= M; M = all queries)."),
    out: Path = typer.Option(Path("gradcam.png"), help="PNG file to write."),
    target_token: int | None = typer.Option(None, help="Explain visual token K (the norm of MQT output row K) instead of the answer's first token."),
    attention: bool = typer.Option(False, help="Draw the MQT's per-query attention maps instead of Grad-CAM."),
    queries: str = typer.Option("", help="Queries to draw with --attention (default: 8 spread over 0..M-1)."),
) -> None:
    """Grad-CAM over the vision patch grid at each budget, or where each MQT query looks.

    Grad-CAM shows which patches the target (the logit of the answer's first token, or a chosen
    visual token) depends on, read at the features the MQT reads (vision layer -2). With
    --attention: where each MQT query looks."""
    from mqt_vlm.analysis.gradcam import model_view
    from mqt_vlm.budgets import parse_budgets
    from mqt_vlm.loading import load_model
    from mqt_vlm.processing.images import load_image

    if not attention:
        parse_budgets(budgets, None)  # a typo fails before the model loads
    vlm, processor = load_model(model)
    picture = load_image(image)
    if attention:
        chosen = parse_queries(queries) if queries.strip() else default_queries(vlm.num_queries)
        pixel_values = processor.image_processor(picture)["pixel_values"]
        written = plot_attention(vlm, model_view(pixel_values, processor.image_processor), pixel_values, chosen, out)
    else:
        chosen_budgets = [int(m) for m in parse_budgets(budgets, vlm.num_queries)]
        view, results = explain(vlm, processor, picture, prompt, chosen_budgets, target_token)
        written = plot_gradcam(view, results, f"Grad-CAM at vision layer {vlm.config.vision_feature_layer}: {prompt!r}", out)
    typer.echo(f"wrote {written}")
