"""The Matryoshka Query Transformer (MQT): M learned queries read the vision features; any prefix
of m <= M output tokens is a valid image representation.

Shape glossary
    B   batch size (images)
    N   vision patches per image (gh_k * gw_k, e.g. 24 * 24 = 576 for CLIP-L/14 at 336 px)
    M   number of queries (num_queries, 256 in MQT-LLaVA), laid out on a query grid gh_q * gw_q
    m   the budget: number of visual tokens kept (1..M)
    C   query width (hidden_size, 1024 in MQT-LLaVA)
    Ck  vision feature width (kv_dim)
    D   output width (the LLM hidden size)

The released design (depth 1) is one multi-head cross-attention with no FFN, no self-attention among
the queries and no output norm. With `key_source="position"` the keys are LayerNorm of the query
positional embedding resized to the vision grid, so the attention weights do not depend on the image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mqt_vlm.budgets import check_budget
from mqt_vlm.errors import MQTError

KeySource = Literal["position", "feature+position"]
KEY_SOURCES: tuple[str, ...] = ("position", "feature+position")


@dataclass
class QueryTransformerConfig:
    """Configuration of the query transformer. `kv_dim` and `output_dim` usually come from the
    vision tower and the LLM; `MQTConfig` fills them in."""

    num_queries: int = 256
    kv_dim: int = 1024
    output_dim: int = 4096
    hidden_size: int | None = None  # None -> kv_dim (the released model)
    num_heads: int = 16
    key_source: KeySource = "position"
    query_grid: tuple[int, int] | None = None  # None -> square grid of side sqrt(M)
    key_grid: tuple[int, int] | None = None  # None -> inferred from N (must be square)
    layer_norm_eps: float = 1e-6
    depth: int = 1
    mlp_ratio: float = 4.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hidden_size is None:
            self.hidden_size = self.kv_dim
        if self.query_grid is None:
            side = math.isqrt(self.num_queries)
            if side * side != self.num_queries:
                raise MQTError(
                    f"num_queries={self.num_queries} is not a square; set query_grid=(rows, cols) "
                    "with rows * cols == num_queries."
                )
            self.query_grid = (side, side)
        self.query_grid = tuple(int(v) for v in self.query_grid)  # type: ignore[assignment]
        if self.key_grid is not None:
            self.key_grid = tuple(int(v) for v in self.key_grid)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        positive = ("num_queries", "kv_dim", "output_dim", "hidden_size", "num_heads", "depth")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MQTError(f"QueryTransformerConfig.{name} must be a positive int, got {value!r}.")
        if self.key_source not in KEY_SOURCES:
            raise MQTError(f"key_source must be one of {KEY_SOURCES}, got {self.key_source!r}.")
        assert self.hidden_size is not None and self.query_grid is not None
        if self.hidden_size % self.num_heads:
            raise MQTError(f"hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}.")
        if self.hidden_size % 4:
            raise MQTError(f"hidden_size={self.hidden_size} must be divisible by 4 (2D sin-cos embedding).")
        if self.query_grid[0] * self.query_grid[1] != self.num_queries:
            raise MQTError(f"query_grid {self.query_grid} does not hold num_queries={self.num_queries}.")
        if self.layer_norm_eps <= 0 or self.mlp_ratio <= 0:
            raise MQTError("layer_norm_eps and mlp_ratio must be positive.")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("query_grid", "key_grid"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QueryTransformerConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MQTError(f"Unknown query-transformer config keys {unknown}; known: {sorted(known)}.")
        return cls(**data)


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """2D sin-cos embedding in the MAE layout: [rows*cols, dim], row-major over the grid.

    The first dim/2 channels encode the column index, the last dim/2 the row index; each half is
    [sin(p * w_k), cos(p * w_k)] with w_k = 1 / 10000^(k / (dim/4)).
    """
    rows, cols = grid
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # [dim/4]
    row_idx, col_idx = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
    )

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega.reshape(1, -1)  # [rows*cols, dim/4]
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # [rows*cols, dim/2]

    return torch.cat([encode(col_idx), encode(row_idx)], dim=1).float()  # [rows*cols, dim]


class _ResidualBlock(nn.Module):
    """Extra block for depth > 1: causal self-attention among queries (query i sees queries <= i, so
    prefixes stay exact), cross-attention to the image, and an MLP; pre-norm with residuals."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.ln_self = nn.LayerNorm(width, eps=eps)
        self.self_attn = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.ln_cross = nn.LayerNorm(width, eps=eps)
        self.cross_attn = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.ln_mlp = nn.LayerNorm(width, eps=eps)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        q = self.ln_self(x)  # [B, M, C]
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).triu(1)
        x = x + self.self_attn(q, q, q, attn_mask=causal, need_weights=False)[0]
        x = x + self.cross_attn(self.ln_cross(x), key, value, need_weights=False)[0]
        return x + self.mlp(self.ln_mlp(x))


class MatryoshkaQueryTransformer(nn.Module):
    """Vision features [B, N, Ck] -> the first m of M visual tokens [B, m, D].

    Parameter names follow the released `query_abstractor` (query, pos_embed, attn.*, ln_q, ln_k,
    ln_v, proj) so released weights load by prefix renaming alone.
    """

    def __init__(self, config: QueryTransformerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        width = config.hidden_size
        assert width is not None and config.query_grid is not None
        self.query = nn.Parameter(torch.empty(config.num_queries, width))
        self.pos_embed = nn.Parameter(torch.empty(config.num_queries, width))  # default dtype; filled below
        self.kv_proj = nn.Linear(config.kv_dim, width, bias=False) if config.kv_dim != width else None
        self.attn = nn.MultiheadAttention(width, config.num_heads, batch_first=True)
        self.ln_q = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.ln_k = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.ln_v = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.blocks = nn.ModuleList(
            _ResidualBlock(width, config.num_heads, config.mlp_ratio, config.layer_norm_eps)
            for _ in range(config.depth - 1)
        )
        # in-by-out orientation, applied as x @ proj (the released layout)
        self.proj = nn.Parameter(torch.empty(width, config.output_dim))
        self.reset_parameters()

    @property
    def num_queries(self) -> int:
        return self.config.num_queries

    def reset_parameters(self) -> None:
        """Initialisation as in the Qwen-VL resampler: trunc-normal queries (std 0.02), scaled proj."""
        nn.init.trunc_normal_(self.query, std=0.02)
        width = self.config.hidden_size or 1
        nn.init.normal_(self.proj, std=width**-0.5)
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed_2d(width, self.config.query_grid or (1, 1)))

    def key_grid(self, num_patches: int) -> tuple[int, int]:
        grid = self.config.key_grid
        if grid is None:
            side = math.isqrt(num_patches)
            if side * side != num_patches:
                raise MQTError(
                    f"Cannot infer the vision patch grid from N={num_patches} patches (not a square); "
                    "set key_grid=(rows, cols) in the query-transformer config."
                )
            grid = (side, side)
        if grid[0] * grid[1] != num_patches:
            raise MQTError(
                f"The vision tower gave N={num_patches} patches but key_grid is {grid}; check "
                "vision_feature_select_strategy (CLS dropped?) and the image size."
            )
        return grid

    def key_positions(self, grid: tuple[int, int]) -> torch.Tensor:
        """pos_embed on the query grid, resized bicubically to the vision grid: [N, C]."""
        gh_q, gw_q = self.config.query_grid or (1, 1)
        pos = self.pos_embed.float().reshape(1, gh_q, gw_q, -1).permute(0, 3, 1, 2)  # [1, C, gh_q, gw_q]
        if (gh_q, gw_q) != tuple(grid):
            pos = F.interpolate(pos, size=grid, mode="bicubic", align_corners=False)  # [1, C, gh_k, gw_k]
        return pos.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(self.pos_embed.dtype)  # [N, C]

    def _keys_values(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, num_patches, _ = features.shape
        pos = self.key_positions(self.key_grid(num_patches))  # [N, C]
        if self.kv_proj is not None:
            features = self.kv_proj(features)  # [B, N, C]
        value = self.ln_v(features)  # [B, N, C]
        if self.config.key_source == "position":
            key = self.ln_k(pos).unsqueeze(0).expand(batch, -1, -1)  # [B, N, C]
        else:  # Qwen-VL: image content plus position
            key = self.ln_k(features) + pos.unsqueeze(0)  # [B, N, C]
        return key, value

    def _check_features(self, features: torch.Tensor) -> None:
        if features.ndim != 3:
            raise MQTError(f"features must be [batch, patches, width], got shape {tuple(features.shape)}.")
        if features.shape[-1] != self.config.kv_dim:
            raise MQTError(
                f"Vision feature width {features.shape[-1]} does not match the query transformer's "
                f"kv_dim={self.config.kv_dim}; build the MQT with kv_dim equal to the vision hidden size."
            )

    def forward(self, features: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
        """features [B, N, Ck] -> [B, m, D] with m = num_tokens (default M).

        All M queries are computed and the first m rows are returned. The query transformer costs
        a few GFLOPs against the LLM's TFLOPs, and computing the full set makes the prefix property
        bit-exact on every backend (BLAS kernels may change with the row count).
        """
        self._check_features(features)
        m = check_budget(self.num_queries if num_tokens is None else num_tokens, self.num_queries)
        key, value = self._keys_values(features.to(self.query.dtype))
        batch = features.shape[0]
        query = self.ln_q(self.query + self.pos_embed).unsqueeze(0).expand(batch, -1, -1)  # [B, M, C]
        x = self.attn(query, key, value, need_weights=False)[0]  # [B, M, C]
        for block in self.blocks:
            x = block(x, key, value)  # [B, M, C]
        return (x @ self.proj)[:, :m]  # [B, m, D]

    @torch.no_grad()
    def attention_maps(self, features: torch.Tensor) -> torch.Tensor:
        """Per-query attention of the first cross-attention over the patch grid: [B, M, gh_k, gw_k],
        averaged over heads. For key_source="position" it does not depend on the image."""
        self._check_features(features)
        key, value = self._keys_values(features.to(self.query.dtype))
        batch = features.shape[0]
        query = self.ln_q(self.query + self.pos_embed).unsqueeze(0).expand(batch, -1, -1)  # [B, M, C]
        weights = self.attn(query, key, value, need_weights=True, average_attn_weights=True)[1]  # [B, M, N]
        grid = self.key_grid(features.shape[1])
        return weights.reshape(batch, self.num_queries, *grid)  # [B, M, gh_k, gw_k]
