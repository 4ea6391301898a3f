"""The training conversations of the CPU reproduction, built from scene graphs.

One scene gives one multi-turn conversation: several questions about it (LLaVA-1.5's instruction
data is multi-turn in the same way), optionally preceded by a describe-every-cell turn. The first
user turn carries the scene: the image (`<image>`, stages 1-2) or, for the text-only stage 0, the
scene written out as its description, which is what the visual tokens must come to stand for.

Why multi-turn: every answer is a loss target, so one sequence teaches several questions for one
pass over the shared prefix (system prompt, scene), several times cheaper per question on CPU.
Why a describe turn in shuffled cell order: listing cells in a random order makes the model find
each cell by its key, the retrieval every cell and relation question needs, with sixteen targets
per scene instead of one; in reading order the list can be produced by counting alone. Stage 2 mixes
both orders, so a generated description still follows reading order (the likelier next key).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from mqt_vlm.data.synthetic import DESCRIBE_PROMPT, questions_for_scene
from mqt_vlm.data.synthetic_scene import Scene, SynthConfig, describe_scene, generate_scene, scene_rng
from mqt_vlm.processing.templates import IMAGE_TOKEN


@dataclass(frozen=True)
class ConversationConfig:
    """How scenes become conversations (shared by the text-only stage 0 and the visual stage 2)."""

    questions: int = 8  # questions per conversation (fewer when the scene cannot supply them)
    describe_prob: float = 0.5  # chance a conversation starts with a describe-every-cell turn
    describe_questions: int = 4  # questions after a describe turn (the description is long already)
    shuffle_describe: float = 1.0  # chance a training description lists its cells in a random order


def shuffled_description(scene: Scene, rng: random.Random) -> str:
    """`describe_scene` with its cells in a random order (same sentences, same tokens)."""
    sentences = [part if part.endswith(".") else part + "." for part in describe_scene(scene).split(". ")]
    rng.shuffle(sentences)
    return " ".join(sentences)


def scene_turns(scene: Scene, synth: SynthConfig, rng: random.Random, config: ConversationConfig,
                scene_text: str | None) -> list[dict[str, str]]:
    """LLaVA-layout turns for one scene. `scene_text=None` puts `<image>` first (a visual record);
    otherwise the first user turn starts with `scene_text` (a text-only record)."""
    opener = IMAGE_TOKEN if scene_text is None else scene_text
    turns: list[dict[str, str]] = []
    count = config.questions
    if rng.random() < config.describe_prob:
        shuffle = config.shuffle_describe >= 1 or (config.shuffle_describe > 0 and rng.random() < config.shuffle_describe)
        description = shuffled_description(scene, rng) if shuffle else describe_scene(scene)
        turns += [{"from": "human", "value": f"{opener}\n{DESCRIBE_PROMPT}"}, {"from": "gpt", "value": description}]
        count = config.describe_questions
    questions = questions_for_scene(scene, rng, replace(synth, questions_per_image=max(count, 1)))[:count]
    for question in questions:
        text = question.text if turns else f"{opener}\n{question.text}"
        turns += [{"from": "human", "value": text}, {"from": "gpt", "value": question.answer}]
    return turns


def text_records(synth: SynthConfig, count: int, config: ConversationConfig, stream: str = "stage0") -> list[dict[str, Any]]:
    """Text-only conversations about `count` fresh scenes (stage 0: the scene written out as text)."""
    records = []
    for index in range(count):
        scene = generate_scene(scene_rng(synth.seed, index, f"{stream}-scene"), synth)
        rng = scene_rng(synth.seed, index, f"{stream}-turns")
        turns = scene_turns(scene, synth, rng, config, scene_text=describe_scene(scene))
        records.append({"id": f"{stream}-{index:06d}", "conversations": turns})
    return records


def image_records(scenes: list[dict[str, Any]], synth: SynthConfig, config: ConversationConfig,
                  split: str = "train", stream: str = "stage2", variants: int = 1) -> list[dict[str, Any]]:
    """Visual conversations about each image of `split` in `scenes.json` (written by `write_dataset`):
    `variants` different conversations per image (other questions, other description order), so a
    long run revisits an image with new questions rather than the same ones."""
    from mqt_vlm.data.synthetic_scene import SceneObject

    records = []
    for variant in range(variants):
        for entry in scenes:
            if entry["split"] != split:
                continue
            scene = Scene(grid=entry["grid"], objects=tuple(SceneObject(**o) for o in entry["objects"]))
            rng = scene_rng(synth.seed, entry["index"], f"{stream}-turns-{variant}")
            turns = scene_turns(scene, synth, rng, config, scene_text=None)
            records.append({"id": f"{stream}-{entry['index']:06d}-{variant}", "image": entry["image"], "conversations": turns})
    return records
