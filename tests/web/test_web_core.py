"""What the web page computes, without gradio (so these run in the default suite, and in
`make test-web`'s venv, which has no dev extras): answers through the one generation path, Grad-CAM
panels, scenes, verdicts and the value checks, on the built-in model the page serves by default.
The page itself, driven by a real client and a real browser, is in test_web_app.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import GenerationRequest, SamplingParams, generate_batch
from mqt_vlm.web.engine import DemoEngine, comparison_budgets
from mqt_vlm.web.handlers import PageHandlers, as_int, verdict
from mqt_vlm.web.overlay import cam_overlay, jet


@pytest.fixture(scope="module")
def engine() -> DemoEngine:
    return DemoEngine.load("builtin:shapes")


@pytest.fixture()
def photo() -> Image.Image:
    """A non-square RGB picture that is not a synthetic scene."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, size=(40, 70, 3), dtype=np.uint8))


def test_comparison_budgets_are_powers_of_two_below_m_then_m():
    assert comparison_budgets(32) == [1, 2, 4, 8, 16, 32]
    assert comparison_budgets(16) == [1, 2, 4, 8, 16]
    assert comparison_budgets(6) == [1, 2, 4, 6]
    assert comparison_budgets(1) == [1]


def test_answers_equal_generate_batch_at_each_budget_from_one_encoding(engine):
    model, processor = engine.model, engine.processor
    image, question, n = engine.scene(11).image, "Describe every cell.", 40
    answers = engine.answer(image, question, [1, 4, 16], n)
    expected = [generate_batch(model, processor, [GenerationRequest(processor.format_prompt(question), [image], m,
                                                                    SamplingParams(max_new_tokens=n))])[0].text
                for m in (1, 4, 16)]
    assert [row.text for row in answers.rows] == expected
    assert [row.budget for row in answers.rows] == [1, 4, 16]
    assert answers.encode_ms > 0
    tflops = [row.tflops for row in answers.rows]
    assert tflops == sorted(tflops) and tflops[0] < tflops[-1]  # more visual tokens, more prefill
    again = engine.answer(image, question, [16], n)
    assert again.encode_ms == 0 and again.rows[0].text == expected[-1]  # served from the encode-once cache


def test_gradcam_panels_one_per_budget(engine, photo):
    panels = engine.gradcam(photo, "Is there a red shape?", [2, 16], size=64)
    assert [p.budget for p in panels] == [2, 16]
    assert all(p.image.size == (64, 64) and p.image.mode == "RGB" for p in panels)
    assert all(p.label.startswith(f"m = {p.budget}: logit of ") for p in panels)


def test_overlay_colours_the_map_over_the_view():
    view = torch.zeros(8, 8, 3)  # a black image
    cam = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    pixels = np.asarray(cam_overlay(view, cam, size=16, alpha=0.5))
    assert pixels.shape == (16, 16, 3)
    assert pixels[0, 15].tolist() == [64, 0, 0]  # the hot corner: jet's dark red at half strength
    assert pixels[15, 0].tolist() == [0, 0, 64]  # a cold corner: jet's dark blue
    np.testing.assert_allclose(jet(np.array([0.0, 0.5, 1.0])), [[0, 0, 0.5], [0.5, 1, 0.5], [0.5, 0, 0]])


def test_scene_is_the_text_demos_first_scene(engine):
    from mqt_vlm.demo import scene_questions

    sample = engine.scene(7)
    items = scene_questions(7, 1, per_scene=4)
    assert sample.image.tobytes() == items[0].image.tobytes()
    assert sample.questions == [(item.question, item.answer) for item in items]
    assert sample.questions[-1][0] == "Describe every cell."


def test_handlers_open_the_file_and_grade_against_the_scene(engine, tmp_path):
    handlers = PageHandlers(engine)
    view = handlers.scene(3)
    path = tmp_path / "scene.png"
    view.image.save(path)
    assert view.question == view.questions[-1] == "Describe every cell."  # the box opens on the description
    short = view.questions[0]
    text, stats = handlers.answer(str(path), short, 2.0, 4, view.truths)
    assert text == engine.answer(view.image, short, [2], 4).rows[0].text
    assert stats.startswith(f"m = 2 of M = {engine.num_queries} visual tokens") and "TFLOPs" in stats
    table, note = handlers.answer_all(str(path), short, 4, view.truths)
    assert [row[0] for row in table] == comparison_budgets(engine.num_queries)
    assert all(row[2] in ("yes", "no") for row in table)  # the scene's own question: graded
    assert "encode-once cache" in note
    table, _ = handlers.answer_all(str(path), view.question, 96, view.truths)
    assert all(re.fullmatch(r"\d+/16", row[2]) for row in table)  # a description: graded per cell


def test_verdicts():
    truths = {"Is there a red shape?": "yes", "Describe every cell.": "row 1, column 1: red circle. row 1, column 2: none."}
    assert verdict("Is there a red shape?", "Yes", truths) == "yes"
    assert verdict("Is there a red shape?", "no", truths) == "no"
    assert verdict("Describe every cell.", "row 1, column 1: red circle. row 1, column 2: blue square.", truths) == "1/2"
    assert verdict("Something else?", "yes", truths) == ""
    assert verdict("Is there a red shape?", "yes", None) == ""


def test_bad_inputs_are_refused_with_a_message(engine, photo):
    handlers = PageHandlers(engine)
    assert as_int(8.0, "The budget") == 8
    with pytest.raises(MQTError, match="whole number"):
        as_int(2.5, "The budget")
    with pytest.raises(MQTError, match="Upload an image"):
        handlers.answer(None, "What?", 2, 4)
    with pytest.raises(MQTError, match="question"):
        engine.answer(photo, "  ", [2], 4)
    with pytest.raises(MQTError):
        engine.answer(photo, "What?", [engine.num_queries + 1], 4)
    with pytest.raises(MQTError, match="max_new_tokens"):
        engine.answer(photo, "What?", [2], 0)
    with pytest.raises(MQTError, match="seed"):
        engine.scene(-1)


def test_missing_gradio_is_a_clear_error(monkeypatch):
    import builtins

    from mqt_vlm.web.app import require_gradio

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    with pytest.raises(MQTError, match=r"pip install 'mqt-vlm\[web\]'"):
        require_gradio()


def test_image_of_one_pixel_row_is_refused_by_the_size_rule(engine, tmp_path):
    path = tmp_path / "thin.png"
    Image.new("RGB", (400, 2), "white").save(path)
    with pytest.raises(MQTError, match="ratio"):
        PageHandlers(engine).answer(str(path), "What?", 2, 4)
