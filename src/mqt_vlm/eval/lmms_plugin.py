"""An lmms-eval model backend, so lmms-eval's 100+ tasks can run an MQT model at any budget:

    lmms-eval --model mqt_vlm --model_args pretrained=DIR,num_visual_tokens=16 --tasks mme,pope

Registration goes through the `lmms_eval.models` entry-point group that lmms-eval (0.6+) scans
(`ModelRegistryV2.load_entrypoint_manifests`): the entry point is `manifest`, which returns a
`ModelManifest` naming the class `MQTLmms` below. lmms-eval is optional and heavy, so nothing here
imports it until lmms-eval itself asks: `MQTLmms` is built on first attribute access (PEP 562), on
top of the dependency-free `MQTLmmsAdapter` that does the actual work (and is what the tests drive).

Prompts follow our evaluation protocol: `vicuna_v1`, one `<image>` per visual before the task's
context (unless the context already places them), greedy unless the task asks otherwise, generation
cut at the task's `until` strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mqt_vlm.errors import MQTError

MODEL_ID = "mqt_vlm"
CLASS_PATH = "mqt_vlm.eval.lmms_plugin.MQTLmms"


def manifest() -> Any:
    """Entry point for `[project.entry-points."lmms_eval.models"]`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH, aliases=("mqt",))


def _flatten(visuals: Any) -> list[Any]:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        return [v for group in visuals for v in _flatten(group)] if any(isinstance(v, (list, tuple)) for v in visuals) else list(visuals)
    return [visuals]


class MQTLmmsAdapter:
    """lmms-eval's `generate_until` / `loglikelihood` contract on top of our model and processor."""

    def __init__(self, pretrained: str = "builtin:shapes", num_visual_tokens: int | str | None = None,
                 batch_size: int | str = 1, device: str | None = None, dtype: str | None = None,
                 max_new_tokens: int | str = 128, max_batch_size: int | None = None, model: Any = None,
                 processor: Any = None, **unused: Any) -> None:
        import torch

        if unused:
            raise MQTError(f"Unknown model_args for mqt_vlm: {sorted(unused)}.")
        if model is None or processor is None:
            from mqt_vlm.loading import load_model

            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            model, processor = load_model(pretrained, dtype=dtype, device=device)
        self.model, self.processor = model, processor
        self.pretrained = str(pretrained)
        self.num_visual_tokens = int(num_visual_tokens) if num_visual_tokens is not None else int(processor.num_queries)
        self.batch_size_per_gpu = int(batch_size)
        self.default_max_new_tokens = int(max_new_tokens)
        parameter = next(model.parameters())
        self._device, self._dtype = parameter.device, parameter.dtype
        self.task_dict: dict[str, Any] = getattr(self, "task_dict", {})

    # ---- helpers -------------------------------------------------------------------------------
    def _visuals(self, doc_to_visual: Any, doc_id: Any, task: str, split: str) -> list[Any]:
        return _flatten(doc_to_visual(self.task_dict[task][split][doc_id]))

    def _prompt(self, context: str, images: Sequence[Any]) -> str:
        image_token = self.processor.image_token
        missing = len(images) - context.count(image_token)
        if missing > 0:
            context = f"{image_token}\n" * missing + context
        return self.processor.format_prompt(context, with_image=False)

    def _inputs(self, prompts: list[str], images: list[Any]) -> dict[str, Any]:
        from mqt_vlm.processing.images import load_image

        batch = self.processor(images=[load_image(i) for i in images] or None, text=prompts,
                               num_visual_tokens=self.num_visual_tokens, padding_side="left")
        inputs = {name: tensor.to(self._device) for name, tensor in batch.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self._dtype)
        return inputs

    # ---- the lmms-eval contract ----------------------------------------------------------------
    def generate_until(self, requests: Sequence[Any]) -> list[str]:
        """One answer per request; requests' args are (context, gen_kwargs, doc_to_visual, doc_id, task, split)."""
        import torch

        answers = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            gen_kwargs = dict(gen_kwargs or {})
            images = self._visuals(doc_to_visual, doc_id, task, split)
            inputs = self._inputs([self._prompt(context, images)], images)
            until = gen_kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            sample = float(gen_kwargs.get("temperature", 0) or 0) > 0
            options: dict[str, Any] = {"do_sample": sample, "num_beams": int(gen_kwargs.get("num_beams", 1) or 1),
                                       "max_new_tokens": int(gen_kwargs.get("max_new_tokens") or self.default_max_new_tokens)}
            if sample:
                options["temperature"] = float(gen_kwargs["temperature"])
                if gen_kwargs.get("top_p") is not None:
                    options["top_p"] = float(gen_kwargs["top_p"])
            with torch.inference_mode():
                output = self.model.generate(**inputs, num_visual_tokens=self.num_visual_tokens,
                                             pad_token_id=self.processor.tokenizer.pad_token_id, **options)
            text = self.processor.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for stop in until:
                if stop:
                    text = text.split(stop)[0]
            answers.append(text.strip())
        return answers

    def loglikelihood(self, requests: Sequence[Any]) -> list[tuple[float, bool]]:
        """(sum of log-probs of the continuation, whether greedy decoding would produce it)."""
        import torch

        results = []
        for request in requests:
            context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            images = self._visuals(doc_to_visual, doc_id, task, split)
            prompt = self._prompt(context, images)
            full = self._inputs([prompt + " " + str(continuation).lstrip()], images)
            prompt_length = len(self.processor.tokenize_prompt(prompt, self.num_visual_tokens))
            with torch.inference_mode():
                logits = self.model(**full, num_visual_tokens=self.num_visual_tokens).logits.float()
            targets = full["input_ids"][0, prompt_length:]
            predicted = logits[0, prompt_length - 1:-1]
            log_probs = torch.log_softmax(predicted, dim=-1).gather(1, targets[:, None]).sum()
            results.append((float(log_probs), bool((predicted.argmax(-1) == targets).all())))
        return results

    def generate_until_multi_round(self, requests: Sequence[Any]) -> list[str]:
        raise NotImplementedError("mqt_vlm answers single-turn requests; multi-round tasks are not supported.")

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self) -> Any:
        return self._device


def _build_lmms_class() -> type:
    from lmms_eval.api.model import lmms

    class MQTLmms(MQTLmmsAdapter, lmms):  # type: ignore[misc, valid-type]
        """lmms-eval model `mqt_vlm`: model_args pretrained, num_visual_tokens, batch_size, device, dtype."""

        is_simple = True

        def __init__(self, **kwargs: Any) -> None:
            lmms.__init__(self)
            MQTLmmsAdapter.__init__(self, **kwargs)

    MQTLmms.__module__ = __name__
    return MQTLmms


_LAZY: dict[str, type] = {}


def __getattr__(name: str) -> Any:
    if name == "MQTLmms":
        if name not in _LAZY:
            _LAZY[name] = _build_lmms_class()
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
