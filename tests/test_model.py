"""MQTForConditionalGeneration on a tiny random model: budgets, generate, save/load, errors."""

from __future__ import annotations

import pytest
import torch

from mqt_vlm import MQTConfig, MQTError, MQTForConditionalGeneration, MQTProcessor


def inputs(processor, image, m, question="What is this?"):
    return processor(images=image, text=processor.format_prompt(question), num_visual_tokens=m)


def test_forward_at_every_budget_and_prefix_of_visual_tokens(tiny, random_image):
    model, processor = tiny
    pixel_values = processor.image_processor(random_image)["pixel_values"]
    all_tokens = model.encode_images(pixel_values)
    assert all_tokens.shape == (1, 16, 64)
    for m in (1, 2, 7, 16):
        batch = inputs(processor, random_image, m)
        assert int((batch["input_ids"] == model.config.image_token_id).sum()) == m
        out = model(**batch, num_visual_tokens=m)
        assert out.logits.shape == (1, batch["input_ids"].shape[1], 32000)
        # the embedded visual tokens are exactly the first m rows of the M-token encoding
        embeds = model.embed_inputs(batch["input_ids"], batch["pixel_values"], m)
        mask = batch["input_ids"][0] == model.config.image_token_id
        assert torch.equal(embeds[0, mask], all_tokens[0, :m])


def test_default_budget_is_config_default_never_random(tiny, random_image):
    model, processor = tiny
    batch = inputs(processor, random_image, 16)
    first = model(**batch).logits
    second = model(**batch).logits
    assert torch.equal(first, second)
    with pytest.raises(MQTError, match="image-token positions"):
        model(**inputs(processor, random_image, 8))  # default m = M = 16


@pytest.mark.parametrize("bad", [0, 17, "eight", "8.0", 8.0, True, None.__class__])
def test_bad_budget_raises(tiny, random_image, bad):
    model, processor = tiny
    with pytest.raises(MQTError, match="num_visual_tokens"):
        model(**inputs(processor, random_image, 8), num_visual_tokens=bad)


def test_budget_words_of_the_vocabulary_reach_the_model(tiny, random_image):
    """The model's public API speaks `mqt_vlm.budgets`: "8" is 8 and "M"/"max" is M (docs/budgets.md)."""
    model, processor = tiny
    at8 = model(**inputs(processor, random_image, 8), num_visual_tokens=8).logits
    assert torch.equal(model(**inputs(processor, random_image, 8), num_visual_tokens="8").logits, at8)
    at16 = model(**inputs(processor, random_image, 16), num_visual_tokens=16).logits
    for word in ("M", "max"):
        assert torch.equal(model(**inputs(processor, random_image, 16), num_visual_tokens=word).logits, at16)


def test_placeholder_count_must_match_budget(tiny, random_image):
    model, processor = tiny
    with pytest.raises(MQTError, match="image-token positions"):
        model(**inputs(processor, random_image, 4), num_visual_tokens=5)
    batch = inputs(processor, random_image, 4)
    with pytest.raises(MQTError, match="no pixel_values"):
        model(input_ids=batch["input_ids"], num_visual_tokens=4)


def test_generate_greedy_matches_manual_loop(tiny, random_image):
    model, processor = tiny
    batch = inputs(processor, random_image, 4)
    generated = model.generate(**batch, num_visual_tokens=4, max_new_tokens=6, do_sample=False)
    ids = batch["input_ids"]
    embeds = model.embed_inputs(ids, batch["pixel_values"], 4)
    tokens = []
    with torch.no_grad():
        for _ in range(6):
            logits = model.language_model(inputs_embeds=embeds).logits[:, -1]
            nxt = logits.argmax(-1)
            tokens.append(int(nxt))
            embeds = torch.cat([embeds, model.get_input_embeddings()(nxt)[:, None]], dim=1)
    assert generated[0, ids.shape[1]:].tolist() == tokens


def test_text_only_and_mixed_budgets_in_one_batch(tiny, random_image, photos):
    model, processor = tiny
    prompts = [processor.format_prompt("a?"), processor.format_prompt("b?"), processor.format_prompt("c?", with_image=False)]
    batch = processor(images=[random_image, photos["coffee"]], text=prompts, num_visual_tokens=[3, 9])
    out = model(**batch, num_visual_tokens=[3, 9])
    single = model(**inputs(processor, photos["coffee"], 9, "b?"), num_visual_tokens=9)
    n = int(batch["attention_mask"][1].sum())
    assert torch.allclose(out.logits[1, :n], single.logits[0], atol=1e-5)


def test_loss_and_gradients_reach_trainable_parts(tiny, random_image):
    model, processor = tiny
    model.train()
    batch = inputs(processor, random_image, 5)
    labels = batch["input_ids"].clone()
    labels[labels == model.config.image_token_id] = -100
    out = model(**batch, labels=labels, num_visual_tokens=5)
    out.loss.backward()
    for name, param in model.named_parameters():
        if name.startswith("vision_tower.post_layernorm") or ".encoder.layers.1." in name:
            continue  # the tower's last layer and post-norm are not used (features from layer -2)
        assert param.grad is not None, name


def test_save_and_load_round_trip(tiny, random_image, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = MQTForConditionalGeneration.from_pretrained(tmp_path).eval()
    proc2 = MQTProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded.config, MQTConfig) and loaded.config.mqt_config == model.config.mqt_config
    a = model(**inputs(processor, random_image, 6), num_visual_tokens=6).logits
    b = loaded(**inputs(proc2, random_image, 6), num_visual_tokens=6).logits
    assert torch.equal(a, b)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert isinstance(AutoModelForImageTextToText.from_pretrained(tmp_path), MQTForConditionalGeneration)
    assert isinstance(AutoProcessor.from_pretrained(tmp_path), MQTProcessor)


def test_feature_width_mismatch_is_caught_at_config_time():
    from mqt_vlm.modeling.configuration import MQTConfig as Config

    parts = dict(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 4, "image_size": 28, "patch_size": 14},
        text_config={"model_type": "llama", "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 1,
                     "num_attention_heads": 4, "vocab_size": 100},
    )
    for field, bad in (("kv_dim", 999), ("output_dim", 47), ("key_grid", [3, 3])):
        with pytest.raises(MQTError, match=field):
            Config(**parts, mqt_config={"num_queries": 4, "num_heads": 4, field: bad})
    config = Config(**parts, mqt_config={"num_queries": 4, "num_heads": 4, "kv_dim": 32, "key_grid": (2, 2)})
    assert (config.mqt_config["kv_dim"], config.mqt_config["output_dim"], config.mqt_config["key_grid"]) == (32, 48, [2, 2])
    assert Config.from_dict(config.to_dict()).mqt_config == config.mqt_config  # a saved config reloads
    model = MQTForConditionalGeneration(config)
    with pytest.raises(MQTError, match="kv_dim"):
        model.mqt(torch.randn(1, 4, 31), 2)


def test_load_in_bfloat16_casts_every_mqt_parameter(tiny, random_image, tmp_path):
    from mqt_vlm.loading import load_model

    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, proc = load_model(tmp_path, dtype="bfloat16")
    assert {p.dtype for p in loaded.mqt.parameters()} == {torch.bfloat16}
    batch = proc(images=random_image, text=proc.format_prompt("hi"), num_visual_tokens=4)
    assert loaded.generate(**batch, num_visual_tokens=4, max_new_tokens=2, do_sample=False).shape[1] == batch["input_ids"].shape[1] + 2


@pytest.mark.parametrize("layer", [-2, -1, 0, 1])
def test_tower_stops_at_the_feature_layer_with_identical_features(tiny, random_image, layer):
    """get_image_features runs only the layers it needs; the features are bit-identical to the full
    tower's hidden_states[layer], and the unused last layer never runs."""
    model, processor = tiny
    pixels = processor.image_processor(random_image, return_tensors="pt")["pixel_values"]
    model.config.vision_feature_layer = layer
    calls = []
    last = model.vision_tower.encoder.layers[-1]
    handle = last.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            features = model.get_image_features(pixels)
            calls_before_full = len(calls)
            full = model.vision_tower(pixels, output_hidden_states=True).hidden_states[layer][:, 1:]
    finally:
        handle.remove()
        model.config.vision_feature_layer = -2
    assert torch.equal(features, full)
    layers = len(model.vision_tower.encoder.layers)
    assert calls_before_full == (1 if layer in (-1, layers) else 0)


def test_siglip_tower_stops_at_the_feature_layer_with_identical_features(llama_tokenizer_dir):
    """The same layer-by-layer path for a SigLIP tower (no CLS, no pre-norm, pooling head unused)."""
    from mqt_vlm.modeling.builder import build_model, load_preset

    torch.manual_seed(0)
    preset = load_preset("tiny")
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 3, "num_attention_heads": 4, "image_size": 56, "patch_size": 14}
    model, _ = build_model(vision, preset["text_config"], str(llama_tokenizer_dir), preset["mqt_config"],
                           vision_feature_select_strategy="full")
    pixels = torch.randn(2, 3, 56, 56)
    calls = []
    handle = model.vision_tower.encoder.layers[-1].register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        features = model.eval().get_image_features(pixels)
        handle.remove()
        full = model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
    assert features.shape == (2, 16, 32) and torch.equal(features, full)
    assert not calls  # the last layer never ran
