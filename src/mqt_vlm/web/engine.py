"""What the web demo computes, with no gradio in sight: answers, cost and Grad-CAM per budget.

Answers go through the one generation path (`generate_batch`) with the prompt `mqt generate`
builds, so the page and the command line give the same text for the same image, question, budget
and length cap (the web tests check this). Each image is encoded once at M into the encode-once
cache; every budget then reads the first m rows (the prefix property), so a row's time is the LM's
alone and the tower's time is reported once. TFLOPs are the analytic prefill count `mqt demo`
prints (vision + MQT + LM prefill at m visual tokens, `mqt_vlm.analysis.flops`).

One lock serialises model calls: gradio runs handlers on worker threads, and Grad-CAM hooks the
vision tower, which must not fire inside a concurrent generation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from mqt_vlm.budgets import parse_budgets
from mqt_vlm.errors import MQTError

COMPARISON_BUDGETS = (1, 2, 4, 8, 16)  # plus M: the "all budgets" row of the page
MAX_NEW_TOKENS_LIMIT = 512


def comparison_budgets(num_queries: int) -> list[int]:
    """1, 2, 4, 8, 16 (those below M) and M itself."""
    return sorted({b for b in COMPARISON_BUDGETS if b < num_queries} | {num_queries})


@dataclass(frozen=True)
class BudgetAnswer:
    """One budget's answer and what it cost."""

    budget: int
    text: str
    time_ms: float  # the LM call (the image's visual tokens come from the cache)
    tflops: float  # analytic prefill: vision + MQT + LM over m visual + text tokens
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Answers:
    """Answers at several budgets from one encoding of the image."""

    encode_ms: float  # vision tower + MQT at M, once (0 when the image was already cached)
    rows: list[BudgetAnswer]


@dataclass(frozen=True)
class CamPanel:
    """One budget's Grad-CAM over the image the model sees."""

    budget: int
    image: Image.Image
    label: str  # what the map explains, e.g. "m = 8: logit of 'yes'"


@dataclass(frozen=True)
class SceneSample:
    """A freshly rendered synthetic scene and questions about it with their true answers."""

    seed: int
    image: Image.Image
    questions: list[tuple[str, str]]  # (question, truth); the last asks for a description


class DemoEngine:
    """A loaded model with its encode-once cache, answering for the web page."""

    def __init__(self, model: Any, processor: Any, name: str) -> None:
        from mqt_vlm.analysis.flops import from_config
        from mqt_vlm.inference.cache import VisualTokenCache

        self.model, self.processor, self.name = model, processor, name
        self.cache = VisualTokenCache(max_bytes=64 * 1024 * 1024)
        self.spec = from_config(model.config)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str) -> DemoEngine:
        """The model `mqt demo --model` names (a folder, builtin:NAME or tiny-random)."""
        from mqt_vlm.demo import _load

        loaded, processor, name = _load(model)
        return cls(loaded, processor, name)

    @property
    def num_queries(self) -> int:
        return int(self.model.num_queries)

    @property
    def default_budget(self) -> int:
        return int(self.model.config.default_num_visual_tokens)

    def about(self) -> str:
        from mqt_vlm.demo import _model_card

        return _model_card(self.name)

    def prompt(self, question: str) -> str:
        """The prompt `mqt generate -p QUESTION -i IMAGE` builds: one image, then the question."""
        from mqt_vlm.inference.prompting import build_prompt, user_text

        if not question or not question.strip():
            raise MQTError("Type a question first.")
        return build_prompt([("user", user_text([("image", ""), ("text", question)]))], self.processor)

    def answer(self, image: Image.Image, question: str, budgets: Sequence[int], max_new_tokens: int) -> Answers:
        """Greedy answers at each budget, one `generate_batch` call per budget so each row's time is its own."""
        from mqt_vlm.analysis.flops import model_flops
        from mqt_vlm.inference.batch import generate_batch
        from mqt_vlm.inference.encoding import encode_images
        from mqt_vlm.inference.params import GenerationRequest, SamplingParams

        chosen = [int(m) for m in parse_budgets(budgets, self.num_queries, option="budget")]
        valid = isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool)
        if not valid or not 1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise MQTError(f"max_new_tokens must be an int in 1..{MAX_NEW_TOKENS_LIMIT}, got {max_new_tokens!r}.")
        prompt = self.prompt(question)
        params = SamplingParams(max_new_tokens=max_new_tokens)
        rows = []
        with self._lock:
            start = time.monotonic()
            encoded = encode_images(self.model, self.processor, [image], self.cache)
            encode_ms = 0.0 if all(encoded.from_cache) else (time.monotonic() - start) * 1000
            for m in chosen:
                result = generate_batch(self.model, self.processor, [GenerationRequest(prompt, [image], m, params)],
                                        self.cache)[0]
                tflops = model_flops(self.spec, m, text_tokens=result.prompt_tokens - m).tflops
                rows.append(BudgetAnswer(m, result.text, result.total_time_s * 1000, tflops, result.prompt_tokens,
                                         result.completion_tokens))
        return Answers(encode_ms, rows)

    def gradcam(self, image: Image.Image, question: str, budgets: Sequence[int], size: int = 224) -> list[CamPanel]:
        """Grad-CAM of the first answer token's logit at each budget (one tower pass for all)."""
        from mqt_vlm.analysis.gradcam_cli import explain
        from mqt_vlm.web.overlay import cam_overlay

        chosen = [int(m) for m in parse_budgets(budgets, self.num_queries, option="budget")]
        prompt = self.prompt(question)
        with self._lock:
            view, results = explain(self.model, self.processor, image, prompt, chosen)
        panels = []
        for result in results:
            empty = "" if float(result.cam.max()) > 0 else " (no positive evidence)"
            label = f"m = {result.budget}: {result.target}{empty}"
            panels.append(CamPanel(result.budget, cam_overlay(view, result.cam, size), label))
        return panels

    def scene(self, seed: int) -> SceneSample:
        """The scene `mqt demo --seed SEED` shows first: its four questions and the description."""
        from mqt_vlm.demo import scene_questions

        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise MQTError(f"The scene seed must be an int >= 0, got {seed!r}.")
        items = scene_questions(seed, 1, per_scene=4)
        return SceneSample(seed, items[0].image, [(item.question, str(item.answer)) for item in items])
