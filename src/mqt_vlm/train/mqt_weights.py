"""Load query-transformer weights from a released `query_abstractor.bin` or an `mqt.*` file.

The released stage 1 writes `query_abstractor.bin`: a torch pickle of `model.query_abstractor.*`
tensors (query, pos_embed, proj, attn.*, ln_q/ln_k/ln_v). Our module uses the same suffixes under
`mqt.`, so loading is a prefix rename. Pickles are opened with `weights_only=True` only: a
checkpoint from the internet must not be able to run code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mqt_vlm.errors import MQTError

def read_mqt_state(path: Path) -> dict[str, torch.Tensor]:
    """The query-transformer tensors of a .bin/.pt pickle or a .safetensors file, prefix stripped."""
    from mqt_vlm.checkpoints.released import read_query_transformer_state

    return read_query_transformer_state(path)


def load_mqt_weights(mqt: nn.Module, path: Path) -> list[str]:
    """Copy the file's tensors into `mqt` (strict: every parameter, matching shapes); returns the keys."""
    state = read_mqt_state(path)
    own = mqt.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise MQTError(
            f"Query-transformer weights {path} do not fit the model: missing {missing[:6]}, unexpected "
            f"{unexpected[:6]}, shape mismatches {wrong[:4]}. Build the model with the same num_queries, "
            "width and depth as the checkpoint."
        )
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))
    return sorted(state)
