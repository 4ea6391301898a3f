"""Conversation -> token ids and labels, with the image held as ONE placeholder until the step's budget
is known.

Why a placeholder: the budget m is drawn per optimizer step (from the seed and the step number) in
the main process, while tokenization runs ahead of time in DataLoader workers. A sample therefore
carries its ids with a single image token, and `expand` writes the m image positions and truncates
to `max_length` once m is known. Truncation happens after the expansion, so the m image positions
count towards `max_length` exactly as they do in the model.

Tokenization follows the released code (and `MQTProcessor.tokenize_prompt`, which a test checks
token for token): the text is split at `<image>`, each piece is tokenized on its own as the slow
sentencepiece tokenizer did (`processing.tokenization.encode_text`), and BOS is kept only at the
very start. Labels come from character offsets: a token is a target when the last character it
covers lies inside a target segment of `templates.render`, so the decoded target tokens are exactly
the answers (with `</s>` for vicuna_v1). LLaVA's preprocess_v1 finds the same tokens by counting
each round's tokens instead (tests/test_tokenization_parity.py compares the two); where its counts
disagree with the whole conversation it masks the entire sample, while offsets cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mqt_vlm.assets import cache_dir, llama_tokenizer_dir
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.templates import IMAGE_TOKEN, Segment
from mqt_vlm.processing.tokenization import align_with_sentencepiece, encode_text

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedSample:
    """Token ids with at most one image placeholder (`image_position`) and aligned labels."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    image_position: int | None

    def length(self, num_visual_tokens: int) -> int:
        """Sequence length once the placeholder becomes `num_visual_tokens` positions."""
        extra = num_visual_tokens - 1 if self.image_position is not None else 0
        return len(self.input_ids) + extra

    @property
    def num_targets(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _target_mask(segments: Sequence[Segment]) -> bytearray:
    """One byte per character of the rendered text: 1 inside a target segment."""
    mask = bytearray()
    for segment in segments:
        mask.extend((b"\x01" if segment.target else b"\x00") * len(segment.text))
    return mask


def encode_segments(
    segments: Sequence[Segment],
    tokenizer: Any,
    image_token_id: int,
    image_token: str = IMAGE_TOKEN,
) -> EncodedSample:
    """Tokenize rendered segments; labels keep only tokens that end inside a target segment."""
    if not getattr(tokenizer, "is_fast", False):
        raise MQTError("Training needs a fast tokenizer (offset mappings); load it with AutoTokenizer.")
    align_with_sentencepiece(tokenizer)  # once per tokenizer: whitespace runs as the slow tokenizer merges them
    text = "".join(segment.text for segment in segments)
    targets = _target_mask(segments)
    chunks = text.split(image_token)
    if len(chunks) > 2:
        raise MQTError(f"A training sample may hold one '{image_token}', found {len(chunks) - 1}.")
    bos = tokenizer.bos_token_id
    ids: list[int] = []
    labels: list[int] = []
    image_position: int | None = None
    start = 0  # character offset of the current chunk in `text`
    for k, chunk in enumerate(chunks):
        if k > 0:
            image_position = len(ids)
            ids.append(image_token_id)
            labels.append(IGNORE_INDEX)
            start += len(image_token)
        chunk_ids, offsets = encode_text(tokenizer, chunk, with_offsets=True)
        pieces = list(zip(chunk_ids, offsets or []))
        if k > 0 and pieces and bos is not None and pieces[0][0] == bos:
            pieces = pieces[1:]  # BOS only at the very start of the sequence
        for token, (lo, hi) in pieces:
            ids.append(int(token))
            is_target = hi > lo and targets[start + hi - 1] == 1
            labels.append(int(token) if is_target else IGNORE_INDEX)
        start += len(chunk)
    return EncodedSample(tuple(ids), tuple(labels), image_position)


class ImageTruncatedError(MQTError):
    """The image's m positions do not fit in max_length; the sample cannot be trained on."""


def expand(
    sample: EncodedSample,
    num_visual_tokens: int,
    max_length: int,
    image_token_id: int,
) -> tuple[list[int], list[int]]:
    """Ids and labels with the placeholder expanded to m image positions, truncated to max_length.

    The image must fit entirely: cutting it would leave the model with fewer image positions than
    visual tokens, so that is an error (`data check` reports such samples as over-long).
    """
    ids, labels = list(sample.input_ids), list(sample.labels)
    position = sample.image_position
    if position is not None:
        if position + num_visual_tokens > max_length:
            raise ImageTruncatedError(
                f"The image starts at position {position} and needs {num_visual_tokens} positions, more "
                f"than max_length={max_length}; shorten the text before the image or raise max_length."
            )
        ids[position : position + 1] = [image_token_id] * num_visual_tokens
        labels[position : position + 1] = [IGNORE_INDEX] * num_visual_tokens
    return ids[:max_length], labels[:max_length]


def length_problem(sample: EncodedSample, num_visual_tokens: int, max_length: int) -> str | None:
    """Why the sample is unusable at budget m and max_length (None when it is fine).

    Truncating the end of a long conversation is normal (LLaVA does it); a sample is only unusable
    when the image does not fit or no answer token survives the truncation.
    """
    position = sample.image_position
    if position is not None and position + num_visual_tokens > max_length:
        return (
            f"the image at token {position} plus {num_visual_tokens} visual tokens exceeds "
            f"max_length={max_length}"
        )
    shift = num_visual_tokens - 1 if position is not None else 0
    for index, label in enumerate(sample.labels):
        if label != IGNORE_INDEX:
            expanded = index + shift if position is not None and index > position else index
            return None if expanded < max_length else (
                f"{sample.length(num_visual_tokens)} tokens with {num_visual_tokens} visual tokens: no "
                f"answer token falls within max_length={max_length}"
            )
    return "no answer tokens (nothing to learn)"


OFFLINE_LLAMA_TOKENIZER = "mqt:llama-sp-32000"


def tokenizer_source(name: str) -> str:
    """Resolve a tokenizer name: `mqt:llama-sp-32000` is the offline LLaMA-layout tokenizer that
    ships in `mistral-common` (written once under $MQT_VLM_CACHE, default ~/.cache/mqt_vlm); anything
    else is a folder or hub id for `AutoTokenizer.from_pretrained`."""
    if name != OFFLINE_LLAMA_TOKENIZER:
        return name
    return str(llama_tokenizer_dir(cache_dir()))
