"""An lmms-eval (0.7.x) model backend, so lmms-eval's tasks can run an MQT model at any budget:

    lmms-eval --model mqt_vlm --model_args pretrained=builtin:shapes,num_visual_tokens=8 \\
              --tasks mqt_synthetic --include_path "$(python -m mqt_vlm.eval.lmms_tasks)" --batch_size 8

Registration goes through the `lmms_eval.models` entry-point group that lmms-eval scans
(`ModelRegistryV2.load_entrypoint_manifests`): the entry point is `manifest`, which returns a
`ModelManifest` naming the class `MQTLmms` below. lmms-eval is optional and heavy, so nothing here
imports it until lmms-eval itself asks: `MQTLmms` is built on first attribute access (PEP 562), on
top of the dependency-free `MQTLmmsAdapter` that does the work (and is what the default tests drive).

One budget per run. lmms-eval keeps one answer per request and keys results by task name, so a run
cannot hold two budgets; a sweep is one lmms-eval run per budget, in one process with `--config`
(a YAML list with one entry per budget, see docs/evaluation.md). `num_visual_tokens=2|8|32` is
refused with that advice rather than silently evaluating one of them.

- `generate_until` answers through `mqt_vlm.inference.batch.generate_batch`, the project's one
  generation path (encode-once cache, per-row stop strings, left padding), `--batch_size` requests
  per call, in request order.
- `loglikelihood` runs the model forward once per batch (images through the same encode-once cache,
  so the k choices of a multiple-choice question encode their image once). It returns, per request,
  (-sum log p(continuation | context), whether greedy decoding reproduces the continuation).
  lmms-eval 0.7's multiple_choice scorer picks `argmin` of the first value (its LLaVA backend
  returns a loss), so the negative log-likelihood is what makes `acc` pick the most likely choice.
- lmms-eval 0.7 unwraps each answer with `unwrap_generation_output`, which turns anything that is
  neither a string nor its `GenerationResult` into `str(...)`; both kinds of answers are therefore
  wrapped in `GenerationResult` (text = the answer or the (nll, greedy) pair) with `TokenCounts`.
- The budget is reported in lmms-eval's outputs: `config.model_args` (when passed), the run's
  `throughput.avg_num_visual_tokens` (through lmms-eval's `log_metrics`), and per sample,
  `token_counts.input_tokens` counts the m visual tokens per image with the text tokens.

Prompts follow our evaluation protocol: the processor's template (`vicuna_v1`), one `<image>\\n`
per visual before the task's context (unless the context already places them), greedy unless the
task asks for a temperature.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mqt_vlm.budgets import resolve_default
from mqt_vlm.errors import MQTError

MODEL_ID = "mqt_vlm"
CLASS_PATH = "mqt_vlm.eval.lmms_plugin.MQTLmms"
SWEEP_ADVICE = ("lmms-eval runs one budget per run; for a sweep pass a --config YAML with one entry per budget "
                "(docs/evaluation.md, 'lmms-eval').")


def manifest() -> Any:
    """Entry point for `[project.entry-points."lmms_eval.models"]`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH, aliases=("mqt",))


def run_budget(value: Any, default: int, max_tokens: int) -> int:
    """`num_visual_tokens` from model_args (lmms-eval passes ints as int, anything else as str), in
    the `mqt_vlm.budgets` vocabulary ("M" or "max" for M); one budget per run."""
    if isinstance(value, str) and any(sep in value.strip() for sep in ",|;:/ "):
        raise MQTError(f"num_visual_tokens={value!r}: one budget per run. {SWEEP_ADVICE}")
    return int(resolve_default(value, default, max_tokens))


def positive_int(value: Any, name: str) -> int:
    """--batch_size arrives as a str from lmms-eval's CLI; 'auto' is lmms-eval's, not ours."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MQTError(f"mqt_vlm needs {name} to be an int >= 1 ('auto' is not supported), got {value!r}.")
    return value


def _flatten(visuals: Any) -> list[Any]:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        return [v for group in visuals for v in _flatten(group)]
    return [visuals]


def _image(visual: Any) -> Any:
    """A PIL image through the package's checked loader; Hugging Face's undecoded {bytes, path} too."""
    from mqt_vlm.processing.images import load_image

    if isinstance(visual, dict) and ("bytes" in visual or "path" in visual):
        visual = visual.get("bytes") or visual.get("path")
    return load_image(visual)


@dataclass(frozen=True)
class Answer:
    """One generate_until answer with the token accounting lmms-eval logs per sample."""

    text: str
    input_tokens: int  # text tokens + m visual tokens per image
    output_tokens: int


@dataclass(frozen=True)
class Likelihood:
    """One loglikelihood answer: lmms-eval 0.7's (value argmin picks, greedy) pair, and the tokens."""

    nll: float  # -sum log p(continuation | context)
    greedy: bool
    input_tokens: int
    continuation_tokens: int


class MQTLmmsAdapter:
    """lmms-eval's `generate_until` / `loglikelihood` contract on top of our model and processor."""

    def __init__(self, pretrained: str = "builtin:shapes", num_visual_tokens: int | str | None = None,
                 batch_size: int | str = 1, device: str | None = None, dtype: str | None = None,
                 max_new_tokens: int | str = 128, max_batch_size: int | None = None, model: Any = None,
                 processor: Any = None, **unused: Any) -> None:
        import torch

        from mqt_vlm.inference.cache import VisualTokenCache

        if unused:
            raise MQTError(f"Unknown model_args for mqt_vlm: {sorted(unused)}. Known: pretrained, num_visual_tokens, "
                           "dtype, max_new_tokens (batch size and device come from --batch_size and --device).")
        if model is None or processor is None:
            from mqt_vlm.loading import load_model

            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            model, processor = load_model(str(pretrained), dtype=dtype, device=device)
        self.model, self.processor = model, processor
        self.pretrained = str(pretrained)
        self.max_visual_tokens = int(processor.num_queries)
        default = getattr(getattr(model, "config", None), "default_num_visual_tokens", None) or self.max_visual_tokens
        self.num_visual_tokens = run_budget(num_visual_tokens, default, self.max_visual_tokens)
        self.batch_size_per_gpu = positive_int(batch_size, "--batch_size")
        self.default_max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
        self.cache = VisualTokenCache()
        self._device = next(model.parameters()).device
        self.task_dict: dict[str, Any] = getattr(self, "task_dict", {})

    # ---- helpers -------------------------------------------------------------------------------
    def _visuals(self, doc_to_visual: Callable[[Any], Any] | None, doc_id: Any, task: str, split: str) -> list[Any]:
        if doc_to_visual is None:
            return []
        return [_image(v) for v in _flatten(doc_to_visual(self.task_dict[task][split][doc_id]))]

    def _prompt(self, context: str, images: Sequence[Any]) -> str:
        image_token = self.processor.image_token
        missing = len(images) - context.count(image_token)
        if missing < 0:
            raise MQTError(f"The task's context has {context.count(image_token)} '{image_token}' placeholders "
                           f"but only {len(images)} images.")
        return self.processor.format_prompt(f"{image_token}\n" * missing + context, with_image=False)

    def _params(self, gen_kwargs: dict[str, Any]) -> Any:
        from mqt_vlm.inference.params import SamplingParams

        if int(gen_kwargs.get("num_beams") or 1) > 1:
            raise MQTError("mqt_vlm decodes greedily or by sampling; num_beams > 1 is not supported.")
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else [s for s in until if s]
        temperature = float(gen_kwargs.get("temperature") or 0)
        do_sample = gen_kwargs.get("do_sample")
        sample = bool(do_sample) if do_sample is not None else temperature > 0  # do_sample decides, as in HF
        return SamplingParams(
            max_new_tokens=int(gen_kwargs.get("max_new_tokens") or self.default_max_new_tokens),
            temperature=(temperature or 1.0) if sample else 0.0,
            top_p=float(gen_kwargs.get("top_p") or 1.0) if sample else 1.0,
            stop=tuple(until),
        )

    # ---- the lmms-eval contract ----------------------------------------------------------------
    def generate_answers(self, requests: Sequence[Any]) -> list[Answer]:
        """Answers through `generate_batch`; requests' args are (context, gen_kwargs, doc_to_visual, doc_id, task, split)."""
        from mqt_vlm.inference.batch import generate_batch
        from mqt_vlm.inference.params import GenerationRequest

        answers: list[Answer] = []
        size = self.batch_size_per_gpu
        for start in range(0, len(requests), size):
            batch = []
            for request in requests[start:start + size]:
                context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
                images = self._visuals(doc_to_visual, doc_id, task, split)
                batch.append(GenerationRequest(prompt=self._prompt(context, images), images=images,
                                               num_visual_tokens=self.num_visual_tokens,
                                               params=self._params(dict(gen_kwargs or {}))))
            for result in generate_batch(self.model, self.processor, batch, cache=self.cache):
                answers.append(Answer(result.text.strip(), result.prompt_tokens, result.completion_tokens))
        return answers

    def likelihoods(self, requests: Sequence[Any]) -> list[Likelihood]:
        """Continuation log-likelihoods; args are (context, continuation or doc_to_target, doc_to_visual,
        doc_id, task, split), or (context, continuation) for lmms-eval's unconditional requests."""
        import torch

        from mqt_vlm.inference.encoding import encode_images

        results: list[Likelihood] = []
        size = self.batch_size_per_gpu
        m = self.num_visual_tokens
        for start in range(0, len(requests), size):
            rows, images = [], []
            for request in requests[start:start + size]:
                context, target, *rest = request.args
                row_images: list[Any] = []
                continuation = target
                if rest:
                    doc_to_visual, doc_id, task, split = rest
                    row_images = self._visuals(doc_to_visual, doc_id, task, split)
                    if not isinstance(target, str):
                        continuation = target(self.task_dict[task][split][doc_id])
                prompt = self._prompt(str(context), row_images)
                budgets = [m] * len(row_images)
                context_ids = self.processor.tokenize_prompt(prompt, budgets)
                full_ids = self.processor.tokenize_prompt(prompt + str(continuation), budgets)
                split_at = next((i for i, (a, b) in enumerate(zip(context_ids, full_ids)) if a != b),
                                min(len(context_ids), len(full_ids)))
                if split_at >= len(full_ids) or split_at == 0:
                    raise MQTError(f"The continuation {continuation!r} adds no tokens after the context.")
                rows.append((full_ids, split_at))
                images += row_images
            batch = self.processor.pad([ids for ids, _ in rows], padding_side="right")  # right: no position shift
            kwargs: dict[str, Any] = {}
            if images:
                kwargs["visual_embeds"] = encode_images(self.model, self.processor, images, self.cache).visual
                kwargs["num_visual_tokens"] = [m] * len(images)
            with torch.inference_mode():
                logits = self.model(input_ids=batch["input_ids"].to(self._device),
                                    attention_mask=batch["attention_mask"].to(self._device), **kwargs).logits
            for row, (ids, split_at) in enumerate(rows):
                targets = torch.tensor(ids[split_at:], device=logits.device)
                predicted = logits[row, split_at - 1:len(ids) - 1].float()  # position t predicts token t + 1
                log_probs = torch.log_softmax(predicted, dim=-1).gather(1, targets[:, None]).sum()
                greedy = bool((predicted.argmax(-1) == targets).all())
                results.append(Likelihood(-float(log_probs), greedy, split_at, len(ids) - split_at))
        return results

    def generate_until(self, requests: Sequence[Any]) -> list[Any]:
        start = time.perf_counter()
        answers = self.generate_answers(requests)
        self._report(time.perf_counter() - start, sum(a.output_tokens for a in answers), len(answers))
        return [self._wrap(a.text, a.input_tokens, a.output_tokens) for a in answers]

    def loglikelihood(self, requests: Sequence[Any]) -> list[Any]:
        start = time.perf_counter()
        scores = self.likelihoods(requests)
        self._report(time.perf_counter() - start, 0, len(scores))
        return [self._wrap((s.nll, s.greedy), s.input_tokens, s.continuation_tokens) for s in scores]

    def generate_until_multi_round(self, requests: Sequence[Any]) -> list[str]:
        raise NotImplementedError("mqt_vlm answers single-turn requests; multi-round tasks are not supported.")

    # ---- what the lmms-eval class overrides ----------------------------------------------------
    def _wrap(self, value: Any, input_tokens: int, output_tokens: int) -> Any:
        return value

    def _report(self, seconds: float, generated_tokens: int, requests: int) -> None:
        return None

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> Any:
        return self._device


def _build_lmms_class() -> type:
    from lmms_eval.api.instance import GenerationResult, TokenCounts
    from lmms_eval.api.model import lmms
    from lmms_eval.models.model_utils.gen_metrics import log_metrics
    from loguru import logger

    class MQTLmms(MQTLmmsAdapter, lmms):  # type: ignore[misc, valid-type]
        """lmms-eval model `mqt_vlm`: model_args pretrained, num_visual_tokens, dtype, max_new_tokens."""

        is_simple = True

        def __init__(self, **kwargs: Any) -> None:
            lmms.__init__(self)
            MQTLmmsAdapter.__init__(self, **kwargs)
            logger.info(f"mqt_vlm: {self.pretrained} at num_visual_tokens={self.num_visual_tokens} "
                        f"(of M={self.max_visual_tokens}), batch size {self.batch_size_per_gpu}, device {self._device}")

        def _wrap(self, value: Any, input_tokens: int, output_tokens: int) -> Any:
            return GenerationResult(text=value, token_counts=TokenCounts(input_tokens=input_tokens,
                                                                         output_tokens=output_tokens))

        def _report(self, seconds: float, generated_tokens: int, requests: int) -> None:
            log_metrics(total_elapsed_time=seconds, total_gen_tokens=generated_tokens,
                        avg_speed=generated_tokens / seconds if seconds > 0 else 0.0,
                        additional_metrics={"num_visual_tokens": self.num_visual_tokens,
                                            "max_visual_tokens": self.max_visual_tokens, "total_requests": requests})

    MQTLmms.__module__ = __name__
    return MQTLmms


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "MQTLmms":
        if name not in _LAZY:
            _LAZY[name] = _build_lmms_class()
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
