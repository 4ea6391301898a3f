"""vLLM tokenizer mode "mqt": text prompts tokenized as the released MQT-LLaVA code tokenizes them.

vLLM tokenizes a text prompt in one call. The released code (and `MQTProcessor.tokenize_prompt`)
splits it at `<image>` and tokenizes each piece on its own; with a LLaMA sentencepiece tokenizer the
two differ, e.g. `USER: <image>\\nWhat` keeps a "▁" token before the newline only when the piece is
tokenized alone, and the Vicuna prompt the model was trained on has it. `tokenizer_mode="mqt"`
(`--tokenizer-mode mqt`) makes vLLM's tokenizer give the released ids for every prompt, text or
chat, so vLLM and `mqt generate`/`mqt serve` see the same tokens.

The tokenizer is the processor's own (the same files and fixes), behind a subclass that routes
one-string encodes through the processor and starts a rendered chat with BOS (as the processor's
`apply_chat_template` does; vLLM adds no special tokens to a chat prompt); everything else
(decode, vocabulary, the chat template itself) is the Hugging Face tokenizer's.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from transformers import BatchEncoding


def _leading_bos(processor: Any) -> str | None:
    """The BOS text the tokenizer puts first with its special tokens (None when it adds none)."""
    tokenizer = processor.tokenizer
    bos_id = tokenizer.bos_token_id
    adds = bos_id is not None and list(tokenizer("", add_special_tokens=True)["input_ids"])[:1] == [bos_id]
    return tokenizer.bos_token if adds else None


def _released_ids(processor: Any, bos: str | None, text: str, add_special_tokens: bool) -> list[int]:
    if bos and text.startswith(bos):  # a chat prompt (see apply_chat_template): BOS, then the text
        text, add_special_tokens = text[len(bos):], True
    placeholders = text.count(processor.image_token)  # one image token per image; vLLM expands it to m
    return processor.tokenize_prompt(text, [1] * placeholders, add_special_tokens=add_special_tokens)


def _truncate(ids: list[int], kwargs: dict[str, Any], side: str) -> list[int]:
    limit = kwargs.get("max_length")
    if not kwargs.get("truncation") or limit is None or len(ids) <= limit:
        return ids
    return ids[-limit:] if side == "left" else ids[:limit]


def released_tokenizer(processor: Any) -> Any:
    """A copy of `processor.tokenizer` whose one-string `__call__`/`encode` give the released ids."""
    base = processor.tokenizer
    base_cls = type(base)
    bos = _leading_bos(processor)

    def plain(kwargs: dict[str, Any]) -> bool:
        # pairs, pre-split words, batches and offset mappings keep the Hugging Face behaviour
        return not (kwargs.get("text_pair") or kwargs.get("is_split_into_words") or kwargs.get("return_offsets_mapping"))

    class MQTReleasedTokenizer(base_cls):  # type: ignore[misc, valid-type]
        def __call__(self, text: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(text, str) or args or not plain(kwargs):
                return base_cls.__call__(self, text, *args, **kwargs)
            ids = _truncate(_released_ids(processor, bos, text, kwargs.get("add_special_tokens", True)), kwargs, self.truncation_side)
            return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)})

        def encode(self, text: Any, *args: Any, **kwargs: Any) -> list[int]:
            if not isinstance(text, str) or args or not plain(kwargs) or kwargs.get("return_tensors"):
                return base_cls.encode(self, text, *args, **kwargs)
            return _truncate(_released_ids(processor, bos, text, kwargs.get("add_special_tokens", True)), kwargs, self.truncation_side)

        def apply_chat_template(self, conversation: Any, *args: Any, **kwargs: Any) -> Any:
            """The rendered chat starts with the tokenizer's BOS (when it adds one), as
            `MQTProcessor.apply_chat_template` gives it: a Hugging Face processor adds the tokenizer's
            special tokens to a chat prompt, vLLM (like a tokenizer) adds none, and the released
            model always saw BOS first."""
            tokenize = kwargs.pop("tokenize", True)
            return_dict = kwargs.pop("return_dict", False)
            text = base_cls.apply_chat_template(self, conversation, *args, tokenize=False, **kwargs)
            if isinstance(text, str) and bos and not text.startswith(bos):
                text = bos + text
            if not tokenize or not isinstance(text, str):
                return text
            ids = _released_ids(processor, bos, text, add_special_tokens=False)
            return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)}) if return_dict else ids

        def __reduce__(self) -> Any:  # vLLM pickles tokenizers between processes
            return released_tokenizer, (processor,)

    MQTReleasedTokenizer.__name__ = f"MQTReleased{base_cls.__name__}"
    tokenizer = copy.copy(base)  # the processor keeps its own, unchanged
    tokenizer.__class__ = MQTReleasedTokenizer
    return tokenizer


class MQTTokenizer:
    """Registered as vLLM's tokenizer mode "mqt" (see `plugin.register`)."""

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        *args: Any,
        revision: str | None = None,
        truncation_side: str | None = None,
        **kwargs: Any,
    ) -> Any:
        from vllm.tokenizers.hf import get_cached_tokenizer

        from mqt_vlm.processing.processor import MQTProcessor

        processor = MQTProcessor.from_pretrained(str(path_or_repo_id), revision=revision)
        tokenizer = released_tokenizer(processor)
        if truncation_side is not None:
            tokenizer.truncation_side = truncation_side
        return get_cached_tokenizer(tokenizer)
