"""Labels mask everything but the answers, token by token; the image takes exactly m positions and
counts towards max_length."""

from __future__ import annotations

import pytest
import torch

from mqt_vlm.data.collate import build_inputs, collate_samples, target_counts
from mqt_vlm.data.encode import IGNORE_INDEX, ImageTruncatedError, encode_segments, expand, length_problem
from mqt_vlm.data.llava import Record, conversation_turns, encode_record
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.templates import render

QA = (
    ("user", "<image>\nWhat is on the table?"),
    ("assistant", "A red cup of coffee."),
    ("user", "What is next to it?"),
    ("assistant", "A spoon, on the saucer."),
)


def _target_runs(sample) -> list[list[int]]:
    """Contiguous runs of target token ids."""
    runs, current = [], []
    for label in sample.labels:
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    return runs + ([current] if current else [])


def test_vicuna_labels_are_exactly_the_answers_with_eos(processor) -> None:
    record = Record(0, "r0", "x.png", QA)
    sample = encode_record(record, "vicuna_v1", processor)
    tokenizer = processor.tokenizer
    runs = _target_runs(sample)
    assert [tokenizer.decode(run, skip_special_tokens=True).strip() for run in runs] == [
        "A red cup of coffee.",
        "A spoon, on the saucer.",
    ]
    assert all(run[-1] == tokenizer.eos_token_id for run in runs)  # "</s>" is learned
    # every label is either ignored or equal to the token at its position
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(sample.labels, sample.input_ids))
    # the prompt part is what inference feeds the model, token for token
    text = "".join(s.text for s in render(conversation_turns(record, "vicuna_v1"), "vicuna_v1"))
    assert list(sample.input_ids) == processor.tokenize_prompt(text, 1)
    assert sample.input_ids[0] == tokenizer.bos_token_id
    assert sample.input_ids.count(processor.image_token_id) == 1


def test_vicuna_image_moves_to_the_front_of_the_question(processor) -> None:
    record = Record(0, "r0", "x.png", (("user", "What is this?\n<image>"), ("assistant", "A cat.")))
    turns = conversation_turns(record, "vicuna_v1")
    assert turns[0] == ("user", "<image>\nWhat is this?")


def test_plain_labels_are_the_caption_only(processor) -> None:
    record = Record(0, "c0", "x.png", (("user", "Describe the image.\n<image>"), ("assistant", "A cat on a sofa.")))
    sample = encode_record(record, "plain", processor)
    tokenizer = processor.tokenizer
    # plain drops the human text: BOS, the image, then the caption and a newline
    assert sample.input_ids[:2] == (tokenizer.bos_token_id, processor.image_token_id)
    targets = [label for label in sample.labels if label != IGNORE_INDEX]
    assert targets == list(sample.input_ids[2:])
    assert tokenizer.decode(targets) == "A cat on a sofa.\n"


def test_text_only_record_has_no_image_position(processor) -> None:
    record = Record(0, "t0", None, (("user", "Two plus three?"), ("assistant", "Five.")))
    sample = encode_record(record, "vicuna_v1", processor)
    assert sample.image_position is None
    assert processor.image_token_id not in sample.input_ids
    assert processor.tokenizer.decode([t for t in sample.labels if t != IGNORE_INDEX], skip_special_tokens=True).strip() == "Five."


@pytest.mark.parametrize("m", [1, 5, 16])
def test_expand_writes_exactly_m_image_positions(processor, m: int) -> None:
    sample = encode_record(Record(0, "r0", "x.png", QA), "vicuna_v1", processor)
    ids, labels = expand(sample, m, 4096, processor.image_token_id)
    assert ids.count(processor.image_token_id) == m
    assert len(ids) == sample.length(m) == len(sample.input_ids) + m - 1
    start = sample.image_position
    assert all(label == IGNORE_INDEX for label in labels[start : start + m])


def test_truncation_counts_the_image_positions(processor) -> None:
    sample = encode_record(Record(0, "r0", "x.png", QA), "vicuna_v1", processor)
    m = 16
    full = sample.length(m)
    ids, labels = expand(sample, m, full - 3, processor.image_token_id)
    assert len(ids) == len(labels) == full - 3  # cut at max_length including the m image positions
    assert ids.count(processor.image_token_id) == m
    ids_small, _ = expand(sample, 2, full - 3, processor.image_token_id)
    assert len(ids_small) == min(sample.length(2), full - 3)


def test_image_that_does_not_fit_is_refused(processor) -> None:
    sample = encode_record(Record(0, "r0", "x.png", QA), "vicuna_v1", processor)
    limit = sample.image_position + 8
    with pytest.raises(ImageTruncatedError):
        expand(sample, 9, limit, processor.image_token_id)
    assert length_problem(sample, 9, limit) is not None
    # image fits but every answer token is cut off: also unusable
    first_target = next(i for i, label in enumerate(sample.labels) if label != IGNORE_INDEX)
    reason = length_problem(sample, 8, first_target + 7)  # + (8 - 1) image positions -> answer at the limit
    assert reason is not None and "no answer token" in reason
    assert length_problem(sample, 8, first_target + 8) is None  # one answer token survives


def test_build_inputs_rows_per_budget(processor) -> None:
    samples = [encode_record(Record(0, "a", "x.png", QA), "vicuna_v1", processor),
               encode_record(Record(1, "b", None, (("user", "Hi?"), ("assistant", "Hello."))), "vicuna_v1", processor)]
    items = [
        {"index": 0, "id": "a", "sample": samples[0], "pixel_values": torch.zeros(3, 4, 4), "substituted": []},
        {"index": 1, "id": "b", "sample": samples[1], "pixel_values": None, "substituted": []},
    ]
    batch = collate_samples(items)
    inputs = build_inputs(batch, [8, 2], 4096, processor.image_token_id, processor.tokenizer.pad_token_id)
    assert inputs["input_ids"].shape[0] == 4 and inputs["row_budget"].tolist() == [0, 0, 1, 1]
    assert inputs["num_visual_tokens"] == [8, 2] and inputs["pixel_values"].shape[0] == 2
    image_positions = (inputs["input_ids"] == processor.image_token_id).sum(dim=1).tolist()
    assert image_positions == [8, 0, 2, 0]
    counts = target_counts(inputs, 2)
    assert counts[0] == counts[1] == samples[0].num_targets + samples[1].num_targets
    assert (inputs["labels"][inputs["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_encode_refuses_two_images(processor) -> None:
    from mqt_vlm.processing.templates import Segment

    with pytest.raises(MQTError, match="one"):
        encode_segments([Segment("<image> and <image>")], processor.tokenizer, processor.image_token_id)
