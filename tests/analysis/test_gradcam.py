"""Grad-CAM and MQT attention maps on the tiny model: shapes, normalisation, budgets, figures,
parity with an independent autograd computation, and the error paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from mqt_vlm.analysis.gradcam import CaptureFeatures, attention_maps, grad_cam, gradcam_maps
from mqt_vlm.analysis.gradcam_cli import default_queries, explain, gradcam, plot_gradcam
from mqt_vlm.errors import MQTError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUDGETS = [1, 4, 16]


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        img.verify()


def test_maps_have_grid_shape_are_normalised_and_differ_between_budgets(tiny, photos):
    model, processor = tiny
    view, results = explain(model, processor, photos["astronaut"], "What is the astronaut holding?", BUDGETS)
    assert view.shape == (56, 56, 3) and 0 <= float(view.min()) and float(view.max()) <= 1
    assert [r.budget for r in results] == BUDGETS
    for r in results:
        assert r.cam.shape == (4, 4)
        assert float(r.cam.min()) >= 0.0
        assert float(r.cam.max()) == pytest.approx(1.0)
        assert r.target.startswith("logit of ") and r.token_id is not None
    cams = [r.cam for r in results]
    assert any(not torch.allclose(a, b, atol=1e-4) for a, b in zip(cams, cams[1:]))
    assert model.training is False and all(p.grad is None for p in model.parameters())


def test_gradcam_matches_an_independent_autograd_computation(tiny, photos):
    """Reference without our hook: hidden_states[-2] from the tower, retain_grad, the model's own
    forward at budget m, backward; the map must be the same."""
    model, processor = tiny
    image, m = photos["chelsea"], 4
    batch = processor(images=image, text=processor.format_prompt("What animal is this?"), num_visual_tokens=m)
    ours = gradcam_maps(model, batch["pixel_values"], {m: batch["input_ids"]})[0]

    hidden = model.vision_tower(batch["pixel_values"], output_hidden_states=True).hidden_states[-2]  # [1, 1+N, C]
    hidden.retain_grad()
    visual = model.mqt(hidden[:, 1:])  # [1, M, D]
    logits = model(input_ids=batch["input_ids"], visual_embeds=visual, num_visual_tokens=m).logits[0, -1]
    logits[int(logits.argmax())].backward()
    patches, grads = hidden[0, 1:].detach(), hidden.grad[0, 1:]
    cam = torch.relu(patches @ grads.mean(0))
    reference = (cam / cam.max()).reshape(4, 4)
    assert ours.token_id == int(logits.argmax())
    torch.testing.assert_close(ours.cam, reference, rtol=1e-4, atol=1e-5)


def test_visual_token_target_is_the_same_at_every_budget_that_has_it(tiny, photos):
    """The prefix property: visual token K does not depend on m, so neither does its map."""
    model, processor = tiny
    _, results = explain(model, processor, photos["coffee"], "What is this?", [4, 8, 16], target_token=3)
    assert all(r.target == "norm of visual token 3" and r.token_id is None for r in results)
    for r in results[1:]:
        torch.testing.assert_close(r.cam, results[0].cam)
    _, answer = explain(model, processor, photos["coffee"], "What is this?", [4], target_token=None)
    assert not torch.allclose(answer[0].cam, results[0].cam)


def test_frozen_tower_still_yields_gradients(tiny, random_image):
    model, processor = tiny
    for p in model.parameters():
        p.requires_grad_(False)
    _, results = explain(model, processor, random_image, "What is this?", [2])
    assert float(results[0].cam.max()) == pytest.approx(1.0)


def test_hook_captures_the_layer_the_model_reads(tiny, random_image):
    model, processor = tiny
    pixel_values = processor.image_processor(random_image)["pixel_values"]
    with torch.no_grad(), CaptureFeatures(model) as capture:
        features = model.get_image_features(pixel_values)
    torch.testing.assert_close(capture.activation[:, 1:], features)
    hooks = [*capture.module._forward_hooks.values(), *capture.module._forward_pre_hooks.values()]
    assert all(getattr(hook, "__self__", None) is not capture for hook in hooks)  # removed on exit


def test_grad_cam_formula_and_all_negative_case():
    activation = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    gradient = torch.tensor([[1.0, -1.0], [1.0, -1.0], [1.0, 2.0]])  # channel weights [1, 0]
    torch.testing.assert_close(grad_cam(activation, gradient), torch.tensor([0.5, 0.0, 1.0]))
    assert torch.equal(grad_cam(activation, -gradient.abs() - 1), torch.zeros(3))


@pytest.mark.parametrize("bad", [[0], [17], [4, 32]])
def test_bad_budgets_raise(tiny, random_image, bad):
    model, processor = tiny
    with pytest.raises(MQTError, match="num_visual_tokens"):
        explain(model, processor, random_image, "What is this?", bad)


@pytest.mark.parametrize("token,budgets", [(4, [4, 8]), (16, [16]), (-1, [8])])
def test_bad_visual_token_target_raises(tiny, random_image, token, budgets):
    model, processor = tiny
    with pytest.raises(MQTError, match="[Vv]isual token"):
        explain(model, processor, random_image, "What is this?", budgets, target_token=token)


def test_attention_maps_of_position_keyed_model_do_not_depend_on_the_image(tiny, photos):
    model, processor = tiny
    assert model.mqt.config.key_source == "position"
    queries = [0, 5, 15]
    first, second = (
        attention_maps(model, processor.image_processor(photos[name])["pixel_values"], queries)
        for name in ("astronaut", "chelsea")
    )
    assert first.shape == (3, 4, 4) and float(first.min()) >= 0
    torch.testing.assert_close(first.sum(dim=(1, 2)), torch.ones(3))
    torch.testing.assert_close(first, second)


def test_attention_maps_of_feature_keyed_model_depend_on_the_image(llama_tokenizer_dir, photos):
    from mqt_vlm.modeling.builder import build_model, load_preset

    preset = load_preset("tiny")
    torch.manual_seed(0)
    model, processor = build_model(
        preset["vision_config"], preset["text_config"], str(llama_tokenizer_dir),
        {**preset["mqt_config"], "key_source": "feature+position"}, image_processor=preset["image_processor"],
    )
    first, second = (
        attention_maps(model.eval(), processor.image_processor(photos[name])["pixel_values"], [0, 7])
        for name in ("astronaut", "chelsea")
    )
    assert not torch.allclose(first, second)


def test_attention_queries_are_validated(tiny, random_image):
    model, processor = tiny
    pixel_values = processor.image_processor(random_image)["pixel_values"]
    with pytest.raises(MQTError, match="Queries"):
        attention_maps(model, pixel_values, [16])
    assert default_queries(16) == [0, 2, 4, 6, 9, 11, 13, 15]
    assert default_queries(4) == [0, 1, 2, 3]


def test_figure_is_a_valid_png(tiny, photos, tmp_path):
    model, processor = tiny
    view, results = explain(model, processor, photos["camera"], "What is this?", [2, 16])
    path = plot_gradcam(view, results, "test", tmp_path / "sub" / "fig.png")
    assert_png(path)


def test_cli_writes_gradcam_and_attention_figures(tiny, photos, tmp_path, capsys):
    model, processor = tiny
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    photos["astronaut"].save(tmp_path / "photo.png")
    common = dict(model=str(tmp_path / "model"), image=tmp_path / "photo.png", prompt="What is this?")
    gradcam(**common, budgets="2,8,16", out=tmp_path / "cam.png", target_token=None, attention=False, queries="")
    gradcam(**common, budgets="2", out=tmp_path / "att.png", target_token=None, attention=True, queries="0,3")
    assert_png(tmp_path / "cam.png")
    assert_png(tmp_path / "att.png")
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(MQTError):
        gradcam(**common, budgets="8,64", out=tmp_path / "bad.png", target_token=None, attention=False, queries="")
    assert not (tmp_path / "bad.png").exists()
