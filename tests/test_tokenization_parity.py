"""Our token ids against the slow sentencepiece tokenizer the released MQT-LLaVA code ran.

The reference (`slow_llama_tokenizer.SlowLlamaTokenizer`) is written on `sentencepiece` itself, with
the LLaMA-layout 32000-piece model the tests use offline (mistral-common's tokenizer.model.v1: BPE,
byte fallback, dummy prefix, whitespace-only pieces scored lowest, as LLaMA's). Inference prompts go
through LLaVA's tokenizer_image_token (`released_reference.released_tokenization`); training
conversations through LLaVA's preprocess_v1 / preprocess_plain masking (written below from their
description), compared with `data.encode.encode_segments`.
"""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from mqt_vlm.data.encode import IGNORE_INDEX, encode_segments
from mqt_vlm.processing.image_processor import MQTImageProcessor
from mqt_vlm.processing.processor import MQTProcessor
from mqt_vlm.processing.templates import VICUNA_SYSTEM, format_prompt, render
from mqt_vlm.processing.tokenization import align_with_sentencepiece, encode_text
from released_reference import IMAGE_TOKEN_INDEX, released_tokenization
from slow_llama_tokenizer import SlowLlamaTokenizer

# prompts where transformers 5's fast tokenizer and the slow one disagree, and the usual ones
PROMPTS = [
    format_prompt("What is it?"),
    format_prompt("What  is   it?"),  # double and triple spaces
    f"{VICUNA_SYSTEM} USER: <image> What?  ASSISTANT:",  # a space right after <image>, two before ASSISTANT
    f"{VICUNA_SYSTEM} USER: <image>\n  indented\n\n\tcode  ASSISTANT:",
    f"{VICUNA_SYSTEM} USER: Look <image>  here <image>then ASSISTANT:",
    "<image>",
    "<image> ",
    " <image>x",
    format_prompt("Ünïcödé, 日本語 and emoji 🤗 — “quotes”"),
    f"{VICUNA_SYSTEM} USER: <image>\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>USER:  q3 ASSISTANT:",
    "text with a literal ▁ and </s> inside</s> and <s>x",
    "",
]
ALPHABET = [" ", "  ", "   ", "     ", "\n", "\t", "a", "bc", "The", " the", "12", "é", "日本", "🤗", "</s>", "<s>",
            "<unk>", "▁", "USER:", " ASSISTANT:", "<image>", "\r\n", "\u00a0", ".", "?"]


def fuzz_prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 14))) for _ in range(n)]


@pytest.fixture(scope="module")
def slow(llama_tokenizer_dir):
    return SlowLlamaTokenizer(llama_tokenizer_dir / "tokenizer.model")


@pytest.fixture(scope="module")
def processor(llama_tokenizer_dir):
    return MQTProcessor(MQTImageProcessor(crop_size=56), AutoTokenizer.from_pretrained(llama_tokenizer_dir), num_queries=16)


def expand(ids: list[int], image_id: int, m: int) -> list[int]:
    return [t for i in ids for t in ([image_id] * m if i == IMAGE_TOKEN_INDEX else [i])]


def test_reference_is_sentencepiece(slow):
    """The reference is sentencepiece: plain text equals sp.encode with its dummy prefix."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(slow.model_file))
    for text in ("a  b", " x", "héllo\n\n 日本 🤗", "x   "):
        assert slow(text) == [sp.bos_id()] + sp.encode(text)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_prompt_ids_equal_the_released_slow_path(processor, slow, prompt):
    m = 3
    expected = expand(released_tokenization(slow, prompt), processor.image_token_id, m)
    assert processor.tokenize_prompt(prompt, m) == expected


def test_fuzzed_prompts_equal_the_released_slow_path(processor, slow):
    for prompt in fuzz_prompts(400):
        expected = expand(released_tokenization(slow, prompt), processor.image_token_id, 2)
        assert processor.tokenize_prompt(prompt, 2) == expected, repr(prompt)


def test_the_raw_fast_tokenizer_differs_and_each_fix_is_needed(llama_tokenizer_dir, slow):
    """Without our two fixes transformers 5's tokenizer gives other ids (so the tests above can fail)."""
    raw = AutoTokenizer.from_pretrained(llama_tokenizer_dir)
    assert raw("a  b").input_ids != slow("a  b")  # merges ranked by id: [▁a, ▁▁, b], not [▁a, ▁, ▁b]
    assert raw(" What?").input_ids != slow(" What?")  # no "▁" added to a text that starts with a space
    assert raw("a1</s>USER: q2").input_ids == slow("a1</s>USER: q2")  # legacy=False: no "▁" after </s>
    assert encode_text(raw, " What?")[0] != slow(" What?")  # the prefix alone gives "▁▁What" -> [▁▁, What]
    assert align_with_sentencepiece(raw) and not align_with_sentencepiece(raw)  # re-ranks once
    assert raw("a  b").input_ids == slow("a  b")
    assert raw(" What?").input_ids != slow(" What?")  # the merges alone do not add the prefix
    assert encode_text(raw, " What?")[0] == slow(" What?")  # both together do


def test_legacy_tokenizer_differs_after_special_tokens(processor, llama_tokenizer_dir):
    """Vicuna v1.5 sets legacy=False, which we match; a legacy tokenizer puts "▁" after </s>."""
    legacy = SlowLlamaTokenizer(llama_tokenizer_dir / "tokenizer.model", legacy=True)
    prompt = PROMPTS[9]
    ours = processor.tokenize_prompt(prompt, 1)
    assert ours != expand(released_tokenization(legacy, prompt), processor.image_token_id, 1)
    assert processor.tokenize_prompt("no special tokens  here", ()) == legacy("no special tokens  here")


def test_saved_folders_keep_the_slow_tokenization(processor, slow, tmp_path):
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.model").is_file()
    plain = AutoTokenizer.from_pretrained(tmp_path)  # tokenizer.json now carries score-ranked merges
    assert plain("x  y\n   z").input_ids == slow("x  y\n   z")
    again = MQTProcessor.from_pretrained(tmp_path)
    for prompt in PROMPTS:
        assert again.tokenize_prompt(prompt, 2) == processor.tokenize_prompt(prompt, 2)


# ---- training: LLaVA's preprocess_v1 / preprocess_plain -----------------------------------------
def released_v1(slow: SlowLlamaTokenizer, conversation: str) -> tuple[list[int], list[int]]:
    """preprocess_v1 from its description: ids of the whole conversation; labels keep each round's
    answer and </s>, found by counting tokens of every round ("</s>"-separated) and of its part up to
    " ASSISTANT: " (minus BOS and the trailing "▁"); for rounds after the first, one less on both
    counts (legacy=False with tokenizers >= 0.14, the released pins); a sample whose counts do not add
    up to its length is masked whole ("tokenization mismatch")."""
    ids = released_tokenization(slow, conversation)
    labels = list(ids)
    sep = " ASSISTANT: "
    cur = 1
    labels[:1] = [IGNORE_INDEX]
    for i, rou in enumerate(conversation.split("</s>")):
        if rou == "":
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        round_len = len(released_tokenization(slow, rou))
        instruction_len = len(released_tokenization(slow, parts[0] + sep)) - 2
        if i != 0 and not slow.legacy:
            round_len, instruction_len = round_len - 1, instruction_len - 1
        labels[cur : cur + instruction_len] = [IGNORE_INDEX] * instruction_len
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * (len(labels) - cur)
    if cur != len(ids):
        labels = [IGNORE_INDEX] * len(ids)
    return ids, labels


def released_plain(slow: SlowLlamaTokenizer, caption: str) -> tuple[list[int], list[int]]:
    """preprocess_plain: "<image>" + caption + "\\n"; the first two tokens (BOS, image) are masked."""
    ids = released_tokenization(slow, "<image>" + caption + "\n")
    return ids, [IGNORE_INDEX, IGNORE_INDEX] + ids[2:]


CONVERSATIONS = [
    [("user", "<image>\nWhat is on the table?"), ("assistant", "A red cup.")],
    [("user", "<image>\nq1"), ("assistant", "a1"), ("user", "q2  with  spaces"), ("assistant", "a2\n\nline two"),
     ("user", "Ünïcödé 日本 🤗?"), ("assistant", "  indented answer")],
    [("user", "<image>\nDescribe."), ("assistant", "\nStarts with a newline.")],
    [("user", "Text only, no image."), ("assistant", "Fine.")],
]


@pytest.mark.parametrize("turns", CONVERSATIONS)
def test_training_ids_and_labels_equal_preprocess_v1(processor, slow, turns):
    segments = render(turns, "vicuna_v1")
    sample = encode_segments(segments, processor.tokenizer, processor.image_token_id)
    ids, labels = released_v1(slow, "".join(s.text for s in segments))
    image = processor.image_token_id
    assert list(sample.input_ids) == [image if t == IMAGE_TOKEN_INDEX else t for t in ids]
    assert any(label != IGNORE_INDEX for label in labels)  # the reference did not discard the sample
    assert list(sample.labels) == [IGNORE_INDEX if t == IMAGE_TOKEN_INDEX else t for t in labels]


@pytest.mark.parametrize("caption", ["A cat on a sofa.", "  two leading spaces", "tabs\tand  runs   of spaces"])
def test_training_ids_and_labels_equal_preprocess_plain(processor, slow, caption):
    sample = encode_segments(render([("user", "<image>"), ("assistant", caption)], "plain"), processor.tokenizer,
                             processor.image_token_id)
    ids, labels = released_plain(slow, caption)
    image = processor.image_token_id
    assert list(sample.input_ids) == [image if t == IMAGE_TOKEN_INDEX else t for t in ids]
    assert list(sample.labels) == [IGNORE_INDEX if t == IMAGE_TOKEN_INDEX else t for t in labels]


def test_documented_difference_llava_masks_samples_whose_counts_disagree(processor, slow):
    """A user turn that contains " ASSISTANT: " splits into three parts: LLaVA stops counting, its
    lengths no longer add up and it masks the whole sample ("tokenization mismatch"); offsets still
    find the answer, so we train on it (docs/tokenization.md)."""
    turns = [("user", "<image>\nWhat does ASSISTANT: mean here?"), ("assistant", "A role name.")]
    segments = render(turns, "vicuna_v1")
    sample = encode_segments(segments, processor.tokenizer, processor.image_token_id)
    ids, labels = released_v1(slow, "".join(s.text for s in segments))
    assert list(sample.input_ids) == [processor.image_token_id if t == IMAGE_TOKEN_INDEX else t for t in ids]
    assert all(label == IGNORE_INDEX for label in labels)
    answer = [t for t in sample.labels if t != IGNORE_INDEX]
    assert processor.tokenizer.decode(answer, skip_special_tokens=True).strip() == "A role name."
