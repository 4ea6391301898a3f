"""Short training probes behind the diagnosis in docs/reproduction.md ("What did not work").

Each probe is one training stage (`configs/repro/stage1.yaml` or `stage2.yaml`, run through the
project's trainer) with a few settings changed, followed by the teacher-forced per-cell description
accuracy on 60 test images at budgets 1, 2, 8 and 32. Run from the repository root after
`make reproduce` has written runs/reproduce/data and runs/reproduce/stage1:

    python benchmarks/repro_probes.py NAME STAGE STEPS [--start FOLDER] [--data-json FILE] [--set KEY=VALUE ...]

e.g. the Matryoshka stage 2 from the stage-1 model, describe-only data, lr 5e-4, 300 steps:

    python benchmarks/repro_probes.py mqt-describe-only stage2 300 --start runs/reproduce/stage1/final \
        --conversations describe_prob=1.0,shuffle_describe=0,describe_questions=0 \
        --set optim.learning_rate=5e-4 --set budget.sampler=even:2-32

Stage-1 probes of docs/reproduction.md: `stage1 300 --mqt-init-scale 10`; a from-scratch LM with
`--set model.pretrained=null --set model.preset=runs/pretrain-lm/preset.json --set
model.vision=runs/pretrain-lm/tower --set model.tokenizer=runs/pretrain-lm/tokenizer`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

DATA = Path("runs/reproduce/data")


def localize_mqt_attention(model: Any, scale: float) -> None:
    """Initialise the MQT's query and key projections as `scale` times the identity (biases zero).

    With the released design the keys are positions only, so this makes each query start by
    attending to the patches near its own position on the grid (the sin-cos embeddings of nearby
    positions are similar), instead of the near-uniform attention of a random init, which averages
    the whole image into every visual token. Measured (docs/reproduction.md): it did not shorten
    stage 1's plateau. Only the starting point changes: the projections train freely.
    """
    attn = model.mqt.attn
    width = attn.embed_dim
    with torch.no_grad():
        attn.in_proj_weight[: 2 * width].copy_(scale * torch.eye(width).repeat(2, 1))
        attn.in_proj_bias[: 2 * width].zero_()


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    from mqt_vlm.loading import load_model
    from mqt_vlm.repro.base import synth_config
    from mqt_vlm.repro.conversations import ConversationConfig, image_records
    from mqt_vlm.repro.report import describe_teacher_forced
    from mqt_vlm.repro.steps import run_stage

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("stage", choices=["stage1", "stage2"])
    parser.add_argument("steps", type=int)
    parser.add_argument("--start", default="src/mqt_vlm/builtin/shapes-base", help="model folder to start from")
    parser.add_argument("--conversations", default="", help="stage 2 data: ConversationConfig fields, k=v,k=v")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/probes"))
    parser.add_argument("--mqt-init-scale", type=float, default=None,
                        help="start from --start with the MQT's query/key projections set to this times the identity")
    parser.add_argument("--template", default="vicuna_v1", help="format of the teacher-forced description (plain: stage 1's)")
    args = parser.parse_args()
    if args.mqt_init_scale is not None:
        model, processor = load_model(args.start)
        localize_mqt_attention(model, args.mqt_init_scale)
        args.start = str(args.out / f"{args.name}-start")
        model.save_pretrained(args.start)
        processor.save_pretrained(args.start)

    overrides: dict[str, object] = {"model.pretrained": args.start, "data.image_folder": str(DATA),
                                    "runtime.max_steps": args.steps, "runtime.seed": 0}
    if args.stage == "stage1":
        overrides["data.path"] = str(DATA / "describe_chat_train.json")
    else:
        fields = dict(item.split("=", 1) for item in args.conversations.split(",") if item)
        config = ConversationConfig(**{k: type(getattr(ConversationConfig(), k))(float(v)) for k, v in fields.items()})
        data_file = args.out / f"{args.name}-data.json"
        data_file.parent.mkdir(parents=True, exist_ok=True)
        scenes = json.loads((DATA / "scenes.json").read_text())
        data_file.write_text(json.dumps(image_records(scenes, synth_config(0), config, variants=3)))
        overrides["data.path"] = str(data_file)
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = _value(value)
    final = run_stage(f"{args.stage}.yaml", args.out / args.name, overrides, args.out / f"{args.name}.log")
    model, processor = load_model(final)
    scores = describe_teacher_forced(model, processor, DATA, (1, 2, 8, 32), 60, template=args.template)
    result = {"name": args.name, "overrides": overrides, "describe_cell_tf": scores}
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
