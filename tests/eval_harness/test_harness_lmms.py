"""The lmms-eval backend's request handling, driven with lmms-eval's request shape (Instance.args).

lmms-eval itself does not install here without replacing torch (it pulls a CUDA build), so the
adapter is tested directly; the registration itself is tested only where lmms-eval is installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest

from mqt_vlm.eval.lmms_plugin import MQTLmmsAdapter


@dataclass
class Request:
    args: tuple


def test_generate_until_and_loglikelihood(tiny, photos) -> None:
    model, processor = tiny
    adapter = MQTLmmsAdapter(num_visual_tokens=4, max_new_tokens=5, model=model, processor=processor)
    adapter.task_dict = {"toy": {"test": {0: {"image": photos["chelsea"]}, 1: {"image": photos["coffee"]}}}}
    visual = lambda doc: [doc["image"]]  # noqa: E731
    requests = [Request(("Is this a cat?", {"until": ["\n"], "max_new_tokens": 3}, visual, 0, "toy", "test")),
                Request(("<image>\nWhat is in the cup?", {}, visual, 1, "toy", "test"))]
    answers = adapter.generate_until(requests)
    assert len(answers) == 2 and all(isinstance(a, str) and "\n" not in a for a in answers)

    # the same question asked directly through the processor gives the same greedy answer
    batch = processor(images=[photos["chelsea"]], text=[processor.format_prompt("Is this a cat?")], num_visual_tokens=4)
    out = model.generate(**batch, num_visual_tokens=4, max_new_tokens=3, do_sample=False)
    direct = processor.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answers[0] == direct.split("\n")[0].strip()

    scores = adapter.loglikelihood([Request(("Is this a cat?", " yes", visual, 0, "toy", "test")),
                                    Request(("Is this a cat?", lambda doc: "no", visual, 0, "toy", "test"))])
    assert all(math.isfinite(lp) and lp < 0 and isinstance(greedy, bool) for lp, greedy in scores)
    assert scores[0][0] != scores[1][0]


def test_unknown_model_args_are_refused(tiny) -> None:
    model, processor = tiny
    with pytest.raises(ValueError, match="conv_template"):
        MQTLmmsAdapter(model=model, processor=processor, conv_template="vicuna")


def test_entry_point_manifest_when_lmms_eval_is_installed() -> None:
    pytest.importorskip("lmms_eval")
    from mqt_vlm.eval import lmms_plugin

    manifest: Any = lmms_plugin.manifest()
    assert manifest.model_id == "mqt_vlm" and manifest.simple_class_path.endswith("MQTLmms")
    assert issubclass(lmms_plugin.MQTLmms, lmms_plugin.MQTLmmsAdapter)
