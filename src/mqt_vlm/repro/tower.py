"""Pretraining the small vision tower for the CPU reproduction.

MQT-LLaVA keeps CLIP frozen; no PyPI package ships CLIP weights, and a random tower mixes colour and
shape information poorly. So the recipe first pretrains a small CLIP-architecture tower on synthetic
scenes with a dense, local objective: the features at `vision_feature_layer` (-2, what the MQT
reads), pooled over each grid cell's patches, must classify that cell's colour and shape (or
"empty"). The tower is then frozen for both MQT stages, as in the paper. It never sees questions.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mqt_vlm.data.synthetic_scene import Scene, SynthConfig, generate_scene, render_scene, scene_rng
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.image_processor import MQTImageProcessor


@dataclass
class TowerConfig:
    patch_size: int = 8
    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 192
    steps: int = 400
    batch_size: int = 64
    pool_images: int = 3000
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_layers < 2:
            raise MQTError("The tower needs >= 2 layers: features come from hidden_states[-2].")


def cell_labels(scene: Scene, synth: SynthConfig) -> tuple[list[int], list[int]]:
    """Per cell (row-major): colour index + 1 and shape index + 1, 0 for an empty cell."""
    colours = [0] * (synth.grid * synth.grid)
    shapes = [0] * (synth.grid * synth.grid)
    for obj in scene.objects:
        cell = (obj.row - 1) * synth.grid + (obj.col - 1)
        colours[cell] = synth.colours.index(obj.colour) + 1
        shapes[cell] = synth.shapes.index(obj.shape) + 1
    return colours, shapes


def pretrain_tower(synth: SynthConfig, config: TowerConfig, out_dir: Path, log_every: int = 50) -> dict[str, float]:
    """Train and save the tower as an HF CLIP vision folder (config, weights, preprocessor)."""
    from tqdm.auto import tqdm
    from transformers import CLIPVisionConfig, CLIPVisionModel

    if synth.image_size % config.patch_size or (synth.image_size // config.patch_size) % synth.grid:
        raise MQTError("image_size must split into patches that tile the scene grid evenly.")
    torch.manual_seed(config.seed)
    tower = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=config.hidden_size, intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, image_size=synth.image_size, patch_size=config.patch_size,
    ))
    processor = MQTImageProcessor(crop_size=synth.image_size)
    scenes = [generate_scene(scene_rng(config.seed, i, "tower"), synth) for i in range(config.pool_images)]
    pixels = processor([render_scene(s, synth) for s in scenes])["pixel_values"]  # [P, 3, S, S]
    labels = torch.tensor([cell_labels(s, synth) for s in scenes])  # [P, 2, G*G]
    colour_head = nn.Linear(config.hidden_size, len(synth.colours) + 1)
    shape_head = nn.Linear(config.hidden_size, len(synth.shapes) + 1)
    params = [*tower.parameters(), *colour_head.parameters(), *shape_head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    side = synth.image_size // config.patch_size  # patches per row
    per_cell = side // synth.grid  # patches per cell side
    generator = torch.Generator().manual_seed(config.seed)
    start, metrics = time.perf_counter(), {}
    tower.train()
    for step in tqdm(range(config.steps), desc="tower pretraining", leave=False):
        idx = torch.randint(0, len(scenes), (config.batch_size,), generator=generator)
        feats = tower(pixels[idx], output_hidden_states=True).hidden_states[-2][:, 1:]  # [B, N, C]
        grid = feats.reshape(-1, synth.grid, per_cell, synth.grid, per_cell, config.hidden_size)  # [B, G, p, G, p, C]
        cells = grid.mean(dim=(2, 4)).reshape(-1, synth.grid * synth.grid, config.hidden_size)  # [B, G*G, C]
        colour_logits, shape_logits = colour_head(cells), shape_head(cells)  # [B, G*G, K]
        target = labels[idx]  # [B, 2, G*G]
        loss = F.cross_entropy(colour_logits.flatten(0, 1), target[:, 0].flatten()) + F.cross_entropy(
            shape_logits.flatten(0, 1), target[:, 1].flatten()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == config.steps - 1:
            with torch.no_grad():
                metrics = {
                    "loss": float(loss),
                    "colour_acc": float((colour_logits.argmax(-1) == target[:, 0]).float().mean()),
                    "shape_acc": float((shape_logits.argmax(-1) == target[:, 1]).float().mean()),
                }
    metrics["seconds"] = time.perf_counter() - start
    out_dir = Path(out_dir)
    tower.eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)  # preprocessor_config.json: crop size, CLIP mean/std
    (out_dir / "tower_pretraining.json").write_text(__import__("json").dumps({"config": asdict(config), "metrics": metrics}, indent=2))
    return metrics
