"""The page's event handlers as plain functions of plain values (paths, strings, numbers).

`app.py` wires them to gradio components; keeping them free of gradio lets the core test them
and keeps the page layout apart from what it computes. Errors are `MQTError`s, which the app shows
as messages on the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.web.engine import Answers, DemoEngine, comparison_budgets

TABLE_HEADERS = ["m", "answer", "right", "time (ms)", "TFLOPs"]


@dataclass(frozen=True)
class SceneView:
    """What the page shows after rendering a scene."""

    image: Image.Image
    question: str  # put in the question box: the description, where the budget shows most
    questions: list[str]  # every question about the scene, for the picker
    truths: dict[str, str]  # question -> true answer (kept in the page's state)


def as_int(value: Any, what: str) -> int:
    """A slider or number box value (gradio sends floats) as an int, refusing fractions."""
    if isinstance(value, bool) or value is None:
        raise MQTError(f"{what} must be a whole number, got {value!r}.")
    number = float(value)
    if not number.is_integer():
        raise MQTError(f"{what} must be a whole number, got {value!r}.")
    return int(number)


def open_image(path: str | None) -> Image.Image:
    """The image the page holds (a file path) decoded as `mqt generate --image` decodes it."""
    from mqt_vlm.processing.images import load_image

    if not path:
        raise MQTError("Upload an image or make a synthetic scene first.")
    return load_image(path)


def verdict(question: str, answer: str, truths: dict[str, str] | None) -> str:
    """'yes' / 'no' (or 'k/n' cells for a description) when the question is a scene's own, else ''."""
    from mqt_vlm.data.synthetic import DESCRIBE_PROMPT
    from mqt_vlm.demo import DemoQuestion, _grade

    truth = (truths or {}).get(question)
    if truth is None:
        return ""
    kind = "describe" if question == DESCRIBE_PROMPT else "question"
    right, total = _grade(DemoQuestion(None, question, truth, kind), answer)
    if total == 0:
        return ""
    return ("yes" if right == total else "no") if total == 1 else f"{right}/{total}"


class PageHandlers:
    """One engine behind every button of the page."""

    def __init__(self, engine: DemoEngine) -> None:
        self.engine = engine

    def scene(self, seed: Any) -> SceneView:
        sample = self.engine.scene(as_int(seed, "The scene seed"))
        questions = [q for q, _ in sample.questions]
        return SceneView(sample.image, questions[-1], questions, dict(sample.questions))

    def truth_line(self, question: str, truths: dict[str, str] | None) -> str:
        truth = (truths or {}).get(question)
        return f"True answer: {truth}" if truth is not None else "True answer: unknown (not a question of this scene)."

    def answer(self, image: str | None, question: str, budget: Any, max_new_tokens: Any,
               truths: dict[str, str] | None = None) -> tuple[str, str]:
        """(answer, a line with its budget, time, TFLOPs and verdict) at one budget."""
        m = as_int(budget, "The budget")
        answers = self.engine.answer(open_image(image), question, [m], as_int(max_new_tokens, "Max new tokens"))
        row = answers.rows[0]
        ok = verdict(question, row.text, truths)
        stats = (f"m = {row.budget} of M = {self.engine.num_queries} visual tokens · {row.time_ms:.0f} ms "
                 f"(LM; {_encode_note(answers)}) · {row.tflops:.5f} TFLOPs · {row.completion_tokens} new tokens"
                 + (f" · right: **{ok}**" if ok else ""))
        return row.text, stats

    def answer_all(self, image: str | None, question: str, max_new_tokens: Any,
                   truths: dict[str, str] | None = None) -> tuple[list[list[Any]], str]:
        """One table row per comparison budget (1, 2, 4, 8, 16, M), and a note on the encoding."""
        budgets = comparison_budgets(self.engine.num_queries)
        answers = self.engine.answer(open_image(image), question, budgets, as_int(max_new_tokens, "Max new tokens"))
        table = [[row.budget, row.text, verdict(question, row.text, truths) or "-", round(row.time_ms, 1),
                  round(row.tflops, 5)] for row in answers.rows]
        note = (f"Budgets {', '.join(map(str, budgets))}: {_encode_note(answers)}; each row's time is the LM "
                "alone (prefill + decoding), TFLOPs the analytic prefill (vision + MQT + LM).")
        return table, note

    def gradcam(self, image: str | None, question: str, budget: Any) -> tuple[Image.Image, str]:
        panel = self.engine.gradcam(open_image(image), question, [as_int(budget, "The budget")])[0]
        return panel.image, panel.label

    def gradcam_all(self, image: str | None, question: str) -> list[tuple[Image.Image, str]]:
        panels = self.engine.gradcam(open_image(image), question, comparison_budgets(self.engine.num_queries))
        return [(panel.image, panel.label) for panel in panels]


def _encode_note(answers: Answers) -> str:
    if answers.encode_ms == 0:
        return "image from the encode-once cache"
    return f"image encoded once at M in {answers.encode_ms:.0f} ms"
