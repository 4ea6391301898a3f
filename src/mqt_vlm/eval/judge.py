"""LLM-judged scores for LLaVA-Bench (in-the-wild) and MM-Vet, with the published judge prompts.

LLaVA-Bench follows LLaVA llava/eval/eval_gpt_review_bench.py with rule.json's `llava_bench_*`
prompts: the judge sees the image's caption context, the question, the GPT-4 reference answer as
"Assistant 1" and ours as "Assistant 2", and starts its reply with two 1-10 scores
(`parse_score`: first line, commas to spaces, exactly two numbers, else [-1, -1], which are kept in
the means as the original does). summarize_gpt_review.py reports mean(ours) / mean(reference) x 100,
overall and per category. The original judge was gpt-4-0314 at temperature 0.2.

MM-Vet follows yuweihao/MM-Vet mm-vet_evaluator.py: the few-shot grader prompt below, the question,
the ground truth (with " <AND> " / " <OR> " spaced out) and our answer joined by " | ", temperature 0,
3 tokens; a reply that is not a number in [0, 1] is asked again with "Predict the correctness of the
answer (digit): " and the temperature raised by 0.5, up to 5 retries, then scored 0. Total = mean x 100,
and per capability. The original grader was gpt-4-0613.

Judges are scored once per (benchmark, budget) and cached in `OUT/judge/...jsonl`, so reruns do not
pay again. Any OpenAI-compatible endpoint works (`--judge-url`, `--judge-model`, key in
`OPENAI_API_KEY`); the HTTP call uses the standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import EvalItem

LLAVABENCH_JUDGE = "gpt-4-0314"
MMVET_JUDGE = "gpt-4-0613"
LLAVABENCH_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
# rule.json: "llava_bench_conv", "llava_bench_detail" and "llava_bench_complex" share this text.
LLAVABENCH_RULE = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above. The user asks the question on observing an image. For your reference, the visual "
    "content in the image is represented with a few sentences describing the image. \nPlease rate the "
    "helpfulness, relevance, accuracy, level of details of their responses. Each assistant receives an overall "
    "score on a scale of 1 to 10, where a higher score indicates better overall performance.\nPlease first output "
    "a single line containing only two values indicating the scores for Assistant 1 and 2, respectively. The two "
    "scores are separated by a space.\nIn the subsequent line, please provide a comprehensive explanation of your "
    "evaluation, avoiding any potential bias and ensuring that the order in which the responses were presented "
    "does not affect your judgment."
)
LLAVABENCH_CATEGORIES = ("conv", "detail", "complex")
MMVET_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""
MMVET_RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "
MMVET_MAX_TRIES = 5


@dataclass(frozen=True)
class JudgeConfig:
    """An OpenAI-compatible chat endpoint. `model` None = each benchmark's original judge model."""

    base_url: str
    model: str | None = None
    api_key: str | None = None
    timeout: float = 120.0


Chat = Callable[[list[dict[str, str]], float, int], str]


def http_chat(config: JudgeConfig, model: str) -> Chat:
    """A `Chat` that POSTs to `{base_url}/chat/completions` and returns the first choice's text."""
    url = config.base_url.rstrip("/") + "/chat/completions"

    def chat(messages: list[dict[str, str]], temperature: float, max_tokens: int) -> str:
        body = json.dumps({"model": model, "messages": messages, "temperature": temperature,
                           "max_tokens": max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=config.timeout) as response:
                payload = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise MQTError(f"Judge request to {url} failed: {exc}.") from exc
        try:
            return str(payload["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as exc:
            raise MQTError(f"Judge at {url} answered without choices[0].message.content: {payload!r:.200}.") from exc

    return chat


# ---- LLaVA-Bench ------------------------------------------------------------------------------------


def llavabench_content(item: EvalItem, answer: str) -> str:
    """The user message of eval_gpt_review_bench.py (role "Assistant")."""
    return (f"[Context]\n{item.meta['caption']}\n\n[Question]\n{item.text}\n\n"
            f"[Assistant 1]\n{item.meta['reference']}\n\n[End of Assistant 1]\n\n"
            f"[Assistant 2]\n{answer}\n\n[End of Assistant 2]\n\n[System]\n{LLAVABENCH_RULE}\n\n")


def parse_llavabench_scores(review: str) -> list[float]:
    """`parse_score`: the two numbers on the first line, or [-1, -1]."""
    try:
        parts = review.split("\n")[0].replace(",", " ").split(" ")
        return [float(parts[0]), float(parts[1])] if len(parts) == 2 else [-1.0, -1.0]
    except ValueError:
        return [-1.0, -1.0]


def summarize_llavabench(reviews: Sequence[Mapping[str, Any]]) -> dict:
    """summarize_gpt_review.py: mean(ours) / mean(reference) x 100, overall and per category."""
    groups: dict[str, list[list[float]]] = {"all": []}
    for review in reviews:
        groups["all"].append(review["tuple"])
        groups.setdefault(str(review["category"]), []).append(review["tuple"])
    out: dict[str, Any] = {}
    for name, pairs in groups.items():
        reference = sum(p[0] for p in pairs) / len(pairs)
        ours = sum(p[1] for p in pairs) / len(pairs)
        label = "relative_score" if name == "all" else f"relative_score_{name.removeprefix('llava_bench_')}"
        out[label] = round(ours / reference * 100, 1) if reference else float("nan")
    return out


# ---- MM-Vet -----------------------------------------------------------------------------------------


def mmvet_question(item: EvalItem, answer: str) -> str:
    truth = item.meta["answer"].replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return MMVET_PROMPT + "\n" + " | ".join([item.meta["question"], truth, answer, ""])


def parse_mmvet_score(content: str) -> float | None:
    try:
        score = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return score if 0.0 <= score <= 1.0 else None


def grade_mmvet(chat: Chat, item: EvalItem, answer: str) -> tuple[float, str]:
    """One MM-Vet grade with the evaluator's retry rule (the 6th reply is not even parsed: score 0)."""
    question = mmvet_question(item, answer)
    content = chat([{"role": "user", "content": question}], 0.0, 3)
    temperature, tries = 0.0, 1
    while True:
        score = parse_mmvet_score(content)
        if score is not None:
            return score, content
        content = chat([{"role": "user", "content": question + MMVET_RETRY_SUFFIX}], temperature, 3)
        tries += 1
        temperature += 0.5
        if tries > MMVET_MAX_TRIES:
            return 0.0, content


def summarize_mmvet(grades: Sequence[Mapping[str, Any]]) -> dict:
    """Total and per-capability scores in percent (mm-vet_evaluator.py's `export_result`, one run)."""
    out: dict[str, Any] = {"total": round(sum(g["score"] for g in grades) / len(grades) * 100, 1)}
    capabilities = sorted({c for g in grades for c in g["capability"]})
    for capability in capabilities:
        scores = [g["score"] for g in grades if capability in g["capability"]]
        out[f"total_{capability}"] = round(sum(scores) / len(scores) * 100, 1)
    return out


# ---- running ----------------------------------------------------------------------------------------


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return {r["key"]: r for r in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)}


def judge_benchmark(
    benchmark: str, items: Sequence[EvalItem], predictions: Mapping[str, str], cache: Path,
    config: JudgeConfig, chat: Chat | None = None,
) -> dict:
    """Judge every answered item (cached in `cache`) and return the benchmark's summary."""
    if benchmark not in ("llavabench", "mmvet"):
        raise MQTError(f"{benchmark} is not judged by an LLM.")
    model = config.model or (LLAVABENCH_JUDGE if benchmark == "llavabench" else MMVET_JUDGE)
    chat = chat or http_chat(config, model)
    done = _read_cache(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a", encoding="utf-8") as handle:
        for item in items:
            if item.key not in predictions or item.key in done:
                continue
            answer = predictions[item.key]
            if benchmark == "llavabench":
                messages = [{"role": "system", "content": LLAVABENCH_SYSTEM},
                            {"role": "user", "content": llavabench_content(item, answer)}]
                review = chat(messages, 0.2, 1024)
                record = {"key": item.key, "category": "llava_bench_" + item.meta["category"], "content": review,
                          "tuple": parse_llavabench_scores(review), "judge": model}
            else:
                if "question" not in item.meta:
                    raise MQTError("MM-Vet judging needs mm-vet.json (from mm-vet.zip) next to llava-mm-vet.jsonl.")
                score, content = grade_mmvet(chat, item, answer)
                record = {"key": item.key, "capability": item.meta["capability"], "content": content,
                          "score": score, "judge": model}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            done[item.key] = record
    judged = [done[item.key] for item in items if item.key in done]
    if not judged:
        raise MQTError(f"Nothing to judge for {benchmark}: no item has a prediction.")
    if benchmark == "llavabench":
        return summarize_llavabench(judged)
    return summarize_mmvet(judged)


def how_to_judge(benchmark: str, files: Sequence[Path]) -> str:
    """What to do when no judge endpoint is configured."""
    shown = ", ".join(str(f) for f in files)
    if benchmark == "llavabench":
        official = ("or run LLaVA's llava/eval/eval_gpt_review_bench.py --answer-list answers_gpt4.jsonl <answers> "
                    "--rule llava/eval/table/rule.json, then summarize_gpt_review.py")
    else:
        official = "or grade the results file with MM-Vet's mm-vet_evaluator.py (--result_path, --model)"
    return (f"{benchmark}: answers written to {shown}. To score them, rerun the same `mqt eval` command with "
            "--judge-url URL (any OpenAI-compatible endpoint; key in OPENAI_API_KEY; predictions are reused), "
            f"{official}.")
