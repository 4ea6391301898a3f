"""`MQTProcessor`: images + prompts -> `input_ids`, `attention_mask`, `pixel_values`.

Each `<image>` placeholder becomes m copies of the image token. Text around an image is tokenized
exactly as the released LLaVA code does (`tokenizer_image_token` with the slow sentencepiece
tokenizer): the prompt is split at `<image>`, each piece is tokenized on its own with the
tokenizer's special tokens, and a leading BOS is kept only at the very start. The fast tokenizer
transformers 5 gives us differs from that slow tokenizer on whitespace runs and on a piece that
starts with a space (`USER: <image> What?`); `processing.tokenization` removes both differences, so
the ids equal the released ones (tests/test_tokenization_parity.py checks them against sentencepiece
itself). What remains (docs/tokenization.md, with the effects):
- a tokenizer folder with only a `tokenizer.json` converted by transformers 5 (no `tokenizer.model`)
  keeps the fast tokenizer's whitespace-run merges: "a  b" gives [▁a, ▁▁, b], not [▁a, ▁, ▁b], so
  prompts with double spaces or indentation get ids the model was not trained on;
- text after `</s>` follows Vicuna v1.5's `legacy: false` (no "▁"); a legacy slow tokenizer would
  put one there, so every turn after the first would start differently;
- training labels come from offsets, where LLaVA's preprocess_v1 counts tokens per round and masks
  a whole sample whose counts do not add up: we train on such (rare) samples.
The image token id is added to the tokenizer when missing; the model maps it away before the
embedding lookup, so the LM's vocabulary is never resized.

Batches are padded on the LEFT by default, whatever the tokenizer's `padding_side` says (Vicuna's
says right): generation appends to the end of every row, so right padding would put pad tokens
between a short prompt and its answer. Training pads in its own collation.

Hugging Face conventions: the standard call arguments (`padding`, `truncation`, `max_length`,
`add_special_tokens`, `return_tensors`, images/text by keyword or position) are honoured, anything
else is refused with an `MQTError`; the chat template saved with the processor renders HF messages
as our prompt builder does (`processing.chat_templates`), so `apply_chat_template` and
`pipeline("image-text-to-text")` work.
"""

from __future__ import annotations

import base64
import binascii
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, BatchFeature, ProcessorMixin

from mqt_vlm.budgets import check_budget, parse_budget
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.chat_templates import chat_template_for, is_processor_template
from mqt_vlm.processing.image_processor import MQTImageProcessor
from mqt_vlm.processing.images import ImageSource
from mqt_vlm.processing.templates import IMAGE_TOKEN, format_prompt
from mqt_vlm.processing.tokenization import align_with_sentencepiece, encode_text, sentencepiece_file

_TRUNCATE = {True: True, "longest_first": True, "only_first": True, False: False, "do_not_truncate": False, None: False}
LM_CHAT_TEMPLATE_FILE = "lm_chat_template.jinja"  # the language model's own template, when it has one
_PAD = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None, None: None}


def ensure_image_token(tokenizer: Any, image_token: str = IMAGE_TOKEN) -> int:
    """Return the id of `image_token`, adding it as a special token if the tokenizer lacks it."""
    vocab = tokenizer.get_vocab()
    if image_token not in vocab:
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:  # LLaVA pads with unk; fall back to eos for tokenizers without one
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return int(tokenizer.convert_tokens_to_ids(image_token))


def _option(value: Any) -> Any:
    return getattr(value, "value", value)  # transformers' PaddingStrategy / TruncationStrategy enums


def _image_source(source: Any) -> Any:
    """A `data:` URI becomes its bytes; a web address is refused (the processor does not fetch)."""
    if isinstance(source, str) and source.startswith("data:"):
        try:
            return base64.b64decode(source.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error) as exc:
            raise MQTError("The image data: URI is not valid base64.") from exc
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise MQTError(f"MQTProcessor does not download images ({source[:60]}); fetch it yourself and pass the "
                       "bytes, a PIL image or a local path.")
    return source


def _is_text(value: Any, image_token: str) -> bool:
    if isinstance(value, str):
        return image_token in value
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) and image_token in v for v in value)


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
        default_num_visual_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        if image_processor is None or tokenizer is None:
            raise MQTError("MQTProcessor needs an image_processor and a tokenizer.")
        self.image_token = image_token
        self.num_queries = int(num_queries)
        # the budget when a call names none: the model config's default_num_visual_tokens (from_pretrained
        # reads it from the model folder's config.json), M for a processor built on its own
        self.default_num_visual_tokens = check_budget(
            self.num_queries if default_num_visual_tokens is None else default_num_visual_tokens, self.num_queries,
            "default_num_visual_tokens")
        self.default_template = default_template
        self.image_token_id = ensure_image_token(tokenizer, image_token)
        align_with_sentencepiece(tokenizer)
        if chat_template is None:
            chat_template = chat_template_for(default_template, tokenizer)
        super().__init__(image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """As ProcessorMixin's, with the default budget taken from the model's config.json when the
        folder holds a model: one default for the model and its processor."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        from transformers.utils import cached_file

        config = cached_file(pretrained_model_name_or_path, "config.json", _raise_exceptions_for_missing_entries=False)
        if isinstance(processor, MQTProcessor) and config is not None:
            import json

            default = json.loads(Path(config).read_text(encoding="utf-8")).get("default_num_visual_tokens")
            if default is not None:
                processor.default_num_visual_tokens = check_budget(default, processor.num_queries,
                                                                   "default_num_visual_tokens")
        return processor

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path: Any, processor_dict: Any = None, **kwargs: Any) -> list[Any]:
        kwargs.pop("subfolder", None)
        image_processor = MQTImageProcessor.from_pretrained(pretrained_model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        # the processor's template and the tokenizer's share chat_template.jinja: give the LM its own back
        from transformers.utils import cached_file

        own = cached_file(pretrained_model_name_or_path, LM_CHAT_TEMPLATE_FILE, _raise_exceptions_for_missing_entries=False)
        if own is not None:
            tokenizer.chat_template = Path(own).read_text(encoding="utf-8")
        elif is_processor_template(getattr(tokenizer, "chat_template", None)):
            tokenizer.chat_template = None
        return [image_processor, tokenizer]

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        """Also keeps the sentencepiece `tokenizer.model` the tokenizer came from (transformers 5
        writes only tokenizer.json), so the folder can be checked against the slow tokenizer again,
        and the LM's own chat template (the processor's takes chat_template.jinja)."""
        own = getattr(self.tokenizer, "chat_template", None)
        out = super().save_pretrained(save_directory, *args, **kwargs)
        source, target = sentencepiece_file(self.tokenizer), Path(save_directory) / "tokenizer.model"
        if source is not None and source.resolve() != target.resolve():
            shutil.copyfile(source, target)
        if isinstance(own, str) and own and own != self.chat_template:
            (Path(save_directory) / LM_CHAT_TEMPLATE_FILE).write_text(own, encoding="utf-8")
        return out

    # ---- text --------------------------------------------------------------------------------
    def format_prompt(self, question: str, template: str | None = None, with_image: bool = True) -> str:
        """A single-turn prompt in `template` (default: the processor's) with `<image>` before the question."""
        return format_prompt(question, template or self.default_template, with_image, self.tokenizer)

    def tokenize_prompt(self, text: str, num_visual_tokens: int | Sequence[int] = (), add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text` with the k-th `<image>` expanded to num_visual_tokens[k] image tokens."""
        chunks = text.split(self.image_token)
        budgets = [num_visual_tokens] * (len(chunks) - 1) if isinstance(num_visual_tokens, int) else list(num_visual_tokens)
        if len(budgets) != len(chunks) - 1:
            raise MQTError(f"The prompt has {len(chunks) - 1} '{self.image_token}' placeholders but {len(budgets)} budgets were given.")
        pieces = [encode_text(self.tokenizer, chunk, add_special_tokens)[0] for chunk in chunks]
        bos = self.tokenizer.bos_token_id
        offset = 1 if pieces and pieces[0] and bos is not None and pieces[0][0] == bos else 0
        ids: list[int] = [pieces[0][0]] if offset else []
        for k, piece in enumerate(pieces):
            if k > 0:
                ids.extend([self.image_token_id] * check_budget(budgets[k - 1], self.num_queries))
            ids.extend(piece[offset:] if piece[:1] == [bos] else piece)
        return ids

    def _pad_lists(self, sequences: Sequence[Sequence[int]], side: str, length: int) -> tuple[list[list[int]], list[list[int]]]:
        if side not in ("left", "right"):
            raise MQTError(f"padding_side must be 'left' or 'right', got {side!r}.")
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids, masks = [], []
        for seq in sequences:
            fill = length - len(seq)
            ids.append([pad_id] * fill + list(seq) if side == "left" else list(seq) + [pad_id] * fill)
            masks.append([0] * fill + [1] * len(seq) if side == "left" else [1] * len(seq) + [0] * fill)
        return ids, masks

    def pad(self, sequences: Sequence[Sequence[int]], padding_side: str | None = None) -> dict[str, torch.Tensor]:
        """Pad token-id lists to one tensor, on the left unless asked otherwise (for generation)."""
        ids, masks = self._pad_lists(sequences, padding_side or "left", max(len(s) for s in sequences))
        return {"input_ids": torch.tensor(ids, dtype=torch.long), "attention_mask": torch.tensor(masks, dtype=torch.long)}

    def _truncate(self, seq: list[int], limit: int, row: int) -> list[int]:
        if len(seq) <= limit:
            return seq
        left = getattr(self.tokenizer, "truncation_side", "right") == "left"
        kept, cut = (seq[len(seq) - limit:], seq[: len(seq) - limit]) if left else (seq[:limit], seq[limit:])
        if self.image_token_id in cut:
            raise MQTError(
                f"Truncating prompt {row} to max_length={limit} would cut its image positions; raise max_length, "
                "shorten the text or use a smaller num_visual_tokens."
            )
        return kept

    def _max_length(self, max_length: int | None, what: str) -> int:
        limit = max_length if max_length is not None else getattr(self.tokenizer, "model_max_length", None)
        if limit is None or limit > 10**9:
            raise MQTError(f"{what} needs max_length (the tokenizer sets no model_max_length).")
        return int(limit)

    # ---- images + text -----------------------------------------------------------------------
    def __call__(
        self,
        images: ImageSource | Sequence[Any] | None = None,
        text: str | Sequence[str] | None = None,
        videos: Any = None,
        audio: Any = None,
        *,
        num_visual_tokens: int | Sequence[int] | None = None,
        padding: bool | str = True,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        add_special_tokens: bool = True,
        return_attention_mask: bool | None = None,
        return_token_type_ids: bool | None = None,
        return_tensors: str | None = "pt",
        text_kwargs: dict[str, Any] | None = None,
        images_kwargs: dict[str, Any] | None = None,
        common_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """`text` is one prompt or a list; every `<image>` consumes the next image in order (images
        may also be nested, one list per prompt). `num_visual_tokens` is one budget for all images or
        one per image (an int, or "M"/"max"; default: `default_num_visual_tokens`, the model's). Padding is to the longest prompt, on the left unless
        `padding_side` says otherwise; `truncation` cuts to `max_length` but never into an image."""
        nested = {**(common_kwargs or {}), **(text_kwargs or {}), **(images_kwargs or {})}
        if nested:
            return self(images, text, videos, audio, num_visual_tokens=num_visual_tokens, padding=padding,
                        truncation=truncation, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of,
                        padding_side=padding_side, add_special_tokens=add_special_tokens,
                        return_attention_mask=return_attention_mask, return_token_type_ids=return_token_type_ids,
                        return_tensors=return_tensors, **{**nested, **kwargs})
        if kwargs:
            raise MQTError(
                f"MQTProcessor cannot honour {sorted(kwargs)}; it takes images, text, num_visual_tokens, padding, "
                "truncation, max_length, pad_to_multiple_of, padding_side, add_special_tokens, return_attention_mask "
                "and return_tensors (generation settings such as do_sample belong to model.generate, or to "
                "generate_kwargs={...} in a pipeline)."
            )
        if videos is not None or audio is not None:
            raise MQTError("MQTProcessor takes images and text only (no videos or audio).")
        if return_token_type_ids:
            raise MQTError("MQTProcessor returns no token_type_ids (the language models it joins take none).")
        if _option(return_tensors) not in ("pt", "np", None):
            raise MQTError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        if _is_text(images, self.image_token) and not _is_text(text, self.image_token):
            images, text = text, images  # called as processor(text, images)
        if text is None:
            raise MQTError("MQTProcessor needs text; use processor.format_prompt(question) to build one.")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise MQTError("text must be a prompt string or a non-empty list of prompt strings.")
        placeholders = [t.count(self.image_token) for t in texts]
        image_list = self._flatten_images(images, placeholders)
        if sum(placeholders) != len(image_list):
            raise MQTError(
                f"The prompts have {sum(placeholders)} '{self.image_token}' placeholders but {len(image_list)} "
                f"images were given. Put one '{self.image_token}' per image (processor.format_prompt does this)."
            )
        if num_visual_tokens is None:
            num_visual_tokens = self.default_num_visual_tokens
        budgets = (
            [num_visual_tokens] * len(image_list) if isinstance(num_visual_tokens, (int, str)) else list(num_visual_tokens)
        )
        budgets = [parse_budget(m, self.num_queries) for m in budgets]
        if len(budgets) != len(image_list):
            raise MQTError(f"Got {len(budgets)} budgets for {len(image_list)} images; give one int or one per image.")
        sequences, start = [], 0
        for t, count in zip(texts, placeholders):
            sequences.append(self.tokenize_prompt(t, budgets[start : start + count], add_special_tokens))
            start += count
        data = self._batch(sequences, padding, truncation, max_length, pad_to_multiple_of, padding_side, return_tensors)
        if return_attention_mask is False:
            data.pop("attention_mask")
        if image_list:
            pixels = self.image_processor([_image_source(image) for image in image_list], return_tensors=_option(return_tensors))
            data["pixel_values"] = pixels["pixel_values"]
        return BatchFeature(data=data, tensor_type=_option(return_tensors))

    def _flatten_images(self, images: Any, placeholders: list[int]) -> list[Any]:
        if images is None:
            return []
        if not isinstance(images, (list, tuple)):
            return [images]
        if images and all(isinstance(group, (list, tuple)) for group in images):  # one list per prompt
            if len(images) == len(placeholders):
                for row, (group, count) in enumerate(zip(images, placeholders)):
                    if len(group) != count:
                        raise MQTError(f"Prompt {row} has {count} '{self.image_token}' placeholders but {len(group)} images.")
            return [image for group in images for image in group]
        return list(images)

    def _batch(self, sequences: list[list[int]], padding: Any, truncation: Any, max_length: int | None,
               pad_to_multiple_of: int | None, padding_side: str | None, return_tensors: Any) -> dict[str, Any]:
        padding, truncation = _option(padding), _option(truncation)
        if padding not in _PAD:
            raise MQTError(f"padding must be True/'longest', 'max_length' or False, got {padding!r}.")
        if truncation not in _TRUNCATE:
            raise MQTError(f"truncation must be True/'longest_first'/'only_first' or False, got {truncation!r}.")
        if _TRUNCATE[truncation]:
            limit = self._max_length(max_length, "truncation")
            sequences = [self._truncate(seq, limit, row) for row, seq in enumerate(sequences)]
        strategy = _PAD[padding]
        if strategy is None:
            if _option(return_tensors) is not None and len({len(s) for s in sequences}) > 1:
                raise MQTError("Prompts of different lengths need padding to become one tensor; pass padding=True "
                               "(or return_tensors=None for unpadded lists).")
            return {"input_ids": [list(s) for s in sequences], "attention_mask": [[1] * len(s) for s in sequences]}
        length = max(len(s) for s in sequences)
        if strategy == "max_length":
            length = max(length, self._max_length(max_length, "padding='max_length'"))
        if pad_to_multiple_of:
            length = -(-length // int(pad_to_multiple_of)) * int(pad_to_multiple_of)
        ids, masks = self._pad_lists(sequences, padding_side or "left", length)
        return {"input_ids": ids, "attention_mask": masks}

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]
