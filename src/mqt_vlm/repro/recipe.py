"""The CPU reproduction: one Matryoshka model versus one model per fixed budget, same data and steps.

Steps (each skipped when its output exists, so an interrupted run continues):
1. data: synthetic scenes with questions of four types (`mqt_vlm.data.synthetic`);
2. tokenizer: a small BPE trained on the training texts (`repro/tokenizer.py`);
3. vision tower: a small CLIP-architecture tower pretrained on the scenes, then frozen (`repro/tower.py`);
4. stage 0: the small LM learns the language of the captions (text only: the paper starts from a
   pretrained LLM; ours is trained from scratch here);
5. stage 1: only the MQT (pos_embed included) at m = M on captions, LM and tower frozen;
6. stage 2 for each run: LLM + MQT (pos_embed and tower frozen) on the questions, with the
   paper's random even budget (`mqt`) or one fixed budget (`fixed-m`); same steps, data and seed;
7. evaluation of every model at every budget on the test split, by question type.
Training stages run `python -m mqt_vlm.train` with configs from `configs/repro/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError


@dataclass
class ReproConfig:
    seed: int = 0
    n_images: int = 3000
    num_queries: int = 32
    fixed_budgets: tuple[int, ...] = (2, 4, 8, 16, 32)
    eval_budgets: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    mqt_sampler: str = "even:2-32"
    lm_hidden: int = 128
    lm_layers: int = 4
    lm_heads: int = 4
    vocab_size: int = 384
    stage0_steps: int = 300
    stage1_steps: int = 300
    stage2_steps: int = 1200
    batch_size: int = 32
    eval_limit: int | None = None
    configs_dir: str | None = None  # default: the repo's configs/repro
    extra: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> list[tuple[str, str]]:
        """(name, budget sampler) of each stage-2 run."""
        return [("mqt", self.mqt_sampler)] + [(f"fixed-{m}", f"fixed:{m}") for m in self.fixed_budgets]


def _configs_dir(config: ReproConfig) -> Path:
    if config.configs_dir:
        return Path(config.configs_dir)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "configs" / "repro").is_dir():
            return parent / "configs" / "repro"
    raise MQTError("configs/repro not found; run from a source checkout or pass configs_dir.")


def _log(message: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def prepare_data(out: Path, config: ReproConfig) -> Path:
    from mqt_vlm.data.synthetic import SynthConfig, write_dataset

    data = out / "data"
    if not (data / "meta.json").is_file():
        write_dataset(data, SynthConfig(seed=config.seed, n_images=config.n_images), progress=True)
    return data


def _corpus(data: Path) -> list[str]:
    from mqt_vlm.processing.templates import format_prompt

    texts = []
    for name in ("train.json", "captions_train.json"):
        for record in json.loads((data / name).read_text()):
            turns = record["conversations"]
            texts.append(format_prompt(turns[0]["value"].replace("<image>", "").strip()) + " " + turns[1]["value"] + "</s>")
    return texts


def prepare_tokenizer(out: Path, data: Path, config: ReproConfig) -> Path:
    from mqt_vlm.repro.tokenizer import train_tokenizer

    folder = out / "tokenizer"
    if not (folder / "tokenizer_config.json").is_file():
        train_tokenizer(_corpus(data), folder, vocab_size=config.vocab_size)
    return folder


def prepare_tower(out: Path, config: ReproConfig) -> Path:
    from mqt_vlm.data.synthetic import SynthConfig
    from mqt_vlm.repro.tower import TowerConfig, pretrain_tower

    folder = out / "tower"
    if not (folder / "model.safetensors").is_file():
        metrics = pretrain_tower(SynthConfig(seed=config.seed), TowerConfig(seed=config.seed), folder)
        _log(f"tower: {metrics}")
    return folder


def _query_grid(num_queries: int) -> list[int]:
    """The most square rows x cols grid holding the queries (M = 32 -> 4 x 8)."""
    rows = max(r for r in range(1, int(num_queries**0.5) + 1) if num_queries % r == 0)
    return [rows, num_queries // rows]


def write_preset(out: Path, tokenizer_dir: Path, config: ReproConfig) -> Path:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    preset = {
        "description": "CPU reproduction model: pretrained small tower, small LLaMA-style LM, MQT.",
        "vision_config": {},  # taken from the tower folder
        "text_config": {
            "model_type": "llama", "hidden_size": config.lm_hidden, "intermediate_size": 2 * config.lm_hidden,
            "num_hidden_layers": config.lm_layers, "num_attention_heads": config.lm_heads,
            "num_key_value_heads": config.lm_heads, "vocab_size": len(tokenizer), "max_position_embeddings": 512,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": True,
        },
        "mqt_config": {"num_queries": config.num_queries, "num_heads": 4, "query_grid": _query_grid(config.num_queries)},
        "image_processor": {"crop_size": 64},
    }
    path = out / "preset.json"
    path.write_text(json.dumps(preset, indent=2))
    return path


def _text_only_captions(data: Path) -> Path:
    """Stage-0 data: the captions as text-only conversations (no image)."""
    path = data / "captions_text.json"
    if not path.is_file():
        records = []
        for record in json.loads((data / "captions_train.json").read_text()):
            records.append({"id": f"text-{record['id']}", "conversations": [
                {"from": "human", "value": "Describe a scene."}, record["conversations"][1]]})
        path.write_text(json.dumps(records))
    return path


def _train(config_file: Path, out: Path, overrides: dict[str, Any], log: Path) -> Path:
    """One stage in a subprocess (a clean Accelerate state per run); returns out/final."""
    from mqt_vlm.train.config import load_config

    final = out / "final"
    if (final / "config.json").is_file():
        return final
    settings = load_config(config_file).with_overrides(overrides)
    out.mkdir(parents=True, exist_ok=True)
    resolved = out / "resolved_config.json"
    resolved.write_text(json.dumps(settings.to_dict(), indent=2, default=str))
    command = [sys.executable, "-m", "mqt_vlm.train", str(resolved), str(out)]
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        command.append("--resume")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("a") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0 or not (final / "config.json").is_file():
        raise MQTError(f"Training failed ({' '.join(command)}); see {log}.")
    return final


def train_all(out: Path, data: Path, tokenizer: Path, tower: Path, preset: Path, config: ReproConfig) -> dict[str, Path]:
    """Stages 0 and 1 once (shared), then stage 2 once per run; returns run name -> model folder."""
    configs = _configs_dir(config)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = {"runtime.seed": config.seed, "optim.global_batch_size": config.batch_size,
              "optim.micro_batch_size": config.batch_size, "data.image_folder": str(data)}
    timings: dict[str, float] = {}
    start = time.perf_counter()
    stage0 = _train(configs / "stage0-lm.yaml", out / "stage0", {
        **common, "model.preset": str(preset), "model.vision": str(tower), "model.tokenizer": str(tokenizer),
        "data.path": str(_text_only_captions(data)), "budget.sampler": f"fixed:{config.num_queries}",
        "runtime.max_steps": config.stage0_steps}, logs / "stage0.log")
    timings["stage0"] = time.perf_counter() - start
    _log(f"stage 0 (LM on caption text) done: {stage0}")
    start = time.perf_counter()
    stage1 = _train(configs / "stage1.yaml", out / "stage1", {
        **common, "model.pretrained": str(stage0), "data.path": str(data / "captions_train.json"),
        "budget.sampler": f"fixed:{config.num_queries}", "runtime.max_steps": config.stage1_steps}, logs / "stage1.log")
    timings["stage1"] = time.perf_counter() - start
    _log(f"stage 1 (MQT alignment at m = M) done: {stage1}")
    models: dict[str, Path] = {}
    for name, sampler in config.runs():
        start = time.perf_counter()
        models[name] = _train(configs / "stage2.yaml", out / f"stage2-{name}", {
            **common, "model.pretrained": str(stage1), "data.path": str(data / "train.json"),
            "budget.sampler": sampler, "runtime.max_steps": config.stage2_steps}, logs / f"stage2-{name}.log")
        timings[f"stage2-{name}"] = time.perf_counter() - start
        _log(f"stage 2 {name} ({sampler}) done in {timings[f'stage2-{name}']:.0f} s")
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    return models


BUILTIN_FILES = ("config.json", "generation_config.json", "model.safetensors", "processor_config.json",
                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def install_builtin(model_dir: Path, name: str = "shapes") -> Path:
    """Copy a trained model into the package (`builtin:NAME`), weights and processor files only."""
    import shutil

    target = Path(str(resources.files("mqt_vlm"))) / "builtin" / name
    target.mkdir(parents=True, exist_ok=True)
    for file in BUILTIN_FILES:
        if (model_dir / file).is_file():
            shutil.copy(model_dir / file, target / file)
    return target


def reproduce(out: Path, config: ReproConfig, install: bool = False) -> dict[str, Any]:
    """Run the whole recipe; returns the summary also written to out/summary.json."""
    from mqt_vlm.repro.report import comparison, evaluate_models, plot, write_tables

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = prepare_data(out, config)
    _log(f"data: {data}")
    tokenizer = prepare_tokenizer(out, data, config)
    tower = prepare_tower(out, config)
    preset = write_preset(out, tokenizer, config)
    models = train_all(out, data, tokenizer, tower, preset, config)
    eval_start = time.perf_counter()
    rows = evaluate_models(models, data, out / "eval", config.eval_budgets, config.eval_limit)
    table = write_tables(rows, out, config.fixed_budgets, config.eval_budgets)
    figure = plot(rows, out, config.fixed_budgets, config.eval_budgets)
    summary = {
        "config": asdict(config),
        "wall_seconds": time.perf_counter() - start,
        "eval_seconds": time.perf_counter() - eval_start,
        "timings": json.loads((out / "timings.json").read_text()),
        "comparison": comparison(rows, config.fixed_budgets),
        "figure": str(figure),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(table)
    _log(f"done in {summary['wall_seconds'] / 60:.1f} min; table {out / 'results.md'}, figure {figure}")
    if install:
        _log(f"installed the MQT model as builtin:shapes in {install_builtin(models['mqt'])}")
    return summary
