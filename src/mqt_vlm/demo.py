"""`mqt demo`: one elastic model answering at several visual-token budgets.

With the built-in `shapes` model (trained on synthetic scenes) it renders fresh scenes, asks
questions whose answers need different detail, and shows answers, correctness, time and FLOPs per
budget. Without it (or with `--model tiny-random`) it runs a tiny random model end to end, which
shows the mechanics, not the quality.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mqt_vlm.errors import MQTError


@dataclass
class DemoQuestion:
    image: Any  # PIL image
    question: str
    answer: str | None  # None when the truth is unknown (the user's image)
    kind: str


def _parse_budgets(text: str, max_tokens: int) -> list[int]:
    from mqt_vlm.errors import check_budget

    try:
        values = [int(v) if v.strip().upper() != "M" else max_tokens for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise MQTError(f"--budgets must be comma-separated ints (or M), got {text!r}.") from exc
    kept = [v for v in values if v <= max_tokens]
    if len(kept) < len(values):
        typer.echo(f"(skipping budgets above M = {max_tokens}: {[v for v in values if v > max_tokens]})")
    return [check_budget(v, max_tokens) for v in kept]


def _load(model: str) -> tuple[Any, Any, str]:
    from mqt_vlm.loading import load_model

    if model != "tiny-random":
        try:
            loaded, processor = load_model(model)
            return loaded, processor, model
        except MQTError:
            if model != "builtin:shapes":
                raise
            typer.echo("builtin:shapes is not in this build; falling back to a tiny random model.")
    import torch

    from mqt_vlm.assets import llama_tokenizer_dir
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    cache = Path(tempfile.gettempdir()) / "mqt_vlm_cache"
    loaded, processor = build_from_preset("tiny", str(llama_tokenizer_dir(cache)))
    return loaded.eval(), processor, "tiny-random (untrained: answers are noise)"


def _questions(model_name: str, image: Path | None, count: int, seed: int) -> list[DemoQuestion]:
    from mqt_vlm.processing.images import load_image

    if image is not None:
        return [DemoQuestion(load_image(image), "What is in the image?", None, "user")]
    if model_name.startswith("builtin:shapes"):
        from mqt_vlm.data.synthetic import SynthConfig, generate_scene, questions_for_scene, render_scene, scene_rng

        config = SynthConfig(seed=seed)
        out = []
        for index in range(count):
            scene = generate_scene(scene_rng(seed, index, "demo-scene"), config)
            picture = render_scene(scene, config)
            for q in questions_for_scene(scene, scene_rng(seed, index, "demo-q"), config)[:2]:
                out.append(DemoQuestion(picture, q.text, q.answer, q.type))
        return out
    from skimage import data

    from PIL import Image

    return [DemoQuestion(Image.fromarray(data.chelsea()), "What animal is this?", "cat", "photo")]


def demo(
    image: Path | None = typer.Option(None, help="Ask about your own image instead of generated scenes."),
    model: str = typer.Option("builtin:shapes", help="A model folder, builtin:shapes, or tiny-random."),
    budgets: str = typer.Option("2,8,32,M", help="Comma-separated visual-token budgets; M = all queries."),
    scenes: int = typer.Option(3, help="How many generated scenes to ask about."),
    seed: int = typer.Option(1234, help="Seed of the generated scenes."),
    max_new_tokens: int = typer.Option(8, help="Answer length cap."),
) -> None:
    """Show one elastic VLM answering the same questions at several visual-token budgets."""
    import torch

    from mqt_vlm.analysis.flops import from_config, model_flops

    loaded, processor, name = _load(model)
    m_max = loaded.num_queries
    chosen = _parse_budgets(budgets, m_max)
    spec = from_config(loaded.config)
    typer.echo(f"model: {name}  (M = {m_max} queries)")
    questions = _questions(name, image, scenes, seed)
    header = f"{'budget':>6}  {'TFLOPs':>8}  {'ms':>7}  {'ok':>3}  {'kind':<8}  question -> answer"
    typer.echo(header)
    typer.echo("-" * len(header))
    totals: dict[int, list[int]] = {m: [0, 0] for m in chosen}
    for item in questions:
        prompt = processor.format_prompt(item.question)
        for m in chosen:
            batch = processor(images=item.image, text=prompt, num_visual_tokens=m)
            start = time.perf_counter()
            with torch.no_grad():
                out = loaded.generate(**batch, num_visual_tokens=m, max_new_tokens=max_new_tokens, do_sample=False)
            elapsed = (time.perf_counter() - start) * 1000
            answer = processor.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
            tflops = model_flops(spec, m, text_tokens=int(batch["input_ids"].shape[1]) - m).tflops
            correct = "-" if item.answer is None else ("yes" if answer.lower().rstrip(".") == item.answer.lower() else "no")
            if item.answer is not None:
                totals[m][0] += correct == "yes"
                totals[m][1] += 1
            typer.echo(f"{m:>6}  {tflops:>8.5f}  {elapsed:>7.1f}  {correct:>3}  {item.kind:<8}  {item.question} -> {answer!r}")
    scored = {m: t for m, t in totals.items() if t[1]}
    if scored:
        summary = ", ".join(f"m={m}: {ok}/{n}" for m, (ok, n) in scored.items())
        typer.echo(f"correct by budget: {summary}")
