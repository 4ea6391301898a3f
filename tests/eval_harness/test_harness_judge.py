"""LLaVA-Bench and MM-Vet judging against a live local OpenAI-compatible server (a real HTTP client)."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks import EvalItem, parse_benchmarks
from mqt_vlm.eval.generator import Generated
from mqt_vlm.eval.judge import (
    LLAVABENCH_RULE,
    MMVET_RETRY_SUFFIX,
    JudgeConfig,
    grade_mmvet,
    parse_llavabench_scores,
    parse_mmvet_score,
    summarize_llavabench,
)
from mqt_vlm.eval.sweep import SweepConfig, run_sweep


class JudgeServer(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions: LLaVA-Bench "8 6" (conv) / "10 5" (detail); MM-Vet "maybe" once, then 0.5."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body["path"], body["auth"] = self.path, self.headers.get("Authorization")
        JudgeServer.requests.append(body)
        prompt = body["messages"][-1]["content"]
        if "[Assistant 1]" in prompt:
            reply = "8 6\nAssistant 1 is more precise." if "What is in the cup?" in prompt else "10 5\nShorter."
        else:
            reply = "0.5" if MMVET_RETRY_SUFFIX in prompt else "maybe"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}], "model": body["model"]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def judge_url() -> Iterator[str]:
    JudgeServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), JudgeServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


class Echo:
    num_queries = 16

    def __call__(self, items: Sequence[EvalItem], budget: int, max_new_tokens: int) -> list[Generated]:
        return [Generated(f"answer {item.key} at {budget}", 30) for item in items]

    def tflops(self, budget: int, text_tokens: int) -> None:
        return None


def test_sweep_judges_with_the_published_prompts(eval_data, judge_url: str, tmp_path: Path) -> None:
    root, _ = eval_data
    config = SweepConfig(benchmarks=parse_benchmarks("llavabench,mmvet"), budgets=[4], data_root=root, out=tmp_path,
                         model="echo", progress=False, plots=False,
                         judge=JudgeConfig(base_url=judge_url, api_key="sk-test"))
    run_sweep(config, Echo(), echo=lambda _: None)
    with (tmp_path / "results.csv").open() as handle:
        rows = {(r["benchmark"], r["metric"]): float(r["score"]) for r in csv.DictReader(handle)}
    # summarize_gpt_review.py: mean(ours) / mean(reference) * 100 = (6 + 5) / (8 + 10) * 100
    assert rows[("llavabench", "relative_score")] == pytest.approx(61.1)
    assert rows[("llavabench", "relative_score_conv")] == 75.0 and rows[("llavabench", "relative_score_detail")] == 50.0
    assert rows[("mmvet", "total")] == 50.0 and rows[("mmvet", "total_ocr")] == 50.0

    bench = [r for r in JudgeServer.requests if r["model"] == "gpt-4-0314"]
    assert len(bench) == 2 and bench[0]["temperature"] == 0.2 and bench[0]["path"] == "/v1/chat/completions"
    assert bench[0]["auth"] == "Bearer sk-test"
    content = bench[0]["messages"][1]["content"]
    assert content.startswith("[Context]\nA cup of coffee.\nOn a saucer.\n\n[Question]\nWhat is in the cup?\n\n")
    assert "[Assistant 1]\nCoffee.\n\n[End of Assistant 1]" in content and "answer 0 at 4" in content
    assert content.endswith(f"[System]\n{LLAVABENCH_RULE}\n\n")
    vet = [r for r in JudgeServer.requests if r["model"] == "gpt-4-0613"]
    assert [r["temperature"] for r in vet] == [0.0, 0.0] and vet[0]["max_tokens"] == 3
    assert vet[0]["messages"][0]["content"].endswith("\nWhat is x in the equation? | -1 <AND> -5 | answer 0 at 4 | ")

    # judged once: a rerun reads OUT/judge and sends nothing
    sent = len(JudgeServer.requests)
    run_sweep(config, Echo(), echo=lambda _: None)
    assert len(JudgeServer.requests) == sent
    assert (tmp_path / "submissions/llavabench/m004/llava-bench-answers.jsonl").is_file()
    assert json.loads((tmp_path / "submissions/mmvet/m004/mm-vet-results.json").read_text()) == {"v1_0": "answer 0 at 4"}


def test_without_a_judge_the_sweep_says_how_to_score(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    notes: list[str] = []
    config = SweepConfig(benchmarks=parse_benchmarks("llavabench"), budgets=[4], data_root=root, out=tmp_path,
                         model="echo", progress=False, plots=False)
    run_sweep(config, Echo(), echo=notes.append)
    assert any("--judge-url" in note and "llava-bench-answers.jsonl" in note for note in notes)
    assert "--judge-url" in (tmp_path / "results.md").read_text()


def test_judge_parsing_rules() -> None:
    assert parse_llavabench_scores("8 6\nbecause") == [8.0, 6.0]
    assert parse_llavabench_scores("8, 6") == [-1.0, -1.0]  # "8  6" splits into three parts: the original fails too
    assert parse_llavabench_scores("Scores: 8 6") == [-1.0, -1.0]
    assert summarize_llavabench([{"tuple": [-1, -1], "category": "llava_bench_conv"},
                                 {"tuple": [8, 6], "category": "llava_bench_conv"}])["relative_score"] == pytest.approx(5 / 7 * 100, abs=0.05)
    assert parse_mmvet_score("0.7") == 0.7 and parse_mmvet_score("1.0 because") == 1.0
    assert parse_mmvet_score("1.5") is None and parse_mmvet_score("correct") is None


def test_mmvet_gives_up_after_five_retries_with_rising_temperature() -> None:
    temperatures: list[float] = []

    def chat(messages, temperature, max_tokens):
        temperatures.append(temperature)
        return "unsure"

    item = EvalItem("0", 0, "q", Path("x.png"), 8, meta={"question": "q", "answer": "a", "capability": ["ocr"]})
    assert grade_mmvet(chat, item, "pred") == (0.0, "unsure")
    assert temperatures == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]


def test_unreachable_judge_is_a_clear_error(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    config = SweepConfig(benchmarks=parse_benchmarks("mmvet"), budgets=[4], data_root=root, out=tmp_path, model="echo",
                         progress=False, plots=False, judge=JudgeConfig(base_url="http://127.0.0.1:9/v1", timeout=2))
    with pytest.raises(MQTError, match="Judge request to http://127.0.0.1:9/v1/chat/completions failed"):
        run_sweep(config, Echo(), echo=lambda _: None)
