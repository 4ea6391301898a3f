"""Text -> token ids exactly as the released code's slow (sentencepiece) LLaMA tokenizer made them.

MQT-LLaVA was trained and evaluated with transformers 4.36's slow `LlamaTokenizer` on Vicuna v1.5's
tokenizer files (`legacy: false`). transformers 5 only has the fast tokenizer, converted from the
same `tokenizer.model`, and it differs from the slow one in two ways that reach our prompts:

1. Whitespace runs ("a  b", "x\\n  y"). transformers 5 ranks the BPE merges by vocabulary id and
   ignores the sentencepiece scores; LLaMA-layout models give whitespace-only pieces ("▁▁", "▁▁▁▁")
   low ids but the lowest score, so the fast tokenizer merges "▁▁" first where sentencepiece merges
   "▁b" first: "a  b" -> [▁a, ▁▁, b] instead of [▁a, ▁, ▁b]. `align_with_sentencepiece` re-ranks the
   merges by score (as transformers 4's converter did); afterwards both are the same BPE.
2. A text that starts with a space. The slow tokenizer prepends "▁" to every text it is given
   (each chunk around `<image>` is a separate call); the fast pre-tokenizer prepends it only when
   the text does not already start with one, so " What?" -> [▁What, ?] instead of [▁, ▁What, ?].
   `encode_text` hands the fast tokenizer the text the slow one sees ("▁" + text).

Text after a special token (`</s>USER` in a multi-turn prompt) gets no "▁" in either tokenizer
(`legacy: false`), so that case already agrees. Both fixes apply only to tokenizers converted from a
sentencepiece BPE model (BPE with byte fallback behind a Metaspace pre-tokenizer); byte-level BPE
tokenizers (GPT-2 style, SmolLM2) and the reproduction's own tokenizer are left alone.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

SPIECE_UNDERLINE = "▁"
_CHECKED: weakref.WeakSet[Any] = weakref.WeakSet()  # tokenizers already looked at


def _backend(tokenizer: Any) -> Any:
    return getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None


def is_sentencepiece_bpe(tokenizer: Any) -> bool:
    """A fast tokenizer converted from a LLaMA-layout sentencepiece model: BPE with byte fallback, no
    normalizer, a Metaspace pre-tokenizer that prepends "▁" to the first segment (legacy: false)."""
    backend = _backend(tokenizer)
    if backend is None:
        return False
    from tokenizers import models, pre_tokenizers

    pre = backend.pre_tokenizer
    return (
        isinstance(backend.model, models.BPE)
        and bool(backend.model.byte_fallback)
        and backend.normalizer is None
        and isinstance(pre, pre_tokenizers.Metaspace)
        and pre.replacement == SPIECE_UNDERLINE
        and pre.prepend_scheme == "first"
        and not pre.split
    )


def sentencepiece_file(tokenizer: Any) -> Path | None:
    """The tokenizer's `tokenizer.model`, when it was loaded from a folder that has one."""
    path = getattr(tokenizer, "vocab_file", None) or getattr(tokenizer, "init_kwargs", {}).get("vocab_file")
    return Path(path) if path and str(path).endswith(".model") and Path(path).is_file() else None


def align_with_sentencepiece(tokenizer: Any) -> bool:
    """Re-rank the BPE merges of a sentencepiece-converted fast tokenizer by the sentencepiece scores,
    so whitespace runs tokenize as the slow tokenizer does. Changes the tokenizer in place (and what
    `save_pretrained` writes); returns True when the merges changed.

    Needs the `tokenizer.model` the tokenizer came from (to read the scores) and a vocabulary that
    matches it piece for piece; otherwise nothing is changed. Each tokenizer object is looked at
    once, so calling it again (per training sample) costs nothing."""
    if tokenizer in _CHECKED:
        return False
    _CHECKED.add(tokenizer)
    if not is_sentencepiece_bpe(tokenizer):
        return False
    source = sentencepiece_file(tokenizer)
    if source is None:
        return False
    import json

    import sentencepiece
    from tokenizers import models
    from transformers.tokenization_utils_base import generate_merges

    processor = sentencepiece.SentencePieceProcessor(model_file=str(source))
    scores = {processor.id_to_piece(i): processor.get_score(i) for i in range(processor.get_piece_size())}
    backend = _backend(tokenizer)
    state = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = state["vocab"]
    if any(vocab.get(processor.id_to_piece(i)) != i for i in range(processor.get_piece_size())):
        return False  # not the model this tokenizer was converted from
    current = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    ranks = [scores.get(left + right, float("-inf")) for left, right in current]
    if all(a >= b for a, b in zip(ranks, ranks[1:])):
        return False  # already ranked by score (e.g. a tokenizer.json written by transformers 4)
    merges = generate_merges(vocab, scores)  # the order transformers 4's LlamaConverter produced
    options = {key: state[key] for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                                           "fuse_unk", "ignore_merges") if state.get(key) is not None}
    backend.model = models.BPE(vocab=vocab, merges=merges, byte_fallback=True, **options)
    return True


def _starts_with_special(tokenizer: Any, text: str) -> bool:
    return any(token and text.startswith(token) for token in getattr(tokenizer, "all_special_tokens", ()))


def encode_text(
    tokenizer: Any,
    text: str,
    add_special_tokens: bool = True,
    with_offsets: bool = False,
) -> tuple[list[int], list[tuple[int, int]] | None]:
    """Token ids of one piece of text (no `<image>` in it), as the slow tokenizer makes them, and
    with `with_offsets` the character span of each token in `text` (special tokens: (0, 0)).

    For a sentencepiece-converted tokenizer the text is given the slow tokenizer's prefix "▁" (unless
    it starts with a special token, where the slow tokenizer drops it again); the offsets are mapped
    back to `text`, and a token made of that prefix alone covers the first character."""
    prefix = bool(text) and is_sentencepiece_bpe(tokenizer) and not _starts_with_special(tokenizer, text)
    source = SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " ") if prefix else text
    encoding = tokenizer(source, add_special_tokens=add_special_tokens, return_offsets_mapping=with_offsets)
    ids = [int(t) for t in encoding["input_ids"]]
    if not with_offsets:
        return ids, None
    shift = 1 if prefix else 0
    offsets = []
    for lo, hi in encoding["offset_mapping"]:
        if hi == 0:  # a special token added around the text
            offsets.append((0, 0))
        else:
            offsets.append((max(lo - shift, 0), max(hi - shift, 1)))
    return ids, offsets
