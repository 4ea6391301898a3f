"""The parts `make test-lmms` adds to the default suite's lmms tests (tests/eval_harness/test_harness_lmms.py):
the entry point as lmms-eval resolves it, and the parquet `mqt data synth --parquet` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mqt_vlm.errors import MQTError


def test_synth_parquet_holds_the_split_mqt_eval_reads(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from mqt_vlm.data.synthetic import SynthConfig, write_dataset, write_parquet

    write_dataset(tmp_path, SynthConfig(seed=1, n_images=20), progress=False)
    table = pq.read_table(write_parquet(tmp_path)).to_pylist()
    lines = [json.loads(line) for name in ("test_questions.jsonl", "test_describe.jsonl")
             for line in (tmp_path / name).read_text().splitlines()]
    assert [r["question_id"] for r in table] == [r["question_id"] for r in lines]
    for row, line in zip(table, lines):
        assert row["image"]["bytes"] == (tmp_path / line["image"]).read_bytes()
        assert row["question"] == line["text"] and row["answer"] == line["answer"]
        assert (row["answer"] in row["choices"]) == (row["question_type"] != "describe")


def test_entry_point_resolves_in_lmms_eval() -> None:
    pytest.importorskip("lmms_eval")
    from lmms_eval.models import get_model

    from mqt_vlm.eval import lmms_plugin

    manifest: Any = lmms_plugin.manifest()
    assert manifest.model_id == "mqt_vlm" and manifest.simple_class_path.endswith("MQTLmms")
    assert get_model("mqt_vlm") is lmms_plugin.MQTLmms
    assert issubclass(lmms_plugin.MQTLmms, lmms_plugin.MQTLmmsAdapter)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    import sys

    from mqt_vlm.data.synthetic import write_parquet

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MQTError, match="pip install pyarrow"):
        write_parquet(tmp_path)
