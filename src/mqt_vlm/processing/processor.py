"""`MQTProcessor`: images + prompts -> `input_ids`, `attention_mask`, `pixel_values`.

Each `<image>` placeholder becomes m copies of the image token. Text around an image is tokenized
exactly as the released LLaVA code does (`tokenizer_image_token`): the prompt is split at `<image>`,
each piece is tokenized on its own with the tokenizer's special tokens, and a leading BOS is kept
only at the very start. The image token id is added to the tokenizer when missing; the model maps
it away before the embedding lookup, so the LM's vocabulary is never resized.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoTokenizer, BatchFeature, ProcessorMixin

from mqt_vlm.errors import MQTError, check_budget
from mqt_vlm.processing.image_processor import MQTImageProcessor
from mqt_vlm.processing.images import ImageSource
from mqt_vlm.processing.templates import IMAGE_TOKEN, format_prompt


def ensure_image_token(tokenizer: Any, image_token: str = IMAGE_TOKEN) -> int:
    """Return the id of `image_token`, adding it as a special token if the tokenizer lacks it."""
    vocab = tokenizer.get_vocab()
    if image_token not in vocab:
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:  # LLaVA pads with unk; fall back to eos for tokenizers without one
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return int(tokenizer.convert_tokens_to_ids(image_token))


class MQTProcessor(ProcessorMixin):
    """Tokenizer + `MQTImageProcessor`, with `<image>` expansion to a per-sample budget."""

    def __init__(
        self,
        image_processor: MQTImageProcessor | None = None,
        tokenizer: Any = None,
        image_token: str = IMAGE_TOKEN,
        num_queries: int = 256,
        default_template: str = "vicuna_v1",
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        if image_processor is None or tokenizer is None:
            raise MQTError("MQTProcessor needs an image_processor and a tokenizer.")
        self.image_token = image_token
        self.num_queries = int(num_queries)
        self.default_template = default_template
        self.image_token_id = ensure_image_token(tokenizer, image_token)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path: Any, processor_dict: Any = None, **kwargs: Any) -> list[Any]:
        kwargs.pop("subfolder", None)
        image_processor = MQTImageProcessor.from_pretrained(pretrained_model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return [image_processor, tokenizer]

    # ---- text --------------------------------------------------------------------------------
    def format_prompt(self, question: str, template: str | None = None, with_image: bool = True) -> str:
        """A single-turn prompt in `template` (default: the processor's) with `<image>` before the question."""
        return format_prompt(question, template or self.default_template, with_image, self.tokenizer)

    def tokenize_prompt(self, text: str, num_visual_tokens: int | Sequence[int] = ()) -> list[int]:
        """Token ids of `text` with the k-th `<image>` expanded to num_visual_tokens[k] image tokens."""
        chunks = text.split(self.image_token)
        budgets = [num_visual_tokens] * (len(chunks) - 1) if isinstance(num_visual_tokens, int) else list(num_visual_tokens)
        if len(budgets) != len(chunks) - 1:
            raise MQTError(f"The prompt has {len(chunks) - 1} '{self.image_token}' placeholders but {len(budgets)} budgets were given.")
        pieces = [self.tokenizer(chunk).input_ids for chunk in chunks]
        bos = self.tokenizer.bos_token_id
        offset = 1 if pieces and pieces[0] and bos is not None and pieces[0][0] == bos else 0
        ids: list[int] = [pieces[0][0]] if offset else []
        for k, piece in enumerate(pieces):
            if k > 0:
                ids.extend([self.image_token_id] * check_budget(budgets[k - 1], self.num_queries))
            ids.extend(piece[offset:])
        return ids

    def pad(self, sequences: Sequence[Sequence[int]], padding_side: str | None = None) -> dict[str, torch.Tensor]:
        """Pad token-id lists to one tensor (right padding unless asked otherwise)."""
        side = padding_side or getattr(self.tokenizer, "padding_side", "right") or "right"
        if side not in ("left", "right"):
            raise MQTError(f"padding_side must be 'left' or 'right', got {side!r}.")
        length = max(len(s) for s in sequences)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, seq in enumerate(sequences):
            span = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
            ids[row, span] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, span] = 1
        return {"input_ids": ids, "attention_mask": mask}

    # ---- images + text -----------------------------------------------------------------------
    def __call__(
        self,
        images: ImageSource | Sequence[ImageSource] | None = None,
        text: str | Sequence[str] | None = None,
        num_visual_tokens: int | Sequence[int] | None = None,
        padding_side: str | None = None,
        return_tensors: str = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """`text` is one prompt or a list; every `<image>` consumes the next image in order.
        `num_visual_tokens` is one int for all images or one per image (default M)."""
        if kwargs:
            raise MQTError(f"Unexpected arguments {sorted(kwargs)}.")
        if return_tensors != "pt":
            raise MQTError("Only return_tensors='pt' is supported.")
        if text is None:
            raise MQTError("MQTProcessor needs text; use processor.format_prompt(question) to build one.")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise MQTError("Empty list of prompts.")
        image_list = [] if images is None else (list(images) if isinstance(images, (list, tuple)) else [images])
        placeholders = [t.count(self.image_token) for t in texts]
        if sum(placeholders) != len(image_list):
            raise MQTError(
                f"The prompts have {sum(placeholders)} '{self.image_token}' placeholders but {len(image_list)} "
                f"images were given. Put one '{self.image_token}' per image (processor.format_prompt does this)."
            )
        if num_visual_tokens is None:
            num_visual_tokens = self.num_queries
        budgets = (
            [num_visual_tokens] * len(image_list) if isinstance(num_visual_tokens, int) else list(num_visual_tokens)
        )
        if len(budgets) != len(image_list):
            raise MQTError(f"Got {len(budgets)} budgets for {len(image_list)} images; give one int or one per image.")
        sequences, start = [], 0
        for t, count in zip(texts, placeholders):
            sequences.append(self.tokenize_prompt(t, budgets[start : start + count]))
            start += count
        data: dict[str, Any] = self.pad(sequences, padding_side)
        if image_list:
            data["pixel_values"] = self.image_processor(image_list)["pixel_values"]
        return BatchFeature(data=data)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]
