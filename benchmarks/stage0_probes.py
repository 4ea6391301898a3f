"""Probes of a stage-0 run's checkpoints (docs/reproduction.md, "Does the LM learn to retrieve?").

For each checkpoint of `RUN/stage0/checkpoints/step-*` (a `python -m mqt_vlm.repro.base --out RUN`
run), with the run's own tokenizer:
- text-only accuracy by question type on held-out 4x4 scenes (`repro.text_eval`, as `curve.json`);
- copy probe: a describe-every-cell answer in shuffled order follows the scene written out in the
  prompt, so the content after each cell key can be copied from the prompt. Teacher-forced argmax
  accuracy of that content, beside the share of "none" (what the prior gives), and its mean NLL with
  the true scene versus another scene in the prompt: the gap says whether the LM uses the scene at
  all, the true-scene NLL how well it retrieves.

    python benchmarks/stage0_probes.py runs/pretrain-lm-long --steps 500,1000,2000,4000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def content_positions(tokenizer, user: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of the rendered (user, answer) turn pair and the positions right after each ':' of the answer."""
    from mqt_vlm.processing.templates import render

    pairs = [("user", user), ("assistant", answer)]
    ids = tokenizer("".join(s.text for s in render(pairs, "vicuna_v1"))).input_ids
    start = len(tokenizer("".join(s.text for s in render(pairs[:1], "vicuna_v1"))).input_ids)
    colon = tokenizer.convert_tokens_to_ids(":")
    return ids, [i for i in range(start, len(ids) - 1) if ids[i] == colon]


@torch.no_grad()
def copy_probe(language_model, tokenizer, records: list[dict]) -> dict[str, float]:
    none_id = tokenizer.convert_tokens_to_ids("▁none")
    hits = total = nones = 0
    nll_true: list[float] = []
    nll_other: list[float] = []
    for k, record in enumerate(records):
        answer = record["conversations"][1]["value"]
        for user, bucket in ((record["conversations"][0]["value"], nll_true),
                             (records[(k + 1) % len(records)]["conversations"][0]["value"], nll_other)):
            ids, positions = content_positions(tokenizer, user, answer)
            logp = language_model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)  # [T, V]
            bucket.append(sum(-logp[i, ids[i + 1]].item() for i in positions) / len(positions))
            if bucket is nll_true:
                predicted = logp.argmax(-1)
                total += len(positions)
                hits += sum(int(predicted[i] == ids[i + 1]) for i in positions)
                nones += sum(int(ids[i + 1] == none_id) for i in positions)
    return {"copy_accuracy": 100.0 * hits / total, "none_share": 100.0 * nones / total,
            "nll_true_scene": sum(nll_true) / len(nll_true), "nll_other_scene": sum(nll_other) / len(nll_other)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a stage-0 run folder (python -m mqt_vlm.repro.base --out RUN)")
    parser.add_argument("--steps", default="", help="checkpoint steps, comma-separated (default: all)")
    parser.add_argument("--scenes", type=int, default=100, help="held-out scenes for the text-only accuracy")
    parser.add_argument("--probe-scenes", type=int, default=40, help="scenes for the copy probe")
    parser.add_argument("--json-out", type=Path, help="write the rows as JSON")
    args = parser.parse_args()

    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from mqt_vlm.loading import load_model
    from mqt_vlm.repro.base import synth_config
    from mqt_vlm.repro.conversations import ConversationConfig, text_records
    from mqt_vlm.repro.text_eval import text_accuracy, text_items
    from mqt_vlm.train.checkpoint import list_checkpoints

    torch.manual_seed(0)
    model, _ = load_model("builtin:shapes-base")  # the architecture; every checkpoint's weights replace it
    tokenizer = AutoTokenizer.from_pretrained(args.run / "tokenizer")
    items = text_items(synth_config(999), args.scenes)
    records = text_records(synth_config(4242), args.probe_scenes,
                           ConversationConfig(describe_prob=1.0, shuffle_describe=1.0), stream="probe")
    wanted = {int(s) for s in args.steps.split(",") if s.strip()}
    rows = []
    for step, folder in list_checkpoints(args.run / "stage0"):
        if wanted and step not in wanted:
            continue
        model.load_state_dict(load_file(str(Path(folder) / "model.safetensors")), strict=False)
        model.eval()
        row = {"step": step, **text_accuracy(model.language_model, tokenizer, items),
               **copy_probe(model.language_model, tokenizer, records)}
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
