"""`mqt eval` over K budgets encodes each image once and answers exactly as K separate runs do.

The prefix property makes the M visual tokens of one encoding serve every budget; the runner asks
a batch at all its budgets after one `ModelGenerator.prepare` (the encoding), instead of sweeping
budget by budget. Counted at the tower's embeddings (a forward hook sees every image that enters
the tower), against the per-budget path: the same sweep run once per budget, and LLaVA's own way of
answering (`model.generate` on pixel values, one question at a time).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mqt_vlm.eval.benchmarks import parse_benchmarks
from mqt_vlm.eval.generator import ModelGenerator, load_item_image
from mqt_vlm.eval.runner import predictions_path
from mqt_vlm.eval.sweep import SweepConfig, run_sweep
from mqt_vlm.inference.cache import image_digest

BUDGETS = [2, 4, 8, 16]
BENCHMARKS = "pope,gqa,synthetic"
MAX_NEW_TOKENS = 4


def sweep(root: Path, out: Path, model, processor, budgets, batch_size: int) -> list[int]:
    """Images through the vision tower, per tower pass, during one `mqt eval`-style sweep."""
    entered: list[int] = []
    hook = model.vision_tower.embeddings.register_forward_hook(lambda _m, _i, output: entered.append(output.shape[0]))
    try:
        config = SweepConfig(benchmarks=parse_benchmarks(BENCHMARKS), budgets=budgets, data_root=root, out=out,
                             model="tiny", limit=2, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS,
                             progress=False, plots=False)
        run_sweep(config, ModelGenerator(model, processor), echo=lambda _: None)
    finally:
        hook.remove()
    return entered


def answers(out: Path, benchmark: str, budget: int) -> dict[str, str]:
    lines = predictions_path(out, benchmark, budget).read_text().splitlines()
    return {record["key"]: record["text"] for record in map(json.loads, lines)}


def items(root: Path) -> list:
    return [item for b in parse_benchmarks(BENCHMARKS) for item in b.limit(b.load(b.data_dir(root)), 2)]


def test_each_image_is_encoded_once_for_all_budgets(eval_data, tiny, tmp_path: Path) -> None:
    root, _ = eval_data
    model, processor = tiny
    distinct = {image_digest(load_item_image(item)) for item in items(root)}
    entered = sweep(root, tmp_path / "all", model, processor, BUDGETS, batch_size=4)
    assert sum(entered) == len(distinct) < len(items(root)) * len(BUDGETS)
    # the per-budget path (one run per budget) encodes every image again for every budget
    per_budget = [sum(sweep(root, tmp_path / f"m{m}", model, processor, [m], batch_size=4)) for m in BUDGETS]
    assert per_budget == [len(distinct)] * len(BUDGETS)
    for benchmark in BENCHMARKS.split(","):
        for m in BUDGETS:
            assert answers(tmp_path / "all", benchmark, m) == answers(tmp_path / f"m{m}", benchmark, m), (benchmark, m)


def test_answers_equal_model_generate_on_pixel_values(eval_data, tiny, tmp_path: Path) -> None:
    """One question at a time, the sweep's answers are what `model.generate` gives from the pixels at
    each budget, the tower run anew every time (how the evaluation generated before)."""
    root, _ = eval_data
    model, processor = tiny
    sweep(root, tmp_path / "all", model, processor, BUDGETS, batch_size=1)
    by_key = {(b.name, item.key): item for b in parse_benchmarks(BENCHMARKS) for item in b.limit(b.load(b.data_dir(root)), 2)}
    checked = 0
    for (benchmark, key), item in by_key.items():
        image, prompt = load_item_image(item), processor.format_prompt(item.text)
        for m in BUDGETS:
            inputs = processor(images=image, text=prompt, num_visual_tokens=m)
            with torch.no_grad():
                output = model.generate(**inputs, num_visual_tokens=m, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                        pad_token_id=processor.tokenizer.pad_token_id)
            text = processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            assert answers(tmp_path / "all", benchmark, m)[key] == text.strip(), (benchmark, key, m)
            checked += 1
    assert checked == len(by_key) * len(BUDGETS) > 20


@pytest.mark.parametrize("budgets", [["2", "M"], [16, "max"]])
def test_budget_words_in_a_sweep(eval_data, tiny, tmp_path: Path, budgets) -> None:
    root, _ = eval_data
    model, processor = tiny
    sweep(root, tmp_path, model, processor, budgets, batch_size=8)
    assert predictions_path(tmp_path, "gqa", 16).is_file()
