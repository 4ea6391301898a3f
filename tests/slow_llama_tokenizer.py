"""An independent reference of the slow LLaMA tokenizer the released MQT-LLaVA code ran (transformers
4.36 `LlamaTokenizer`, `use_fast=False`, on Vicuna v1.5's files), written on `sentencepiece` itself
from that tokenizer's documented behaviour, without transformers:

- special tokens (`<s>`, `</s>`, `<unk>`, and any `extra` ones) written in the text are split out
  first and become their ids;
- legacy=False (Vicuna v1.5's tokenizer_config): the sentencepiece model runs with its dummy prefix
  switched off; the whole text gets ONE leading "▁" (literal "▁" in the text become spaces), and a
  piece that starts with "▁" or a space is encoded after "<unk>" whose pieces are then dropped (so
  the "▁" is kept as sentencepiece would keep a dummy prefix); the "▁" is dropped again when the text
  starts with a special token; text after a special token gets no "▁";
- legacy=True (transformers <= 4.30, or legacy unset): every piece between special tokens is
  encoded with sentencepiece's own dummy prefix;
- `__call__` puts BOS first (add_bos_token) unless add_special_tokens=False.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece
from sentencepiece import sentencepiece_model_pb2


class SlowLlamaTokenizer:
    def __init__(self, model_file: str | Path, legacy: bool = False, extra_special: tuple[str, ...] = ()) -> None:
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(Path(model_file).read_bytes())
        self.model_file = Path(model_file)
        self.legacy = legacy
        if not legacy:
            proto.normalizer_spec.add_dummy_prefix = False
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.bos_token_id, self.eos_token_id, self.unk_token_id = self.sp.bos_id(), self.sp.eos_id(), self.sp.unk_id()
        self.special = {"<s>": self.bos_token_id, "</s>": self.eos_token_id, "<unk>": self.unk_token_id}
        self.special.update({token: -1 - i for i, token in enumerate(extra_special)})  # ids outside the vocab
        self.unk_length = len(self.sp.encode("<unk>"))

    def _split(self, text: str) -> list[str]:
        """Text and special tokens in order (leftmost match, longest first)."""
        out, i = [], 0
        while i < len(text):
            hits = [(text.find(tok, i), -len(tok), tok) for tok in self.special if text.find(tok, i) >= 0]
            if not hits:
                out.append(text[i:])
                break
            at, _, tok = min(hits)
            if at > i:
                out.append(text[i:at])
            out.append(tok)
            i = at + len(tok)
        return out

    def _encode_piece(self, piece: str) -> list[int]:
        if self.legacy or not piece.startswith(("▁", " ")):
            return self.sp.encode(piece)
        return self.sp.encode("<unk>" + piece)[self.unk_length:]

    def encode(self, text: str) -> list[int]:
        """Ids without BOS."""
        if not text:
            return []
        if not self.legacy:
            text = "▁" + text.replace("▁", " ")
        pieces = self._split(text)
        ids = [i for p in pieces for i in ([self.special[p]] if p in self.special else self._encode_piece(p))]
        if not self.legacy and len(pieces) > 1 and pieces[0] == "▁" and pieces[1] in self.special:
            ids = ids[1:]
        return ids

    def __call__(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([self.bos_token_id] if add_special_tokens else []) + self.encode(text)
