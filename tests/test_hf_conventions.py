"""Hugging Face conventions: Auto classes after a plain `import mqt_vlm`, the chat template saved with
the processor, the standard processor arguments, `pipeline("image-text-to-text")`, old saved folders."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from mqt_vlm.errors import MQTError
from mqt_vlm.inference.prompting import build_prompt, user_text
from mqt_vlm.processing.image_processor import MQTImageProcessor
from mqt_vlm.processing.processor import MQTProcessor
from mqt_vlm.processing.templates import VICUNA_SYSTEM, render

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    model, processor = tiny_model
    folder = tmp_path_factory.mktemp("tiny_saved")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def image_part(image=None):
    return {"type": "image"} if image is None else {"type": "image", "image": image}


def text_part(text):
    return {"type": "text", "text": text}


def our_prompt(messages, processor, template=None):
    """What our own prompt builder makes of HF messages (the serve/chat path)."""
    system = "\n".join(m["content"] if isinstance(m["content"], str) else user_text([(p["type"], p.get("text")) for p in m["content"]])
                       for m in messages if m["role"] == "system")
    turns = []
    for m in messages:
        if m["role"] == "system":
            continue
        content = m["content"]
        parts = [("text", content)] if isinstance(content, str) else [(p["type"], p.get("text")) for p in content]
        turns.append((m["role"], user_text(parts)))
    return build_prompt(turns, processor, template, system or None)


# ---- Auto classes -------------------------------------------------------------------------------
def test_plain_import_resolves_every_auto_class(saved):
    script = textwrap.dedent(f"""
        import sys
        import mqt_vlm
        from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageTextToText,
                                  AutoProcessor)
        folder = {str(saved)!r}
        print(type(AutoConfig.from_pretrained(folder)).__name__)
        print(type(AutoModel.from_pretrained(folder)).__name__)
        print(type(AutoModelForImageTextToText.from_pretrained(folder)).__name__)
        print(type(AutoProcessor.from_pretrained(folder)).__name__)
        print(type(AutoImageProcessor.from_pretrained(folder)).__name__)
        optional = {{"fastapi", "uvicorn", "httpx", "matplotlib", "peft", "deepspeed", "gradio", "openai", "skimage"}}
        print(sorted(optional & {{m.split(".")[0] for m in sys.modules}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()[-6:]
    assert lines == ["MQTConfig", "MQTForConditionalGeneration", "MQTForConditionalGeneration", "MQTProcessor",
                     "MQTImageProcessor", "[]"]


# ---- chat template ------------------------------------------------------------------------------
CONVERSATIONS = {
    "single": [{"role": "user", "content": [image_part(), text_part("What is it?")]}],
    "single+system": [{"role": "system", "content": "Answer briefly."},
                      {"role": "user", "content": [image_part(), text_part("What is it?")]}],
    "multi": [{"role": "user", "content": [image_part(), text_part("What is it?")]},
              {"role": "assistant", "content": [text_part("A cat.")]},
              {"role": "user", "content": "And  the colour?"}],
    "multi+system": [{"role": "system", "content": [text_part("Be terse.")]},
                     {"role": "user", "content": [text_part("Look:"), image_part(), text_part("what?")]},
                     {"role": "assistant", "content": "A dog."},
                     {"role": "user", "content": [text_part("Compare with"), image_part()]}],
}


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_chat_template_renders_our_prompt(tiny_model, name):
    _, processor = tiny_model
    messages = CONVERSATIONS[name]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert rendered == our_prompt(messages, processor)
    if name == "single":
        assert rendered == processor.format_prompt("What is it?")
    if name == "multi":
        assert rendered == f"{VICUNA_SYSTEM} USER: <image>\nWhat is it? ASSISTANT: A cat.</s>USER: And  the colour? ASSISTANT:"


def test_chat_template_of_a_training_conversation_equals_render(tiny_model):
    _, processor = tiny_model
    turns = [("user", "<image>\nq1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]
    messages = [{"role": "user", "content": [image_part(), text_part("q1")]}, {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    assert processor.apply_chat_template(messages) == "".join(s.text for s in render(turns, "vicuna_v1"))
    with pytest.raises(Exception, match="alternate"):
        processor.apply_chat_template([{"role": "assistant", "content": "x"}])
    with pytest.raises(Exception, match="placeholder"):
        processor.apply_chat_template([{"role": "user", "content": [text_part("<image> typed")]}])


def test_chat_template_tokenized_with_images_equals_the_processor(tiny_model, photos):
    _, processor = tiny_model
    messages = [{"role": "user", "content": [image_part(photos["chelsea"]), text_part("What is it?")]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": [text_part("And this?"), image_part(photos["coffee"])]}]
    out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                        processor_kwargs={"num_visual_tokens": [3, 5]})
    expected = processor(images=[photos["chelsea"], photos["coffee"]], text=our_prompt(messages, processor),
                         num_visual_tokens=[3, 5])
    assert torch.equal(out["input_ids"], expected["input_ids"])
    assert torch.equal(out["pixel_values"], expected["pixel_values"])


def test_plain_and_language_model_templates(llama_tokenizer_dir):
    plain = MQTProcessor(MQTImageProcessor(crop_size=56), AutoTokenizer.from_pretrained(llama_tokenizer_dir),
                         num_queries=16, default_template="plain")
    messages = CONVERSATIONS["single+system"]
    assert plain.apply_chat_template(messages, add_generation_prompt=True) == our_prompt(messages, plain)
    tokenizer = AutoTokenizer.from_pretrained(llama_tokenizer_dir)
    tokenizer.chat_template = CHATML
    chat = MQTProcessor(MQTImageProcessor(crop_size=56), tokenizer, num_queries=16, default_template="chat")
    for name in ("single+system", "multi"):
        messages = CONVERSATIONS[name]
        rendered = chat.apply_chat_template(messages, add_generation_prompt=True)
        assert rendered == our_prompt(messages, chat) and "<|im_start|>user\n<image>\nWhat is it?<|im_end|>" in rendered


def test_templates_survive_save_and_load(tmp_path, llama_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_tokenizer_dir)
    tokenizer.chat_template = CHATML  # an LM with its own template, behind the vicuna_v1 default
    processor = MQTProcessor(MQTImageProcessor(crop_size=56), tokenizer, num_queries=16)
    processor.save_pretrained(tmp_path / "a")
    again = MQTProcessor.from_pretrained(tmp_path / "a")
    assert again.chat_template == processor.chat_template and again.tokenizer.chat_template == CHATML
    bare = MQTProcessor(MQTImageProcessor(crop_size=56), AutoTokenizer.from_pretrained(llama_tokenizer_dir), num_queries=16)
    bare.save_pretrained(tmp_path / "b")
    again = MQTProcessor.from_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "chat_template.jinja").is_file() and again.tokenizer.chat_template is None


# ---- standard arguments ------------------------------------------------------------------------
def test_standard_processor_arguments(tiny_model, photos, random_image):
    _, processor = tiny_model
    short, long = processor.format_prompt("Hi?"), processor.format_prompt("A much longer question about the picture?")
    base = processor(images=[photos["chelsea"], random_image], text=[short, long], num_visual_tokens=[2, 3])
    length = base["input_ids"].shape[1]
    positional = processor([photos["chelsea"], random_image], [short, long], num_visual_tokens=[2, 3])
    swapped = processor([short, long], [photos["chelsea"], random_image], num_visual_tokens=[2, 3])
    nested = processor(images=[[photos["chelsea"]], [random_image]], text=[short, long], num_visual_tokens=[2, 3])
    for other in (positional, swapped, nested):
        assert torch.equal(other["input_ids"], base["input_ids"]) and torch.equal(other["pixel_values"], base["pixel_values"])

    as_lists = processor(images=[photos["chelsea"], random_image], text=[short, long], num_visual_tokens=[2, 3],
                         padding=False, return_tensors=None)
    assert isinstance(as_lists["input_ids"], list) and len(as_lists["input_ids"][0]) < len(as_lists["input_ids"][1])
    assert as_lists["input_ids"][1] == base["input_ids"][1].tolist()
    as_np = processor(images=random_image, text=short, num_visual_tokens=2, return_tensors="np")
    assert isinstance(as_np["input_ids"], np.ndarray) and isinstance(as_np["pixel_values"], np.ndarray)

    padded = processor(images=random_image, text=short, num_visual_tokens=2, padding="max_length", max_length=length + 5)
    assert padded["input_ids"].shape == (1, length + 5) and padded["attention_mask"][0, :5].sum() == 0
    multiple = processor(images=random_image, text=short, num_visual_tokens=2, pad_to_multiple_of=64)
    assert multiple["input_ids"].shape[1] % 64 == 0

    full = processor(images=random_image, text=long, num_visual_tokens=2)["input_ids"][0]
    cut = processor(images=random_image, text=long, num_visual_tokens=2, truncation=True, max_length=len(full) - 4)
    assert cut["input_ids"][0].tolist() == full[: len(full) - 4].tolist()
    first_image = full.tolist().index(processor.image_token_id)
    with pytest.raises(MQTError, match="image positions"):  # cutting one of the two image positions
        processor(images=random_image, text=long, num_visual_tokens=2, truncation=True, max_length=first_image + 1)

    no_bos = processor(images=random_image, text=short, num_visual_tokens=2, add_special_tokens=False)
    assert no_bos["input_ids"][0].tolist() == processor.tokenize_prompt(short, 2)[1:]
    assert "attention_mask" not in processor(text="Hi", return_attention_mask=False)

    data_uri = io.BytesIO()
    random_image.save(data_uri, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(data_uri.getvalue()).decode()
    from_uri = processor(images=uri, text=short, num_visual_tokens=2)
    assert torch.equal(from_uri["pixel_values"], processor(images=random_image, text=short, num_visual_tokens=2)["pixel_values"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"text": ["a", "bb"], "padding": False}, "need padding"),
        ({"text": "a", "return_tensors": "tf"}, "return_tensors"),
        ({"text": "a", "do_sample": False}, "cannot honour"),
        ({"text": "a", "videos": ["v.mp4"]}, "no videos"),
        ({"text": "a", "return_token_type_ids": True}, "token_type_ids"),
        ({"text": "a", "truncation": "only_second"}, "truncation"),
        ({"text": "a", "padding": "max_length", "max_length": None, "text_kwargs": {"foo": 1}}, "cannot honour"),
        ({"text": ["<image> a", "<image> b"], "images": [["IMG", "IMG"], []]}, "Prompt 0 has 1"),
        ({"text": "<image> a", "images": "https://example.com/cat.png"}, "does not download"),
    ],
)
def test_arguments_it_cannot_honour_are_refused(tiny_model, random_image, kwargs, match):
    _, processor = tiny_model
    if "images" in kwargs and isinstance(kwargs["images"], list):
        kwargs["images"] = [[random_image if i == "IMG" else i for i in group] for group in kwargs["images"]]
    with pytest.raises(MQTError, match=match):
        processor(**kwargs)


# ---- pipeline -----------------------------------------------------------------------------------
def test_image_text_to_text_pipeline_with_chat_messages(saved, tiny_model, photos):
    from transformers import pipeline

    model, processor = tiny_model
    pipe = pipeline("image-text-to-text", model=str(saved))
    for messages in (
        [{"role": "user", "content": [image_part(photos["chelsea"]), text_part("What is it?")]}],
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": [image_part(photos["coffee"]), text_part("What is it?")]},
         {"role": "assistant", "content": "A cup."},
         {"role": "user", "content": "Colour?"}],
    ):
        out = pipe(text=messages, max_new_tokens=5, generate_kwargs={"do_sample": False}, return_tensors=True)
        images = [p["image"] for m in messages if not isinstance(m["content"], str) for p in m["content"] if p["type"] == "image"]
        batch = processor(images=images, text=our_prompt(messages, processor))
        with torch.no_grad():
            expected = model.generate(**batch, max_new_tokens=5, do_sample=False)
        assert out[0]["generated_token_ids"].tolist() == expected[0].tolist()
        text = pipe(text=messages, max_new_tokens=5, generate_kwargs={"do_sample": False})[0]["generated_text"]
        assert text[-1]["role"] == "assistant" and text[:-1] == messages


def test_builtin_folder_loads_through_auto_processor():
    from transformers import AutoProcessor

    from mqt_vlm.loading import builtin_dir

    try:
        folder = builtin_dir("shapes")
    except MQTError:
        pytest.skip("builtin:shapes is not installed")
    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, MQTProcessor) and processor.image_processor.crop_size == 64
    assert processor.tokenize_prompt(processor.format_prompt("How many?"), 2).count(processor.image_token_id) == 2


def test_old_preprocessor_configs_load_through_auto_image_processor(tmp_path):
    from transformers import AutoImageProcessor

    old = {"crop_size": 56, "shortest_edge": 64, "image_aspect_ratio": "pad", "image_mean": [0.5, 0.5, 0.5],
           "image_std": [0.25, 0.25, 0.25], "image_processor_type": "MQTImageProcessor", "max_pixels": 40000000,
           "resample": "bicubic"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(old))
    auto = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(auto) is MQTImageProcessor and auto.to_dict() == MQTImageProcessor.from_pretrained(tmp_path).to_dict()
