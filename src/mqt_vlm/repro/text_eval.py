"""Text-only accuracy of the stage-0 LM: the scene written out as text, then one question.

This is the ceiling of the visual model: the visual tokens can at best stand in for the written
description, so a question type the LM cannot answer from text it will not answer from pixels.
Answers are single tokens (yes/no, digits, colours, shapes, "none"); greedy decoding, scored by
exact match like the synthetic benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mqt_vlm.data.synthetic import questions_for_scene
from mqt_vlm.data.synthetic_scene import SynthConfig, describe_scene, generate_scene, scene_rng

TextItem = tuple[str, str, str]  # (prompt, answer, question type)


def text_items(synth: SynthConfig, scenes: int, per_scene: int = 4) -> list[TextItem]:
    """Single-turn prompts about held-out scenes (their own seed stream, never used in training)."""
    from mqt_vlm.processing.templates import format_prompt

    items = []
    for index in range(scenes):
        scene = generate_scene(scene_rng(synth.seed, index, "text-eval"), synth)
        for q in questions_for_scene(scene, scene_rng(synth.seed, index, "text-eval-q"), synth)[:per_scene]:
            items.append((format_prompt(f"{describe_scene(scene)}\n{q.text}", with_image=False), q.answer, q.type))
    return items


@torch.no_grad()
def text_accuracy(language_model: Any, tokenizer: Any, items: list[TextItem], batch_size: int = 64) -> dict[str, float]:
    """Percent right overall ("all") and per question type; greedy, two new tokens (word + end)."""
    from mqt_vlm.eval.benchmarks.synthetic import normalize_synthetic

    language_model.eval()
    hits: dict[str, list[int]] = {}
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        encoded = [tokenizer(prompt).input_ids for prompt, _, _ in chunk]
        width = max(len(ids) for ids in encoded)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded])
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
        out = language_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, do_sample=False,
                                      pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        for row, (_, answer, kind) in enumerate(chunk):
            said = tokenizer.decode(out[row, width:], skip_special_tokens=True)
            hits.setdefault(kind, []).append(int(normalize_synthetic(said) == normalize_synthetic(answer)))
    scores = {kind: 100.0 * sum(v) / len(v) for kind, v in sorted(hits.items())}
    scores["all"] = 100.0 * sum(sum(v) for v in hits.values()) / max(1, sum(len(v) for v in hits.values()))
    return scores


def checkpoint_curve(stage_dir: Path, synth: SynthConfig, scenes: int) -> list[dict[str, Any]]:
    """Text-only accuracy at every kept checkpoint of a stage-0 run and at its end (the learning curve)."""
    from safetensors.torch import load_file

    from mqt_vlm.loading import load_model
    from mqt_vlm.train.checkpoint import list_checkpoints

    model, processor = load_model(stage_dir / "final")
    items = text_items(synth, scenes)
    final_state = {k: v.clone() for k, v in model.state_dict().items()}
    curve = []
    for step, folder in list_checkpoints(stage_dir):
        weights = Path(folder) / "model.safetensors"
        if not weights.is_file():
            continue
        model.load_state_dict(load_file(str(weights)), strict=False)
        curve.append({"step": step, **text_accuracy(model.language_model, processor.tokenizer, items)})
    model.load_state_dict(final_state)
    final = {"step": "final", **text_accuracy(model.language_model, processor.tokenizer, items)}
    return [*curve, final]
