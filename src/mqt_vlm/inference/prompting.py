"""Conversations -> one prompt string with `<image>` placeholders, for chat and the server.

Single-turn prompts come from `processor.format_prompt`; this adds what an interactive session and
the OpenAI API need on top: several turns, an optional system message, and images placed where the
user put them (each image becomes `<image>\\n`, so one image followed by a question renders exactly
as `format_prompt` does, i.e. as MQT-LLaVA was trained and evaluated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.templates import IMAGE_TOKEN, VICUNA_SYSTEM, render


def user_text(parts: Sequence[tuple[str, str]]) -> str:
    """One user turn from ("text", str) and ("image", _) parts, in order."""
    pieces = []
    for kind, value in parts:
        if kind == "image":
            pieces.append(f"{IMAGE_TOKEN}\n")
        elif kind == "text":
            if IMAGE_TOKEN in value:
                raise MQTError(f"Message text may not contain the image placeholder {IMAGE_TOKEN!r}; send images as image parts.")
            pieces.append(value)
        else:
            raise MQTError(f"Unknown content part kind {kind!r}.")
    return "".join(pieces)


def build_prompt(
    turns: Sequence[tuple[str, str]],
    processor: Any,
    template: str | None = None,
    system: str | None = None,
) -> str:
    """Render alternating (role, text) turns ending with a user turn, ready for generation.

    `system` replaces vicuna_v1's fixed system sentence, or is passed to a tokenizer chat template.
    """
    template = template or processor.default_template
    if not turns or turns[-1][0] != "user":
        raise MQTError("The conversation must end with a user message.")
    if template == "chat":
        render(turns, "vicuna_v1")  # validates the role order with the same rules as the templates
        messages = [{"role": "system", "content": system}] if system else []
        messages += [{"role": role, "content": text} for role, text in turns]
        tokenizer = processor.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise MQTError("Template 'chat' needs a tokenizer with a chat_template; use 'vicuna_v1'.")
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    text = "".join(segment.text for segment in render(turns, template, processor.tokenizer))
    if system:
        if template == "vicuna_v1":
            text = system + text[len(VICUNA_SYSTEM):]
        else:
            text = system + "\n" + text
    return text
