"""`mqt demo`: one elastic model answering the same questions at several visual-token budgets.

With the built-in `shapes` model (trained the MQT way on synthetic scenes, `make reproduce`) it
renders fresh scenes (a seed stream never used in training), asks one question of each type and
for a description at each budget, and prints answer, truth, right/wrong, time and TFLOPs per row;
then it scores about fifty questions and a few descriptions per budget, so the effect of the
budget is visible in a minute. Each image goes through the vision tower once: the encode-once
cache serves every budget (the prefix property). `--image` asks about your own picture;
`--model tiny-random` runs an untrained tiny model, which shows the mechanics, not the quality.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mqt_vlm.errors import MQTError

BUILTIN = "builtin:shapes"


@dataclass
class DemoQuestion:
    image: Any  # PIL image
    question: str
    answer: str | None  # None when the truth is unknown (the user's image)
    kind: str
    scene: int = 0  # which picture (for printing the first few scenes only)


def _model_card(model: str) -> str:
    """The one-line `about` of a model folder's model_card.json (built-in models carry one)."""
    import json

    from mqt_vlm.loading import resolve_model_path

    try:
        path = resolve_model_path(model) / "model_card.json"
        return str(json.loads(path.read_text()).get("about", "")) if path.is_file() else ""
    except (MQTError, ValueError, OSError):
        return ""


def _load(model: str) -> tuple[Any, Any, str]:
    from mqt_vlm.loading import load_model

    if model != "tiny-random":
        loaded, processor = load_model(model)
        return loaded, processor, model
    import torch

    from mqt_vlm.assets import llama_tokenizer_dir
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    cache = Path(tempfile.gettempdir()) / "mqt_vlm_cache"
    loaded, processor = build_from_preset("tiny", str(llama_tokenizer_dir(cache)))
    return loaded.eval(), processor, "tiny-random (untrained: answers are noise)"


def scene_questions(seed: int, scenes: int, per_scene: int, describe: bool = True) -> list[DemoQuestion]:
    """Questions about freshly rendered scenes ("demo" seed streams, never used in training)."""
    from mqt_vlm.data.synthetic import DESCRIBE_PROMPT, SynthConfig, questions_for_scene, render_scene
    from mqt_vlm.data.synthetic_scene import describe_scene, generate_scene, scene_rng

    config = SynthConfig(seed=seed, questions_per_image=per_scene)
    out = []
    for index in range(scenes):
        scene = generate_scene(scene_rng(seed, index, "demo-scene"), config)
        picture = render_scene(scene, config)
        for q in questions_for_scene(scene, scene_rng(seed, index, "demo-q"), config):
            out.append(DemoQuestion(picture, q.text, q.answer, q.type, index))
        if describe:
            out.append(DemoQuestion(picture, DESCRIBE_PROMPT, describe_scene(scene), "describe", index))
    return out


def _user_questions(image: Path, builtin: bool) -> list[DemoQuestion]:
    from mqt_vlm.data.synthetic import DESCRIBE_PROMPT
    from mqt_vlm.processing.images import load_image

    picture = load_image(image)
    if builtin:
        return [DemoQuestion(picture, DESCRIBE_PROMPT, None, "describe"),
                DemoQuestion(picture, "Is there a red shape?", None, "global"),
                DemoQuestion(picture, "How many circles are there?", None, "count")]
    return [DemoQuestion(picture, "What is in the image?", None, "user")]


def _grade(item: DemoQuestion, answer: str) -> tuple[int, int]:
    """(right, out of): one per question; one per cell for a description."""
    from mqt_vlm.data.synthetic_scene import parse_description
    from mqt_vlm.eval.benchmarks.synthetic import normalize_synthetic

    if item.answer is None:
        return 0, 0
    if item.kind == "describe":
        truth = parse_description(item.answer, 10**6)
        grid = max(max(key) for key in truth)
        said = parse_description(answer.lower(), grid)
        return sum(said.get(k) == v for k, v in truth.items()), len(truth)
    return int(normalize_synthetic(answer) == normalize_synthetic(item.answer)), 1


def _answer(loaded: Any, processor: Any, items: list[DemoQuestion], budgets: list[int], cache: Any,
            max_new_tokens: int) -> list[list[Any]]:
    """results[i][j]: item i at budget j, all in one batched call per budget (one tower pass per image)."""
    from mqt_vlm.inference.batch import generate_batch
    from mqt_vlm.inference.params import GenerationRequest, SamplingParams

    by_budget = []
    for m in budgets:
        requests = [GenerationRequest(processor.format_prompt(item.question), [item.image], m,
                                      SamplingParams(max_new_tokens=max_new_tokens * (16 if item.kind == "describe" else 1)))
                    for item in items]
        by_budget.append(generate_batch(loaded, processor, requests, cache))
    return [[by_budget[j][i] for j in range(len(budgets))] for i in range(len(items))]


def demo(
    image: Path | None = typer.Option(None, help="Ask about your own image instead of generated scenes."),
    model: str = typer.Option(BUILTIN, help="A model folder, builtin:shapes, or tiny-random."),
    budgets: str = typer.Option("1,2,8,M", help="Comma-separated visual-token budgets (each 1..M; M = all queries)."),
    scenes: int = typer.Option(12, help="Generated scenes for the accuracy summary (4 questions + a description each)."),
    show: int = typer.Option(2, help="How many of those scenes to print question by question."),
    seed: int = typer.Option(1234, help="Seed of the generated scenes."),
    max_new_tokens: int = typer.Option(6, help="Answer length cap (descriptions get 16 times this)."),
    web: bool = typer.Option(False, "--web", help="Serve the demo as a web page instead (needs the web extra; docs/web.md)."),
    host: str = typer.Option("127.0.0.1", help="With --web: the address to bind (loopback by default)."),
    port: int = typer.Option(7860, help="With --web: the port to serve on."),
) -> None:
    """Show one elastic VLM answering the same questions at several visual-token budgets."""
    if web:  # the page: --model, --image (the opening picture) and --seed (the first scene) apply
        from mqt_vlm.web.app import serve

        return serve(model, host=host, port=port, seed=seed, image=image)
    from mqt_vlm.analysis.flops import from_config, model_flops
    from mqt_vlm.budgets import parse_budgets
    from mqt_vlm.inference.cache import VisualTokenCache

    if scenes < 1 or show < 0:
        raise MQTError("--scenes must be >= 1 and --show >= 0.")
    parse_budgets(budgets, None)  # a typo fails before the model loads
    loaded, processor, name = _load(model)
    m_max = loaded.num_queries
    chosen = [int(m) for m in parse_budgets(budgets, m_max)]
    builtin = not name.startswith("tiny-random")  # every other model is taken to be a shapes model
    spec = from_config(loaded.config)
    typer.echo(f"model: {name}  (M = {m_max} queries; budgets {', '.join(map(str, chosen))})")
    card = _model_card(name)
    if card:
        typer.echo(f"about: {card}")
    if image is not None:
        items = _user_questions(image, builtin)
        if builtin:
            typer.echo(f"note: {name} only knows synthetic 4x4 scenes of coloured shapes; on other "
                       "pictures its answers are guesses in that vocabulary.")
    elif builtin:
        items = scene_questions(seed, scenes, per_scene=4)
    else:
        from PIL import Image
        from skimage import data

        items = [DemoQuestion(Image.fromarray(data.chelsea()), "What animal is this?", "cat", "photo")]
    cache = VisualTokenCache(max_bytes=64 * 1024 * 1024)
    results = _answer(loaded, processor, items, chosen, cache, max_new_tokens)
    header = f"{'m':>3}  {'TFLOPs':>8}  {'ms*':>6}  {'ok':>5}  {'type':<8}  question -> answer (truth)"
    typer.echo(header)
    typer.echo("-" * len(header))
    for index, item in enumerate(items):
        if item.scene >= show:
            continue
        for m, result in zip(chosen, results[index]):
            tflops = model_flops(spec, m, text_tokens=result.prompt_tokens - m).tflops
            right, total = _grade(item, result.text)
            ok = "-" if total == 0 else ("yes" if right == total else "no") if total == 1 else f"{right}/{total}"
            answer = result.text if item.kind != "describe" else (result.text[:60] + "...")
            truth = "" if item.answer is None or item.kind == "describe" else f" ({item.answer})"
            typer.echo(f"{m:>3}  {tflops:>8.5f}  {result.total_time_s * 1000:>6.1f}  {ok:>5}  {item.kind:<8}  "
                       f"{item.question} -> {answer!r}{truth}")
    typer.echo("* ms: the batched call that answered the row (all questions at one budget in one call); "
               "TFLOPs: analytic, per question (vision + MQT + LM prefill)")
    if image is not None:
        return
    kinds = list(dict.fromkeys(item.kind for item in items))
    typer.echo(f"\naccuracy by budget over {sum(i.kind != 'describe' for i in items)} questions and "
               f"{sum(i.kind == 'describe' for i in items)} descriptions (per cell), % right:")
    typer.echo(f"{'m':>3}  {'questions':>9}  " + "  ".join(f"{k:>8}" for k in kinds))
    for j, m in enumerate(chosen):
        per_kind: dict[str, list[int]] = {k: [0, 0] for k in kinds}
        for index, item in enumerate(items):
            right, total = _grade(item, results[index][j].text)
            per_kind[item.kind][0] += right
            per_kind[item.kind][1] += total
        asked = [v for k, v in per_kind.items() if k != "describe"]
        overall = sum(v[0] for v in asked) / max(1, sum(v[1] for v in asked))
        cells = "  ".join(f"{100 * v[0] / max(1, v[1]):>8.1f}" for v in per_kind.values())
        typer.echo(f"{m:>3}  {100 * overall:>9.1f}  {cells}")
    stats = cache.stats()
    typer.echo(f"(vision tower passes: {stats.misses} for {len({i.scene for i in items})} images "
               f"at {len(chosen)} budgets; cache hits {stats.hits})")
