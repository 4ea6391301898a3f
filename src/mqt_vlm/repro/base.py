"""Stage 0 of the CPU reproduction: the pretrained parts MQT-LLaVA starts from, made here.

MQT-LLaVA starts from a released CLIP (frozen) and a released Vicuna. Neither fits 2 CPU cores, so
`make pretrain-lm` makes small stand-ins once and ships them inside the package as
`builtin:shapes-base` (a few MB), and `make reproduce` starts from that, as the paper starts from
released weights:
1. tokenizer: a small BPE with one token per cell key (`repro/tokenizer.py`);
2. vision tower: a small CLIP-architecture tower pretrained on the scenes (`repro/tower.py`);
3. language model: a small LLaMA trained on text only, with the scene written out as its
   describe-every-cell text followed by questions of all four types (`repro/conversations.py`),
   over a mixture of grid sizes (2x2 and 3x3 scenes are the easy end of a curriculum by mixture);
   checkpoints along the way give the learning curve by question type (`curve.json`).
The MQT in the base folder is freshly initialised: stage 1 trains it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from mqt_vlm.data.synthetic_scene import SynthConfig
from mqt_vlm.repro.conversations import ConversationConfig, text_records
from mqt_vlm.repro.steps import log, run_stage

BASE_NAME = "shapes-base"


@dataclass
class BaseConfig:
    seed: int = 0
    grids: tuple[int, ...] = (2, 3, 4, 4)  # one entry per share of the mixture: half the scenes are 4x4
    text_scenes: int = 48000  # text-only conversations (one scene each)
    vocab_size: int = 384
    lm_hidden: int = 128
    lm_layers: int = 4
    lm_heads: int = 8
    num_queries: int = 32
    steps: int = 2500
    batch_size: int = 32
    learning_rate: float = 2e-3
    checkpoint_every: int = 500
    tower_steps: int = 400
    eval_scenes: int = 300  # held-out 4x4 scenes for the text-only accuracy
    conversations: ConversationConfig = field(default_factory=ConversationConfig)


def synth_config(seed: int, grid: int = 4) -> SynthConfig:
    """The scene distribution at one grid size (4x4 is the visual task; smaller grids are easier)."""
    return SynthConfig(seed=seed, grid=grid, image_size=64, min_objects=1 if grid < 4 else 3)


def stage0_records(config: BaseConfig) -> list[dict[str, Any]]:
    """Text-only conversations, the grid sizes interleaved in a fixed order."""
    per_grid = {g: config.grids.count(g) * config.text_scenes // len(config.grids) for g in set(config.grids)}
    parts = {g: text_records(synth_config(config.seed + 1000 * g, g), n, config.conversations, stream=f"stage0-g{g}")
             for g, n in per_grid.items()}
    records: list[dict[str, Any]] = []
    while any(parts.values()):
        for g in sorted(parts):
            if parts[g]:
                records.append(parts[g].pop())
    return records


def tokenizer_corpus(config: BaseConfig) -> list[str]:
    """Texts the BPE is trained on: conversations of both stages rendered with the vicuna_v1 template."""
    from mqt_vlm.data.synthetic_scene import generate_scene, scene_rng
    from mqt_vlm.processing.templates import render
    from mqt_vlm.repro.conversations import scene_turns

    texts = []
    for g in sorted(set(config.grids)):
        synth = synth_config(config.seed + 77, g)
        for index in range(300):
            scene = generate_scene(scene_rng(synth.seed, index, "corpus"), synth)
            for scene_text in (None, "x"):
                rng = scene_rng(synth.seed, index, f"corpus-{scene_text}")
                turns = scene_turns(scene, synth, rng, config.conversations, scene_text=scene_text)
                if scene_text is not None:  # the text form: the description stands where the image goes
                    from mqt_vlm.data.synthetic_scene import describe_scene

                    first = turns[0]["value"].split("\n", 1)[1]
                    turns[0] = {**turns[0], "value": describe_scene(scene) + "\n" + first}
                pairs = [("user" if t["from"] == "human" else "assistant", t["value"].replace("<image>", "")) for t in turns]
                texts.append("".join(s.text for s in render(pairs, "vicuna_v1")))
    return texts


def write_preset(out: Path, tokenizer_dir: Path, config: BaseConfig) -> Path:
    from transformers import AutoTokenizer

    from mqt_vlm.repro.recipe import query_grid

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    preset = {
        "description": "CPU reproduction model: pretrained small tower, small LLaMA-style LM, MQT.",
        "vision_config": {},  # taken from the tower folder
        "text_config": {
            "model_type": "llama", "hidden_size": config.lm_hidden, "intermediate_size": 2 * config.lm_hidden,
            "num_hidden_layers": config.lm_layers, "num_attention_heads": config.lm_heads,
            "num_key_value_heads": config.lm_heads, "vocab_size": len(tokenizer), "max_position_embeddings": 1024,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": True,
        },
        "mqt_config": {"num_queries": config.num_queries, "num_heads": 4, "query_grid": query_grid(config.num_queries)},
        "image_processor": {"crop_size": 64},
        "default_num_visual_tokens": config.num_queries,
    }
    path = out / "preset.json"
    path.write_text(json.dumps(preset, indent=2))
    return path


def pretrain_base(out: Path, config: BaseConfig) -> dict[str, Any]:
    """Every stage-0 step (each skipped when its output exists); returns the summary (summary.json)."""
    from mqt_vlm.repro.text_eval import checkpoint_curve
    from mqt_vlm.repro.tokenizer import train_tokenizer
    from mqt_vlm.repro.tower import TowerConfig, pretrain_tower

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "base_config.json").write_text(json.dumps(asdict(config), indent=2))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    tokenizer = out / "tokenizer"
    if not (tokenizer / "tokenizer_config.json").is_file():
        train_tokenizer(tokenizer_corpus(config), tokenizer, vocab_size=config.vocab_size)
    tower = out / "tower"
    if not (tower / "model.safetensors").is_file():
        log(f"tower: {pretrain_tower(synth_config(config.seed), TowerConfig(seed=config.seed, steps=config.tower_steps), tower)}")
    timings["tower"] = time.perf_counter() - start
    data = out / "stage0_data.json"
    if not data.is_file():
        data.write_text(json.dumps(stage0_records(config)))
    preset = write_preset(out, tokenizer, config)
    start = time.perf_counter()
    final = run_stage("stage0-lm.yaml", out / "stage0", {
        "model.preset": str(preset), "model.vision": str(tower), "model.tokenizer": str(tokenizer),
        "data.path": str(data), "runtime.seed": config.seed, "runtime.max_steps": config.steps,
        "runtime.save_every": config.checkpoint_every, "runtime.keep_checkpoints": 1000,
        "optim.global_batch_size": config.batch_size, "optim.micro_batch_size": config.batch_size,
        "optim.learning_rate": config.learning_rate}, out / "stage0.log")
    timings["stage0"] = time.perf_counter() - start
    log(f"stage 0 done: {final}")
    curve = checkpoint_curve(out / "stage0", synth_config(config.seed + 999), config.eval_scenes)
    (out / "curve.json").write_text(json.dumps(curve, indent=2))
    summary = {"config": asdict(config), "timings": timings, "final": curve[-1] if curve else None, "model": str(final)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def install_base(out: Path, name: str = BASE_NAME) -> Path:
    """Copy the stage-0 model (with its learning curve) into the package as `builtin:NAME`."""
    import shutil

    from mqt_vlm.repro.recipe import install_builtin

    about = ("stage 0 of the CPU reproduction (make pretrain-lm): BPE tokenizer, pretrained tower, LM trained on "
             "text only; the MQT is untrained, so this model does not read images")
    target = install_builtin(Path(out) / "stage0" / "final", name, about)
    for extra in ("curve.json", "summary.json"):
        if (Path(out) / extra).is_file():
            shutil.copy(Path(out) / extra, target / extra)
    return target


def main(
    out: Path = typer.Option(Path("runs/pretrain-lm"), help="Working folder; finished steps are reused, a stopped run resumes."),
    seed: int = typer.Option(0, help="Seed of the scenes, the tower and the LM."),
    steps: int = typer.Option(BaseConfig.steps, help="Optimizer steps of the text-only LM pretraining."),
    install: bool = typer.Option(False, help=f"Copy the result into the package as builtin:{BASE_NAME}."),
    quick: bool = typer.Option(False, help="A few steps of everything (a smoke run, not a result)."),
) -> None:
    """Stage 0 of the reproduction: tokenizer, vision tower and text-pretrained LM (make pretrain-lm)."""
    config = BaseConfig(seed=seed, steps=steps)
    if quick:
        config = BaseConfig(seed=seed, steps=20, text_scenes=400, tower_steps=20, eval_scenes=20, checkpoint_every=10)
    summary = pretrain_base(out, config)
    log(f"text-only accuracy at the end: {summary['final']}")
    if install:
        log(f"installed builtin:{BASE_NAME} in {install_base(out)}")


if __name__ == "__main__":
    typer.run(main)

