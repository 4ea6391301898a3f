"""A small BPE tokenizer trained on the synthetic corpus, LLaMA-style (sentencepiece-like spaces,
BOS added at the start, `</s>` as EOS). A 32000-token vocabulary would make the tiny LM's output
layer its most expensive part on CPU; a few hundred tokens cover this closed language.

Cell keys are one token each: "row 2, column 3" is kept whole by the pre-tokenizer, so BPE learns
it as one piece (it is among the most frequent). A cell key split over five tokens ("row", "2",
",", "column", "3") makes retrieving a cell a multi-token match, which a tiny LM trained from
scratch learns far more slowly. Words and punctuation are separate pieces ("none" and "none." are
one token, not two), so an answer is the same token in a description and in a short reply."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

CELL_KEY = r" ?row [0-9]+, column [0-9]+"  # one pre-token, so one BPE piece
SPECIAL = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}


def train_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 512) -> Any:
    """Train, save to `out_dir` (tokenizer.json + tokenizer_config.json) and return the tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CELL_KEY + r"| ?[A-Za-z]+| ?[0-9]+| ?[^A-Za-z0-9 ]+| +"), behavior="isolated"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
    ])
    # sentencepiece's decoding (as LLaMA's fast tokenizer does it): spaces back, one leading space dropped
    core.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL["unk"], SPECIAL["bos"], SPECIAL["eos"], SPECIAL["pad"]],
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    bos_id = core.token_to_id(SPECIAL["bos"])
    core.post_processor = processors.TemplateProcessing(single=f"{SPECIAL['bos']} $A", special_tokens=[(SPECIAL["bos"], bos_id)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=SPECIAL["unk"],
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        padding_side="right",
        model_max_length=512,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    return tokenizer
