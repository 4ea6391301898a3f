"""An interactive multi-turn session over one model, separated from the terminal so it can be
driven (and tested) line by line.

The image is encoded once (encode-once cache) and every turn re-prefills the conversation at the
current budget, so `/tokens 4` followed by `/tokens 256` compares budgets on the same history for
the price of the LM alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mqt_vlm.budgets import Budget, parse_budget
from mqt_vlm.errors import MQTError
from mqt_vlm.inference.auto_budget import BudgetPolicy, ConfidenceEscalation, generate_one
from mqt_vlm.inference.cache import VisualTokenCache
from mqt_vlm.inference.params import GenerationRequest, GenerationResult, SamplingParams
from mqt_vlm.inference.prompting import build_prompt, user_text
from mqt_vlm.inference.streaming import TextStreamer
from mqt_vlm.processing.images import DEFAULT_MAX_PIXELS, load_image

HELP = """commands:
  /tokens N      answer with N visual tokens from now on (1..M, or M), or /tokens auto
  /image PATH    switch to another image (starts a new conversation)
  /reset         forget the conversation, keep the image
  /stats         budget, turns and encode-once cache counters
  /help          this text
  /quit          leave (end of input works too)"""


@dataclass
class ChatSession:
    model: Any
    processor: Any
    budget: Budget
    params: SamplingParams = field(default_factory=SamplingParams)
    template: str | None = None
    policy: BudgetPolicy = field(default_factory=ConfidenceEscalation)
    cache: VisualTokenCache = field(default_factory=VisualTokenCache)
    max_pixels: int = DEFAULT_MAX_PIXELS
    image: Image.Image | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)

    def set_image(self, path: str | Path | None) -> None:
        self.image = load_image(path, max_pixels=self.max_pixels) if path is not None else None
        self.turns = []

    def ask(self, question: str, streamer: TextStreamer | None = None) -> GenerationResult:
        """One user turn; the answer is appended to the history."""
        parts: list[tuple[str, str]] = []
        if self.image is not None and not self.turns:
            parts.append(("image", ""))  # LLaVA puts the image in the first user turn
        parts.append(("text", question))
        turns = [*self.turns, ("user", user_text(parts))]
        prompt = build_prompt(turns, self.processor, self.template)
        images = [self.image] if self.image is not None else []
        request = GenerationRequest(prompt, images, self.budget if images else 0, self.params)
        result = generate_one(self.model, self.processor, request, self.policy, self.cache, streamer)
        self.turns = [*turns, ("assistant", result.text.strip())]
        return result

    def command(self, line: str, say: Callable[[str], None]) -> bool:
        """Run a /command; False means the session should end."""
        name, _, arg = line.strip().partition(" ")
        name = name.lower()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            say(HELP)
        elif name == "/tokens":
            if not arg.strip():
                say(f"budget: {self.budget} (M = {self.processor.num_queries})")
            else:
                self.budget = parse_budget(arg, self.processor.num_queries, allow_auto=True)  # type: ignore
                say(f"budget set to {self.budget}")
        elif name == "/image":
            self.set_image(arg.strip() or None)
            say("image cleared" if self.image is None else f"image loaded ({self.image.size[0]}x{self.image.size[1]}); new conversation")
        elif name == "/reset":
            self.turns = []
            say("conversation cleared")
        elif name == "/stats":
            stats = self.cache.stats()
            say(f"budget {self.budget}, {len(self.turns) // 2} turns, cache: {stats.hits} hits, {stats.misses} misses, "
                f"{stats.entries} images, {stats.bytes} bytes")
        else:
            say(f"unknown command {name!r}; /help lists the commands")
        return True


def run_chat(session: ChatSession, lines: Sequence[str] | Any, say: Callable[[str], None],
             streamer_factory: Callable[[], TextStreamer | None], prompt: Callable[[], None]) -> None:
    """The read-eval-print loop over an iterable of input lines (stdin in the CLI)."""
    prompt()
    for raw in lines:
        line = raw.strip()
        if line.startswith("/"):
            try:
                if not session.command(line, say):
                    return
            except MQTError as exc:
                say(f"error: {exc}")
        elif line:
            streamer = streamer_factory()
            try:
                result = session.ask(line, streamer)
            except MQTError as exc:
                say(f"error: {exc}")
            else:
                if streamer is None:
                    say(result.text)
                tried = f", tried {list(result.budgets_tried)}" if len(result.budgets_tried) > 1 else ""
                say(f"[m={result.num_visual_tokens}{tried}, {result.completion_tokens} tokens, "
                    f"{result.total_time_s * 1000:.0f} ms]")
        prompt()

