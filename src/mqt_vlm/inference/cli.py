"""`mqt generate` and `mqt chat`.

Both take the budget explicitly, in the vocabulary of `mqt_vlm.budgets` (docs/budgets.md):
`generate --budgets 4,16,64,M` answers the same question at each budget from one encoding of the
image, which is the quickest way to see what MQT trades: fewer visual tokens, faster prefill,
coarser answers; `chat --visual-tokens 16` starts a conversation at one budget. The old name
`--tokens` still works (hidden).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mqt_vlm.processing.images import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from mqt_vlm.inference.auto_budget import ConfidenceEscalation
    from mqt_vlm.inference.params import SamplingParams


def _sampling(max_new_tokens: int, temperature: float, top_p: float, top_k: int, seed: int | None,
              stop: list[str] | None) -> SamplingParams:
    from mqt_vlm.inference.params import SamplingParams

    return SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                          stop=tuple(stop or ()), seed=seed)


def _policy(auto_budgets: str, auto_threshold: float, auto_metric: str) -> ConfidenceEscalation:
    from mqt_vlm.inference.auto_budget import AutoBudgetConfig, ConfidenceEscalation

    return ConfidenceEscalation(AutoBudgetConfig.parse(auto_budgets, auto_threshold, auto_metric))


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def generate(
    prompt: str = typer.Option(..., "--prompt", "-p", help="The question or instruction."),
    image: list[Path] = typer.Option([], "--image", "-i", help="Image file; repeat for several, omit for text only."),
    model: str = typer.Option("builtin:shapes", help="Model folder or builtin:NAME."),
    budgets: str = typer.Option("", "--budgets", help="Visual tokens: an int in 1..M, M, 'auto', or a comma list such as "
                                                      "4,16,64,M to print a comparison table. Default: the model's "
                                                      "default budget."),
    tokens: str = typer.Option("", "--tokens", "--visual-tokens", hidden=True, help="Old name of --budgets."),
    max_new_tokens: int = typer.Option(64, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, help="0 = greedy (how MQT-LLaVA is evaluated)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass (with temperature > 0)."),
    top_k: int = typer.Option(0, help="Top-k sampling (0 = off)."),
    seed: int | None = typer.Option(None, help="Seed for sampling."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string; repeat for several."),
    template: str | None = typer.Option(None, help="Prompt template: vicuna_v1, plain or chat (default: the model's)."),
    stream: bool = typer.Option(False, help="Print the answer as it is generated (single budget)."),
    auto_budgets: str = typer.Option("16,64,256", help="Budgets 'auto' tries, in order (clipped to M)."),
    auto_threshold: float = typer.Option(0.5, help="'auto' accepts an answer whose confidence reaches this."),
    auto_metric: str = typer.Option("mean_prob", help="'auto' confidence: mean_prob or first_token_prob."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (or fp32, bf16, fp16; default: as saved)."),
    device: str = typer.Option("auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
) -> None:
    """Answer a prompt about an image at one or several visual-token budgets."""
    from mqt_vlm.budgets import AUTO, parse_budgets, pick_option, resolve_default
    from mqt_vlm.inference.auto_budget import generate_one
    from mqt_vlm.inference.cache import VisualTokenCache
    from mqt_vlm.inference.encoding import encode_images
    from mqt_vlm.inference.params import GenerationRequest
    from mqt_vlm.inference.prompting import build_prompt, user_text
    from mqt_vlm.inference.streaming import PrintStreamer
    from mqt_vlm.loading import load_model
    from mqt_vlm.processing.images import load_image

    params = _sampling(max_new_tokens, temperature, top_p, top_k, seed, stop)
    policy = _policy(auto_budgets, auto_threshold, auto_metric)
    text = pick_option("--budgets", budgets, {"--tokens": tokens})
    if text.strip():  # syntax errors surface before the model loads
        parse_budgets(text, None, allow_auto=True)
    images = [load_image(path, max_pixels=max_pixels) for path in image]
    loaded, processor = load_model(model, dtype=dtype, device=device)
    num_queries = processor.num_queries
    default = int(loaded.config.default_num_visual_tokens)
    chosen = parse_budgets(text, num_queries, allow_auto=True) if text.strip() else [
        resolve_default(None, default, num_queries)]
    parts = [("image", "")] * len(images) + [("text", prompt)]
    full_prompt = build_prompt([("user", user_text(parts))], processor, template)
    cache = VisualTokenCache()

    def answer(budget: int | str, streamer: PrintStreamer | None = None):
        request = GenerationRequest(full_prompt, images, budget if images else 0, params)  # type: ignore[arg-type]
        return generate_one(loaded, processor, request, policy, cache, streamer)

    if len(chosen) == 1:
        streamer = PrintStreamer() if stream and chosen[0] != AUTO else None
        result = answer(chosen[0], streamer)
        if streamer is None:
            typer.echo(result.text)
        tried = f" (auto tried {list(result.budgets_tried)})" if chosen[0] == AUTO else ""
        typer.echo(f"[m={result.num_visual_tokens}{tried}, {result.completion_tokens} tokens, "
                   f"ttft {result.time_to_first_token_s * 1000:.0f} ms, total {result.total_time_s * 1000:.0f} ms]",
                   err=True)
        return
    if images:  # encode once up front so every row of the table times the LM alone
        start = time.monotonic()
        encode_images(loaded, processor, images, cache)
        typer.echo(f"encoded {len(images)} image(s) once in {(time.monotonic() - start) * 1000:.0f} ms "
                   f"(vision tower + MQT at M={num_queries}); every budget below reuses them")
    typer.echo(_table_row(["budget", "answer", "time to first token (ms)", "total (ms)"]))
    typer.echo(_table_row(["---"] * 4))
    for budget in chosen:
        result = answer(budget)
        label = str(budget) if budget != AUTO else f"auto -> {result.num_visual_tokens}"
        typer.echo(_table_row([label, result.text.strip(), f"{result.time_to_first_token_s * 1000:.1f}",
                               f"{result.total_time_s * 1000:.1f}"]))


def chat(
    model: str = typer.Option("builtin:shapes", help="Model folder or builtin:NAME."),
    image: Path | None = typer.Option(None, "--image", "-i", help="Image to talk about (change it with /image PATH)."),
    visual_tokens: str = typer.Option("", "--visual-tokens", help="Starting budget: an int in 1..M, M or 'auto' (change it "
                                                                  "with /tokens N). Default: the model's default budget."),
    tokens: str = typer.Option("", "--tokens", hidden=True, help="Old name of --visual-tokens."),
    max_new_tokens: int = typer.Option(256, help="Most tokens per answer."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass (with temperature > 0)."),
    seed: int | None = typer.Option(None, help="Seed for sampling."),
    stop: list[str] = typer.Option([], "--stop", help="Stop string; repeat for several."),
    template: str | None = typer.Option(None, help="Prompt template (default: the model's)."),
    stream: bool = typer.Option(True, help="Print answers as they are generated."),
    auto_budgets: str = typer.Option("16,64,256", help="Budgets '/tokens auto' tries, in order."),
    auto_threshold: float = typer.Option(0.5, help="'auto' accepts an answer whose confidence reaches this."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (or fp32, bf16, fp16; default: as saved)."),
    device: str = typer.Option("auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, help="Refuse images with more pixels than this."),
) -> None:
    """Talk about an image interactively; /tokens N changes the visual-token budget, /help lists commands."""
    from mqt_vlm.budgets import parse_budget, pick_option, resolve_default
    from mqt_vlm.inference.chat import ChatSession, run_chat
    from mqt_vlm.inference.streaming import PrintStreamer
    from mqt_vlm.loading import load_model

    params = _sampling(max_new_tokens, temperature, top_p, 0, seed, stop)
    policy = _policy(auto_budgets, auto_threshold, "mean_prob")
    text = pick_option("--visual-tokens", visual_tokens, {"--tokens": tokens})
    if text.strip():  # syntax errors surface before the model loads
        parse_budget(text, None, allow_auto=True, option="--visual-tokens")
    loaded, processor = load_model(model, dtype=dtype, device=device)
    budget = resolve_default(text, int(loaded.config.default_num_visual_tokens), processor.num_queries, allow_auto=True,
                             option="--visual-tokens")
    session = ChatSession(loaded, processor, budget, params, template, policy, max_pixels=max_pixels)
    session.set_image(image)
    typer.echo(f"model {model} (M = {processor.num_queries}), budget {budget}"
               f"{', image ' + str(image) if image else ', no image'}. /help lists commands.")
    run_chat(
        session,
        sys.stdin,
        say=typer.echo,
        streamer_factory=lambda: PrintStreamer(sys.stdout) if stream else None,
        prompt=lambda: (sys.stdout.write("you> "), sys.stdout.flush()),
    )
