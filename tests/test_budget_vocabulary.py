"""One budget vocabulary (`mqt_vlm.budgets`), one default (the model config's, carried by the
processor saved with it), one flag per kind (`--budgets` for lists, `--visual-tokens` for one
budget; the old names kept as hidden aliases), and `mqt flops --model`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mqt_vlm.budgets import AUTO, MAX, check_budget, parse_budget, parse_budgets, resolve_default
from mqt_vlm.cli.main import build_app, main
from mqt_vlm.errors import MQTError


def test_one_budget_words_and_values():
    assert parse_budget("8", 16) == 8 and parse_budget(" 16 ", 16) == 16 and parse_budget(np.int64(3), 16) == 3
    assert parse_budget("M", 16) == 16 and parse_budget("max", 16) == 16 and parse_budget("Max", 16) == 16
    assert parse_budget("auto", 16, allow_auto=True) == AUTO and parse_budget("AUTO", 16, allow_auto=True) == AUTO
    # before a model is loaded: the syntax only, M kept as MAX
    assert parse_budget("M", None) == MAX and parse_budget("300", None) == 300
    for bad in ("0", "17", "x", "2.5", "-1", "", 0, 17, 8.0, True, None, "auto"):
        with pytest.raises(MQTError):
            parse_budget(bad, 16)
    with pytest.raises(MQTError, match="--budgets takes an int in 1..M"):
        parse_budget("lots", None, option="--budgets")
    with pytest.raises(MQTError, match="'auto' is not available here"):
        parse_budget("auto", 16)
    assert check_budget(torch.tensor(4), 16) == 4
    with pytest.raises(MQTError, match="1..16"):
        check_budget(17, 16)


def test_budget_lists_keep_order_and_drop_repeats():
    assert parse_budgets("2,8,M", 16) == [2, 8, 16]
    assert parse_budgets("16, 2, max, 2", 16) == [16, 2]
    assert parse_budgets([4, "M"], 16) == [4, 16]
    assert parse_budgets("1,auto", 16, allow_auto=True) == [1, AUTO]
    assert parse_budgets("2,M", None) == [2, MAX]
    for bad in ("", " , ", "2,,x", "2;8", "2,0"):
        with pytest.raises(MQTError):
            parse_budgets(bad, 16)
    assert resolve_default(None, 8, 16) == 8 and resolve_default("", 8, 16) == 8 and resolve_default("M", 8, 16) == 16


def test_the_only_budget_parser_is_mqt_vlm_budgets():
    """No second parser of budget words under src/: every comma list and every "auto"/"M" word goes
    through mqt_vlm.budgets (the train sampler spec, e.g. even:2-256, is another language)."""
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "mqt_vlm"
    offenders = []
    patterns = [r"def _?parse_budgets?\b", r'\.upper\(\) *[!=]= *"M"', r'split\(","\)']
    for path in src.rglob("*.py"):
        if path.name == "budgets.py" and path.parent == src or "vllm" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            for match in re.finditer(pattern, text):
                line = text[: match.start()].count("\n") + 1
                context = text.splitlines()[line - 1]
                if "budget" in context.lower() or "tokens" in context.lower() or "def " in context:
                    offenders.append(f"{path.relative_to(src)}:{line}: {context.strip()}")
    assert offenders == [], offenders


# ---- one default ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_eight(llama_tokenizer_dir, tmp_path_factory):
    """A tiny model (M = 16) whose config's default budget is 8, saved with its processor."""
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir), default_num_visual_tokens=8)
    folder = tmp_path_factory.mktemp("default-eight")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model.eval(), processor, folder


def test_processor_and_model_share_the_default_budget(default_eight, photos):
    """Neither side given a budget: the processor writes as many image tokens as the model fills
    (its config's default_num_visual_tokens, 8 of M = 16), built, loaded or auto-loaded."""
    from transformers import AutoProcessor

    from mqt_vlm.loading import load_model

    model, processor, folder = default_eight
    loaded, loaded_processor = load_model(folder)
    for proc in (processor, loaded_processor, AutoProcessor.from_pretrained(folder)):
        assert proc.default_num_visual_tokens == 8 == proc.num_queries // 2
        inputs = proc(images=photos["coffee"], text=proc.format_prompt("What is this?"))
        assert int((inputs["input_ids"] == proc.image_token_id).sum()) == 8
        with torch.no_grad():
            out = loaded.generate(**inputs, max_new_tokens=2, do_sample=False)  # no budget on either side
        assert out.shape[1] == inputs["input_ids"].shape[1] + 2


def test_the_model_config_wins_over_a_stale_processor_file(default_eight, tmp_path):
    import shutil

    from mqt_vlm.processing.processor import MQTProcessor

    _, _, folder = default_eight
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    settings = json.loads((copy / "processor_config.json").read_text())
    settings["default_num_visual_tokens"] = 16  # a processor file out of step with config.json
    (copy / "processor_config.json").write_text(json.dumps(settings))
    assert MQTProcessor.from_pretrained(copy).default_num_visual_tokens == 8
    (copy / "config.json").unlink()  # a processor folder on its own keeps its own setting
    assert MQTProcessor.from_pretrained(copy).default_num_visual_tokens == 16


def test_processor_takes_budget_words(default_eight, photos):
    _, processor, _ = default_eight
    prompt = processor.format_prompt("q")
    count = lambda **kw: int((processor(images=photos["coffee"], text=prompt, **kw)["input_ids"]  # noqa: E731
                              == processor.image_token_id).sum())
    assert count(num_visual_tokens="M") == 16 and count(num_visual_tokens=3) == 3
    with pytest.raises(MQTError, match="1..16"):
        count(num_visual_tokens=17)


# ---- one flag name per kind, old names hidden ----------------------------------------------------


def run_cli(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0


def _help(*command: str) -> str:
    result = CliRunner().invoke(build_app(), [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_flag_vocabulary_in_the_help():
    lists = [("generate",), ("eval",), ("demo",), ("flops",), ("bench",), ("gradcam",)]
    single = [("chat",), ("serve",), ("data", "check")]
    for command in lists:
        text = _help(*command)
        assert "--budgets" in text, command
        assert "--tokens" not in text and "--num-visual-tokens" not in text, command
    for command in single:
        text = _help(*command)
        assert "--visual-tokens" in text, command
        assert "--tokens " not in text and "--num-visual-tokens" not in text and "--budgets " not in text, command
    assert "--budget " in _help("train") or "--budget" in _help("train")  # the sampler spec keeps its name


@pytest.fixture(scope="module")
def saved_tiny(tiny_model_dir, tmp_path_factory, photos):
    image = tmp_path_factory.mktemp("photo") / "coffee.png"
    photos["coffee"].save(image)
    return tiny_model_dir, image


def test_old_flag_names_still_work(saved_tiny, capsys):
    folder, image = saved_tiny
    base = ["generate", "--model", str(folder), "--image", str(image), "--prompt", "What?", "--max-new-tokens", "3",
            "--device", "cpu"]
    outputs = []
    for flag in ("--budgets", "--tokens", "--visual-tokens"):
        run_cli([*base, flag, "4,M"])
        table = capsys.readouterr().out.splitlines()[3:]  # rows of | budget | answer | times |
        outputs.append([row.split(" | ")[:2] for row in table])
    assert outputs[0] == outputs[1] == outputs[2] and [row[0] for row in outputs[0]] == ["| 4", "| 16"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--budgets", "4", "--tokens", "8"])
    assert exit_info.value.code == 2 and "give only --budgets" in capsys.readouterr().err
    chat = ["chat", "--model", str(folder), "--image", str(image), "--max-new-tokens", "2", "--no-stream",
            "--device", "cpu"]
    for flag in ("--visual-tokens", "--tokens"):
        result = CliRunner().invoke(build_app(), [*chat, flag, "M"], input="/tokens\n/quit\n")
        assert result.exit_code == 0, result.output
        assert "budget: 16 (M = 16)" in result.output


def test_flops_counts_a_model_folder_and_builtin(saved_tiny, capsys):
    """`mqt flops --model` reads a folder's (or builtin's) config.json: from_config's numbers, budgets up to M."""
    from mqt_vlm.analysis.flops import from_config, model_flops
    from mqt_vlm.analysis.flops_cli import flops_report, model_shape
    from mqt_vlm.modeling.configuration import MQTConfig

    folder, _ = saved_tiny
    spec = model_shape(str(folder))
    expected = model_flops(from_config(MQTConfig.from_pretrained(folder)), 4).total
    assert spec.max_visual_tokens == 16 and flops_report(spec, [4], None, 53)["rows"][0]["total_tflops"] == expected / 1e12
    run_cli(["flops", "--model", str(folder), "--budgets", "4,M", "--baseline", "none"])
    table = capsys.readouterr().out
    assert str(folder) in table and any(line.split()[:1] == ["16"] for line in table.splitlines())
    with pytest.raises(SystemExit) as exit_info:
        main(["flops", "--model", str(folder), "--budgets", "32", "--baseline", "none"])
    assert exit_info.value.code == 2 and "1..16" in capsys.readouterr().err
    assert model_shape("builtin:shapes").max_visual_tokens == 32
