"""Batched generation from the processor's defaults, with a tokenizer that pads on the right (as
Vicuna's tokenizer_config and build_model's tokenizers do): every row's scores equal the row alone."""

from __future__ import annotations

import torch


def generate_scores(model, batch, budgets, steps=6):
    with torch.no_grad():
        out = model.generate(**batch, num_visual_tokens=budgets, max_new_tokens=steps, min_new_tokens=steps,
                             do_sample=False, eos_token_id=[], output_scores=True, return_dict_in_generate=True)
    new = out.sequences[:, batch["input_ids"].shape[1]:]
    return new, torch.stack(out.scores, dim=1)  # [B, steps], [B, steps, V]


def test_mixed_budget_batch_scores_equal_single_runs(tiny_model, photos, random_image):
    model, processor = tiny_model
    assert processor.tokenizer.padding_side == "right"
    cases = [(photos["astronaut"], 1, "What is this?"), (photos["coffee"], 16, "Describe the picture in great detail."),
             (random_image, 7, "Color?")]
    prompts = [processor.format_prompt(q) for _, _, q in cases]
    images, budgets = [c[0] for c in cases], [c[1] for c in cases]
    batch = processor(images=images, text=prompts, num_visual_tokens=budgets)  # the defaults
    assert (batch["attention_mask"][:, -1] == 1).all() and (batch["attention_mask"][:, 0] == 0).any()
    tokens, scores = generate_scores(model, batch, budgets)
    for row, (image, m, _) in enumerate(cases):
        alone = processor(images=image, text=prompts[row], num_visual_tokens=m)
        single_tokens, single_scores = generate_scores(model, alone, [m])
        assert tokens[row].tolist() == single_tokens[0].tolist()
        torch.testing.assert_close(scores[row], single_scores[0], atol=1e-4, rtol=1e-4)
    assert len({tuple(t.tolist()) for t in tokens}) > 1  # the rows really differ

    # what the default avoids: right padding puts pad tokens between a short prompt and its answer
    right = processor(images=images, text=prompts, num_visual_tokens=budgets, padding_side="right")
    _, right_scores = generate_scores(model, right, budgets)
    short = int(batch["attention_mask"].sum(dim=1).argmin())
    assert not torch.allclose(right_scores[short], scores[short], atol=1e-3)
