"""Chat templates: `vicuna_v1` (stage 2 and all evaluation), `plain` (stage 1), and `chat` (the
LM's own chat template). A conversation renders to text segments flagged as loss targets, so the
same code builds inference prompts and training labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mqt_vlm.errors import MQTError

IMAGE_TOKEN = "<image>"
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TEMPLATES = ("vicuna_v1", "plain", "chat")
SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."
MULTIPLE_CHOICE_SUFFIX = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text; `target` marks assistant text that carries the training loss."""

    text: str
    target: bool = False


def _check_turns(turns: Sequence[tuple[str, str]]) -> None:
    if not turns:
        raise MQTError("A conversation needs at least one user turn.")
    for i, (role, _) in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise MQTError(f"Turn {i} has role {role!r}; turns must alternate user, assistant, user, ...")


def render(
    turns: Sequence[tuple[str, str]],
    template: str = "vicuna_v1",
    tokenizer: Any = None,
) -> list[Segment]:
    """Render alternating (role, text) turns. A trailing user turn ends with the generation prompt.

    vicuna_v1: `SYSTEM USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:` (a space after a user turn,
    `</s>` after an assistant turn; the answer segment is " a1</s>").
    plain: the user text (normally just `<image>`), then the answer and a newline as the target.
    chat: the tokenizer's own chat template; assistant contents are the targets.
    """
    _check_turns(turns)
    if template == "vicuna_v1":
        segments = [Segment(VICUNA_SYSTEM)]
        for i, (role, text) in enumerate(turns):
            if role == "user":  # a space follows the system prompt; nothing follows "</s>"
                segments.append(Segment(f"{' ' if i == 0 else ''}USER: {text} ASSISTANT:"))
            else:
                segments.append(Segment(f" {text}</s>", target=True))
        return segments
    if template == "plain":
        segments = []
        for role, text in turns:
            segments.append(Segment(text + "\n", target=True) if role == "assistant" else Segment(text))
        return segments
    if template == "chat":
        return _render_chat(turns, tokenizer)
    raise MQTError(f"Unknown template {template!r}; choose one of {TEMPLATES}.")


def _render_chat(turns: Sequence[tuple[str, str]], tokenizer: Any) -> list[Segment]:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise MQTError("Template 'chat' needs a tokenizer with a chat_template; use 'vicuna_v1' instead.")
    segments: list[Segment] = []
    done = ""
    messages: list[dict[str, str]] = []
    for i, (role, text) in enumerate(turns):
        messages.append({"role": role, "content": text})
        last = i == len(turns) - 1
        full = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=(role == "user" and last)
        )
        if not full.startswith(done):
            raise MQTError("The tokenizer's chat template is not prefix-stable; use 'vicuna_v1'.")
        piece = full[len(done) :]
        if role == "assistant":
            # the target is the answer and what closes it; the template's role header stays context
            start = piece.find(text)
            if start < 0:
                raise MQTError("Could not locate the assistant text in the chat template output.")
            segments += [Segment(piece[:start]), Segment(piece[start:], target=True)]
        else:
            segments.append(Segment(piece))
        done = full
    return [s for s in segments if s.text]


def format_prompt(
    question: str,
    template: str = "vicuna_v1",
    with_image: bool = True,
    tokenizer: Any = None,
) -> str:
    """A single-turn inference prompt with the image placeholder before the question, as LLaVA-1.5
    puts it (`<image>\\n{question}`)."""
    text = f"{IMAGE_TOKEN}\n{question}" if with_image and template != "plain" else question
    if template == "plain":
        text = (IMAGE_TOKEN if with_image else "") + question
    return "".join(segment.text for segment in render([("user", text)], template, tokenizer))
