"""MQTProcessor and image loading: released tokenization, padding, preprocessing, bad images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mqt_vlm import MQTError
from mqt_vlm.processing.image_processor import expand_to_square
from mqt_vlm.processing.images import load_image
from mqt_vlm.processing.templates import VICUNA_SYSTEM, format_prompt, render
from released_reference import released_tokenization


def test_vicuna_prompt_is_exact():
    prompt = format_prompt("What is it?")
    assert prompt == f"{VICUNA_SYSTEM} USER: <image>\nWhat is it? ASSISTANT:"
    turns = [("user", "<image>\nq1"), ("assistant", "a1"), ("user", "q2")]
    assert "".join(s.text for s in render(turns)) == f"{VICUNA_SYSTEM} USER: <image>\nq1 ASSISTANT: a1</s>USER: q2 ASSISTANT:"
    assert [s.target for s in render(turns)] == [False, False, True, False]
    plain = render([("user", "<image>"), ("assistant", "a cat")], "plain")
    assert "".join(s.text for s in plain) == "<image>a cat\n" and plain[-1].target
    with pytest.raises(MQTError, match="alternate"):
        render([("assistant", "x")])


def test_tokenization_matches_released_rule(tiny):
    _, processor = tiny
    tok = processor.tokenizer
    for prompt in (format_prompt("How many?"), "<image>\nDescribe.", "Look: <image> and <image> then?"):
        m = 3
        ours = processor.tokenize_prompt(prompt, m)
        ref = released_tokenization(tok, prompt)
        expanded = []
        for t in ref:
            expanded.extend([processor.image_token_id] * m if t == -200 else [t])
        assert ours == expanded
        assert ours.count(tok.bos_token_id) == 1 and ours[0] == tok.bos_token_id


def test_processor_outputs_and_padding(tiny, photos):
    _, processor = tiny
    prompts = [processor.format_prompt("short?"), processor.format_prompt("a much longer question here?")]
    assert processor.tokenizer.padding_side == "right"  # the tokenizer says right; inference pads left anyway
    left = processor(images=[photos["chelsea"], photos["coffee"]], text=prompts, num_visual_tokens=[2, 5])
    right = processor(images=[photos["chelsea"], photos["coffee"]], text=prompts, num_visual_tokens=[2, 5], padding_side="right")
    assert right["pixel_values"].shape == (2, 3, 56, 56) and right["pixel_values"].dtype == torch.float32
    assert right["attention_mask"][0, -1] == 0 and left["attention_mask"][0, 0] == 0
    image_id = processor.image_token_id
    assert (right["input_ids"][0] == image_id).sum() == 2 and (right["input_ids"][1] == image_id).sum() == 5
    assert right["attention_mask"].sum() == left["attention_mask"].sum()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"text": "<image> a"}, "placeholders but 0 images"),
        ({"text": "no image", "images": "IMG"}, "placeholders but 1 images"),
        ({"text": "<image> a", "images": "IMG", "num_visual_tokens": [1, 2]}, "budgets"),
        ({"text": "<image> a", "images": "IMG", "num_visual_tokens": 17}, "1..16"),
        ({"images": "IMG"}, "needs text"),
    ],
)
def test_processor_errors(tiny, random_image, kwargs, match):
    _, processor = tiny
    if kwargs.get("images") == "IMG":
        kwargs["images"] = random_image
    with pytest.raises(MQTError, match=match):
        processor(**kwargs)


def test_pad_to_square_uses_integer_mean_colour(tiny):
    _, processor = tiny
    assert processor.image_processor.fill_color == (122, 116, 104)
    img = Image.new("RGB", (10, 4), (255, 0, 0))
    square = expand_to_square(img, (122, 116, 104))
    assert square.size == (10, 10)
    assert square.getpixel((0, 0)) == (122, 116, 104) and square.getpixel((0, 3)) == (255, 0, 0)
    assert square.getpixel((0, 6)) == (255, 0, 0) and square.getpixel((0, 7)) == (122, 116, 104)


def test_preprocessing_matches_transformers_clip_pil_pipeline(photos):
    """Our numpy pipeline against transformers' own CLIP PIL pipeline on a padded real photo."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from mqt_vlm.processing.image_processor import MQTImageProcessor

    ours = MQTImageProcessor(crop_size=336)
    reference = CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    for name in ("chelsea", "coffee"):
        padded = expand_to_square(photos[name], (122, 116, 104))
        ref = reference(padded, return_tensors="pt")["pixel_values"]
        got = ours(photos[name])["pixel_values"]
        assert got.shape == ref.shape == (1, 3, 336, 336)
        assert (got - ref).abs().max() < 1e-5


def test_image_modes_convert_correctly():
    grey16 = np.full((4, 4), 65535, dtype=np.uint16)
    assert Image.fromarray(grey16).mode == "I;16"
    assert load_image(Image.fromarray(grey16)).getpixel((0, 0)) == (255, 255, 255)
    half16 = np.full((4, 4), 32896, dtype=np.uint16)  # 128 * 257
    assert load_image(Image.fromarray(half16)).getpixel((0, 0)) == (128, 128, 128)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black -> white background
    assert load_image(Image.fromarray(rgba)).getpixel((0, 0)) == (255, 255, 255)
    opaque = np.zeros((4, 4, 4), dtype=np.uint8)
    opaque[..., 0], opaque[..., 3] = 200, 255
    assert load_image(Image.fromarray(opaque)).getpixel((0, 0)) == (200, 0, 0)
    assert load_image(Image.new("LA", (3, 3), (10, 255))).getpixel((0, 0)) == (10, 10, 10)
    assert load_image(Image.new("L", (3, 3), 77)).getpixel((1, 1)) == (77, 77, 77)
    assert load_image(Image.new("CMYK", (3, 3), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (3, 3), 0)
    palette.putpalette([0, 255, 0] + [0] * 765)
    assert load_image(palette).getpixel((0, 0)) == (0, 255, 0)


def test_bad_images_raise(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, format="JPEG")
    data = good.getvalue()
    with pytest.raises(MQTError, match="empty"):
        load_image(b"")
    with pytest.raises(MQTError, match="not a readable image"):
        load_image(b"hello, this is text")
    with pytest.raises(MQTError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    big = io.BytesIO()
    Image.new("L", (3000, 3000)).save(big, format="PNG")
    with pytest.raises(MQTError, match="more than the limit"):
        load_image(big.getvalue(), max_pixels=1_000_000)
    with pytest.raises(MQTError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(MQTError, match="empty"):
        load_image(tmp_path / "zero.png")
    with pytest.raises(MQTError, match="Unsupported"):
        load_image(12345)  # type: ignore[arg-type]


def test_image_size_rule_refuses_long_sides_and_extreme_ratios_from_the_header():
    """The padded canvas follows the long side: a tiny 1 x 20000 PNG must be refused before decoding."""
    import io

    from PIL import Image

    from mqt_vlm.errors import MQTError
    from mqt_vlm.processing.images import check_image_size, load_image

    buffer = io.BytesIO()
    Image.new("RGB", (1, 20000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 1000
    with pytest.raises(MQTError, match="long side"):
        load_image(buffer.getvalue())
    with pytest.raises(MQTError, match="side ratio"):
        check_image_size(30, 2000, max_side=8192)
    with pytest.raises(MQTError, match="pixels"):
        check_image_size(5000, 5000, max_pixels=1_000_000)
    check_image_size(4032, 3024, max_pixels=16_000_000)  # a 12 MP phone photo passes
    assert load_image(buffer.getvalue(), max_side=20000, max_aspect_ratio=20000).size == (1, 20000)
