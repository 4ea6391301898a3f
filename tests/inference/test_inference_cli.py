"""`mqt generate` and `mqt chat` on a saved tiny model, through typer's argument parsing."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import GenerationRequest, SamplingParams, generate_batch
from mqt_vlm.inference.cli import chat, generate
from mqt_vlm.inference.prompting import build_prompt


@pytest.fixture(scope="module")
def saved(llama_tokenizer_dir, tmp_path_factory, photos):
    """(model folder, image path, model, processor) of a tiny random model saved to disk."""
    from mqt_vlm.loading import load_model
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir))
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    image = folder / "coffee.png"
    photos["coffee"].save(image)
    loaded, loaded_processor = load_model(folder)
    yield folder, image, loaded, loaded_processor


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("generate")(generate)
    app.command("chat")(chat)
    return app


def answer(model, processor, image, question: str, m: int, n: int, history=()) -> str:
    from mqt_vlm.processing.images import load_image

    first = not history
    text = f"<image>\n{question}" if first else question
    prompt = build_prompt([*history, ("user", text)], processor)
    request = GenerationRequest(prompt, [load_image(image)], m, SamplingParams(max_new_tokens=n))
    return generate_batch(model, processor, [request])[0].text


def test_registered_in_the_mqt_command_line():
    from mqt_vlm.cli.main import COMMANDS, _resolve

    targets = {name: target for _, name, target in COMMANDS}
    assert _resolve(targets["generate"]) is generate and _resolve(targets["chat"]) is chat


def test_generate_prints_the_answer_at_one_budget(saved, app):
    folder, image, model, processor = saved
    run = CliRunner().invoke(app, ["generate", "--model", str(folder), "--image", str(image), "--prompt", "What is this?",
                                   "--budgets", "4", "--max-new-tokens", "6"])
    assert run.exit_code == 0, run.output
    expected = answer(model, processor, image, "What is this?", 4, 6)
    assert run.stdout.splitlines()[0] == expected
    streamed = CliRunner().invoke(app, ["generate", "--model", str(folder), "--image", str(image), "--prompt",
                                        "What is this?", "--budgets", "4", "--max-new-tokens", "6", "--stream"])
    assert streamed.exit_code == 0 and streamed.stdout.splitlines()[0] == expected


def test_generate_table_over_budgets(saved, app):
    folder, image, model, processor = saved
    run = CliRunner().invoke(app, ["generate", "--model", str(folder), "--image", str(image), "--prompt", "Describe.",
                                   "--budgets", "1,4,M,auto", "--max-new-tokens", "5", "--auto-budgets", "2,16",
                                   "--auto-threshold", "1.0"])
    assert run.exit_code == 0, run.output
    lines = run.stdout.splitlines()
    assert lines[0].startswith("encoded 1 image(s) once")
    assert lines[1] == "| budget | answer | time to first token (ms) | total (ms) |"
    rows = [line.split(" | ") for line in lines[3:]]
    assert [r[0].lstrip("| ") for r in rows] == ["1", "4", "16", "auto -> 16"]
    for (label, text, ttft, total), m in zip(rows, (1, 4, 16, 16)):
        assert text == answer(model, processor, image, "Describe.", m, 5).strip().replace("|", "\\|")
        assert 0 < float(ttft) <= float(total.rstrip(" |"))


def test_generate_refuses_bad_budgets(saved, app):
    folder, image, _, _ = saved
    for tokens, message in (("x", "1..M, M (or max) for all queries, or auto"), ("4,x", "got 'x'"), ("17", "1..16"),
                            ("0,4", "got 0")):
        run = CliRunner().invoke(app, ["generate", "--model", str(folder), "--image", str(image), "--prompt", "q",
                                       "--budgets", tokens])
        assert isinstance(run.exception, MQTError), (tokens, run.output)
        assert message in str(run.exception)


def test_chat_reads_stdin_and_changes_budget(saved, app):
    folder, image, model, processor = saved
    script = "What is this?\n/tokens 4\nAnd now?\n/tokens 99\n/tokens auto\n/stats\n/bogus\n/quit\nnever asked\n"
    run = CliRunner().invoke(app, ["chat", "--model", str(folder), "--image", str(image), "--visual-tokens", "16",
                                   "--max-new-tokens", "5", "--no-stream"], input=script)
    assert run.exit_code == 0, run.output
    out = run.stdout
    first = answer(model, processor, image, "What is this?", 16, 5)
    second = answer(model, processor, image, "And now?", 4, 5,
                    history=[("user", "<image>\nWhat is this?"), ("assistant", first.strip())])
    assert first in out and second in out
    assert "[m=16, 5 tokens" in out and "[m=4, 5 tokens" in out
    assert "budget set to 4" in out and "budget set to auto" in out
    assert "error: num_visual_tokens must be in 1..16" in out
    assert "1 hits, 1 misses" in out  # the image was encoded once for both turns
    assert "unknown command '/bogus'" in out
    assert out.count("you> ") == 8  # stopped at /quit
