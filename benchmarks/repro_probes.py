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
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA = Path("runs/reproduce/data")


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
    args = parser.parse_args()

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
    scores = describe_teacher_forced(model, processor, DATA, (1, 2, 8, 32), 60)
    result = {"name": args.name, "overrides": overrides, "describe_cell_tf": scores}
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
