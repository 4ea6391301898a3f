"""The lmms-eval backend's request handling, driven with lmms-eval's request shape (Instance.args),
and the synthetic task hooks, without lmms-eval (it lives in .venv-lmms; the real run is tests/lmms,
`make test-lmms`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.generator import ModelGenerator
from mqt_vlm.eval.lmms_plugin import MQTLmmsAdapter, run_budget
from mqt_vlm.eval.lmms_tasks import TASKS_DIR
from mqt_vlm.eval.lmms_tasks import synthetic as hooks


@dataclass
class Request:
    args: tuple


def _adapter(tiny: Any, photos: dict, **kwargs: Any) -> MQTLmmsAdapter:
    model, processor = tiny
    adapter = MQTLmmsAdapter(model=model, processor=processor, **kwargs)
    adapter.task_dict = {"toy": {"test": {0: {"image": photos["chelsea"]}, 1: {"image": photos["coffee"]},
                                          2: {"image": photos["astronaut"]}}}}
    return adapter


def visual(doc: dict) -> list:
    return [doc["image"]]


def test_generate_until_equals_mqt_eval_generation(tiny, photos, monkeypatch) -> None:
    """Answers go through generate_batch and equal what `mqt eval`'s generator answers, at any batch size."""
    from mqt_vlm.eval.benchmarks.base import EvalItem
    from mqt_vlm.eval.generator import Generated

    model, processor = tiny
    questions = ["Is this a cat?", "What is in the cup?", "Who is this?"]
    requests = [Request((q, {"until": [], "max_new_tokens": 6}, visual, i, "toy", "test")) for i, q in enumerate(questions)]
    answers = {size: _adapter(tiny, photos, num_visual_tokens=4, batch_size=size).generate_answers(requests)
               for size in (1, 2)}
    assert [a.text for a in answers[1]] == [a.text for a in answers[2]]
    items = [EvalItem(key=str(i), question_id=str(i), text=q, image=Path("unused"), max_new_tokens=6, subset="x")
             for i, q in enumerate(questions)]
    generator = ModelGenerator(model, processor)
    images = [photos[n] for n in ("chelsea", "coffee", "astronaut")]
    monkeypatch.setattr("mqt_vlm.eval.generator.load_item_image", lambda item: images[int(item.key)])
    direct: list[Generated] = generator(items, 4, 6)
    assert [a.text for a in answers[1]] == [g.text for g in direct]
    # the budget is in the token count: text tokens + m visual tokens
    assert [a.input_tokens for a in answers[1]] == [g.text_tokens + 4 for g in direct]


def test_generate_until_cuts_at_until_and_keeps_placed_images(tiny, photos) -> None:
    adapter = _adapter(tiny, photos, num_visual_tokens=4, max_new_tokens=8)
    free = adapter.generate_until([Request(("Is this a cat?", {"until": []}, visual, 0, "toy", "test"))])[0]
    for stop in {free[1:3], free[-1:]} - {""}:
        cut = adapter.generate_until([Request(("Is this a cat?", {"until": [stop]}, visual, 0, "toy", "test"))])[0]
        assert cut == free.split(stop)[0].strip()
    placed = adapter.generate_until([Request(("<image>\nIs this a cat?", {"until": []}, visual, 0, "toy", "test"))])
    assert placed == [free]
    with pytest.raises(MQTError, match="placeholders"):
        adapter.generate_until([Request(("<image><image> two?", {}, visual, 0, "toy", "test"))])
    with pytest.raises(MQTError, match="num_beams"):
        adapter.generate_until([Request(("Is this a cat?", {"num_beams": 3}, visual, 0, "toy", "test"))])


def _direct_nll(model: Any, processor: Any, image: Any, question: str, continuation: str, m: int) -> tuple[float, bool]:
    prompt = processor.format_prompt(question)
    context = processor(images=[image], text=[prompt], num_visual_tokens=m)
    full = processor(images=[image], text=[prompt + continuation], num_visual_tokens=m)
    n = context["input_ids"].shape[1]
    with torch.inference_mode():
        logits = model(**full, num_visual_tokens=m).logits[0, n - 1:-1].float()
    targets = full["input_ids"][0, n:]
    nll = -float(torch.log_softmax(logits, -1).gather(1, targets[:, None]).sum())
    return nll, bool((logits.argmax(-1) == targets).all())


def test_loglikelihood_is_the_negative_log_likelihood_of_the_continuation(tiny, photos) -> None:
    """lmms-eval 0.7's multiple_choice takes argmin of the first value: it must be -log p."""
    model, processor = tiny
    requests = [Request(("Is this a cat?", " yes", visual, 0, "toy", "test")),
                Request(("Is this a cat?", lambda doc: " no", visual, 0, "toy", "test")),
                Request(("What is in the cup?", " coffee with milk", visual, 1, "toy", "test"))]
    reference = [_direct_nll(model, processor, photos["chelsea"], "Is this a cat?", " yes", 4),
                 _direct_nll(model, processor, photos["chelsea"], "Is this a cat?", " no", 4),
                 _direct_nll(model, processor, photos["coffee"], "What is in the cup?", " coffee with milk", 4)]
    for size in (1, 3):
        adapter = _adapter(tiny, photos, num_visual_tokens=4, batch_size=size)
        scores = adapter.loglikelihood(requests)
        assert [nll for nll, _ in scores] == pytest.approx([nll for nll, _ in reference], abs=1e-4)
        assert [greedy for _, greedy in scores] == [greedy for _, greedy in reference]
        assert all(math.isfinite(nll) and nll > 0 for nll, _ in scores)
    # the image of a question's choices is encoded once (the encode-once cache)
    assert adapter.cache.stats().misses == 2
    # lmms-eval's unconditional (mutual-information) requests carry no visual
    (text_only,) = adapter.loglikelihood([Request(("", "yes"))])
    assert math.isfinite(text_only[0])


def test_budgets_and_model_args(tiny, photos) -> None:
    model, processor = tiny
    assert MQTLmmsAdapter(model=model, processor=processor).num_visual_tokens == model.config.default_num_visual_tokens
    assert MQTLmmsAdapter(model=model, processor=processor, num_visual_tokens="8").num_visual_tokens == 8
    assert run_budget(16, 8, 16) == 16 and run_budget(None, 8, 16) == 8 and run_budget("M", 8, 16) == 16
    for sweep in ("2|8|16", "2,8"):
        with pytest.raises(MQTError, match="one budget per run.*--config"):
            run_budget(sweep, 8, 16)
    for bad in (0, 17, "x", 8.0, True, "auto"):
        with pytest.raises(MQTError):
            run_budget(bad, 8, 16)
    with pytest.raises(MQTError, match="conv_template"):
        MQTLmmsAdapter(model=model, processor=processor, conv_template="vicuna")
    with pytest.raises(MQTError, match="auto"):
        MQTLmmsAdapter(model=model, processor=processor, batch_size="auto")
    assert MQTLmmsAdapter(model=model, processor=processor, batch_size="4").batch_size == 4


def test_synthetic_hooks_score_like_mqt_eval() -> None:
    from mqt_vlm.eval.benchmarks.base import EvalItem
    from mqt_vlm.eval.benchmarks.synthetic import score_synthetic

    truth = "row 1, column 1: red circle. row 1, column 2: none. row 2, column 1: none. row 2, column 2: blue square."
    docs = [{"question_type": "count", "answer": "2"}, {"question_type": "global", "answer": "yes"},
            {"question_type": "global", "answer": "no"}, {"question_type": "describe", "answer": truth}]
    said = ["2.", " Yes", "yes", "row 1, column 1: red circle. row 2, column 2: green square."]
    items = [EvalItem(key=str(i), question_id=str(i), text="q", image=Path("x"), max_new_tokens=4,
                      subset=d["question_type"], meta={"answer": d["answer"]}) for i, d in enumerate(docs)]
    ours = score_synthetic(items, {str(i): s for i, s in enumerate(said)})
    theirs = [hooks.process_results(d, [s]) for d, s in zip(docs[:3], said[:3])]
    assert sum(r["accuracy"] for r in theirs) / 3 == ours["accuracy"]
    assert hooks.process_describe(docs[3], [said[3]])["describe_cell"] == ours["describe_cell"] == 0.25
    doc = {"choices": ["red", "none"], "answer": "none", "question": "What colour?", "image": "img"}
    assert hooks.doc_to_target_index(doc) == 1 and hooks.doc_to_choice(doc) == ["red", "none"]
    assert hooks.doc_to_text(doc) == "What colour?" and hooks.doc_to_visual(doc) == ["img"]


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


def _task_configs() -> dict[str, dict]:
    """Every YAML with its includes merged (as lmms-eval's load_yaml_config does)."""
    def load(path: Path) -> dict:
        config = yaml.load(path.read_text(), Loader=_Loader)
        if "include" in config:
            return {**load(path.parent / config.pop("include")), **config}
        return config

    return {path.stem: load(path) for path in sorted(TASKS_DIR.glob("*.yaml"))}


def test_task_yamls_name_real_functions_and_tasks() -> None:
    import importlib

    configs = _task_configs()
    tasks = {c["task"] for c in configs.values() if "task" in c and isinstance(c["task"], str)}
    assert tasks == {f"mqt_synthetic_{k}" for k in ("global", "count", "cell", "relation", "describe")} | {
        f"mqt_synthetic_mc_{k}" for k in ("global", "count", "cell", "relation")}
    for name, config in configs.items():
        if "group" in config:
            assert set(config["task"]) <= tasks, name
            continue
        assert config["dataset_path"] == "parquet" and config["dataset_kwargs"]["data_files"]["test"] == "synthetic/test.parquet"
        for value in config.values():
            if isinstance(value, tuple) and value[0] == "function":
                module, _, function = value[1].rpartition(".")
                assert callable(getattr(importlib.import_module(module), function)), value
        if config["output_type"] == "generate_until":
            assert config["generation_kwargs"]["until"] == []  # no lmms-eval default "\n\n" stop
