"""The MQT module on its own: prefix property, gradients, layout of pos_embed, errors."""

from __future__ import annotations

import pytest
import torch

from mqt_vlm import MatryoshkaQueryTransformer, MQTError, QueryTransformerConfig
from mqt_vlm.modeling.query_transformer import sincos_pos_embed_2d


def make(**overrides) -> MatryoshkaQueryTransformer:
    torch.manual_seed(0)
    settings = dict(num_queries=16, kv_dim=24, output_dim=40, num_heads=4, hidden_size=24)
    settings.update(overrides)
    return MatryoshkaQueryTransformer(QueryTransformerConfig(**settings)).eval()


@pytest.mark.parametrize("overrides", [{}, {"key_source": "feature+position"}, {"depth": 3}, {"hidden_size": 32}])
def test_prefix_property_is_bit_exact(overrides):
    mqt = make(**overrides)
    features = torch.randn(3, 36, 24)  # 6x6 vision grid
    full = mqt(features, 16)
    assert full.shape == (3, 16, 40)
    for m in (1, 2, 5, 8, 15):
        out = mqt(features, m)
        assert out.shape == (3, m, 40)
        assert torch.equal(out, full[:, :m])


@pytest.mark.parametrize("overrides", [{}, {"key_source": "feature+position"}, {"depth": 3}])
def test_first_m_tokens_do_not_depend_on_later_queries(overrides):
    """Nesting from the inputs' side (the check above compares a tensor with its own slice): changing
    queries m..M-1 must leave tokens 0..m-1 unchanged and give them no gradient. This is what the
    causal self-attention of depth > 1 guarantees; without the mask it fails."""
    mqt = make(**overrides)
    features = torch.randn(2, 36, 24)
    for m in (1, 5, 12):
        before = mqt(features, m)
        with torch.no_grad():
            saved = mqt.query.detach().clone()
            mqt.query[m:] += torch.randn_like(mqt.query[m:])
        after_all = mqt(features, 16)
        with torch.no_grad():
            mqt.query.copy_(saved)
        assert torch.allclose(after_all[:, :m], before, atol=1e-6, rtol=0)
        assert not torch.allclose(after_all[:, m:], mqt(features, 16)[:, m:], atol=1e-3)  # the change is real
        mqt.zero_grad()
        mqt(features, m).sum().backward()
        assert mqt.query.grad[m:].abs().max() == 0
        assert mqt.query.grad[:m].abs().max() > 0


def test_default_budget_is_all_queries():
    mqt = make()
    features = torch.randn(1, 16, 24)
    assert mqt(features).shape == (1, 16, 40)


@pytest.mark.parametrize("overrides", [{}, {"key_source": "feature+position", "depth": 2, "hidden_size": 32}])
def test_gradients_reach_every_parameter(overrides):
    mqt = make(**overrides).train()
    features = torch.randn(2, 16, 24, requires_grad=True)
    mqt(features, 16).square().mean().backward()
    for name, param in mqt.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_position_keys_make_attention_image_independent():
    mqt = make()
    a = mqt.attention_maps(torch.randn(1, 36, 24))
    b = mqt.attention_maps(torch.randn(1, 36, 24) * 5)
    assert a.shape == (1, 16, 6, 6)
    assert torch.allclose(a, b)
    assert torch.allclose(a.sum(dim=(-1, -2)), torch.ones(1, 16))
    keyed_by_content = make(key_source="feature+position")
    c = keyed_by_content.attention_maps(torch.randn(1, 36, 24))
    d = keyed_by_content.attention_maps(torch.randn(1, 36, 24))
    assert not torch.allclose(c, d)


def test_sincos_layout_columns_then_rows():
    dim, grid = 16, (3, 5)
    emb = sincos_pos_embed_2d(dim, grid)
    assert emb.shape == (15, 16)
    # position (row 2, col 4) is index 2*5+4; first half encodes the column, second the row
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    col = torch.cat([(4 * omega).sin(), (4 * omega).cos()]).float()
    row = torch.cat([(2 * omega).sin(), (2 * omega).cos()]).float()
    assert torch.allclose(emb[14], torch.cat([col, row]))
    assert torch.allclose(make().pos_embed.data, sincos_pos_embed_2d(24, (4, 4)))


def test_key_grid_follows_the_vision_tower():
    mqt = make(key_grid=(2, 8))
    assert mqt(torch.randn(1, 16, 24), 4).shape == (1, 4, 40)
    with pytest.raises(MQTError, match="key_grid"):
        mqt(torch.randn(1, 36, 24), 4)
    with pytest.raises(MQTError, match="not a square"):
        make()(torch.randn(1, 15, 24), 4)


@pytest.mark.parametrize("bad", [0, 17, -1, 2.0, "4", True, None.__class__, [4]])
def test_bad_budgets_raise(bad):
    mqt = make()
    with pytest.raises(MQTError, match="num_visual_tokens"):
        mqt(torch.randn(1, 16, 24), bad)


def test_numpy_and_tensor_integer_budgets_are_accepted():
    import numpy as np

    mqt = make()
    features = torch.randn(1, 16, 24)
    assert mqt(features, np.int64(3)).shape[1] == 3
    assert mqt(features, torch.tensor(5)).shape[1] == 5


def test_feature_width_mismatch_raises():
    with pytest.raises(MQTError, match="kv_dim"):
        make()(torch.randn(1, 16, 30), 4)
    with pytest.raises(MQTError, match="batch, patches, width"):
        make()(torch.randn(16, 24), 4)


@pytest.mark.parametrize(
    "settings,match",
    [
        ({"num_queries": 15}, "not a square"),
        ({"num_queries": 16, "query_grid": (2, 4)}, "does not hold"),
        ({"num_heads": 5}, "divisible"),
        ({"key_source": "image"}, "key_source"),
        ({"depth": 0}, "positive"),
    ],
)
def test_bad_configs_raise(settings, match):
    base = dict(num_queries=16, kv_dim=24, output_dim=40, num_heads=4)
    base.update(settings)
    with pytest.raises(MQTError, match=match):
        QueryTransformerConfig(**base)


def test_released_parameter_names():
    names = {n for n, _ in make().named_parameters()}
    expected = {
        "query", "pos_embed", "proj", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
        "attn.out_proj.bias", "ln_q.weight", "ln_q.bias", "ln_k.weight", "ln_k.bias", "ln_v.weight", "ln_v.bias",
    }
    assert names == expected
    mqt = make()
    assert mqt.ln_q.eps == 1e-6 and mqt.proj.shape == (24, 40)
