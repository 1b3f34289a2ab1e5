"""The decoder (the presets themselves: test_presets.py)."""

from __future__ import annotations

import pytest
import torch

from trainer.config import ModelConfig, count_params, flops_per_token
from trainer.model import Decoder, apply_rope, rope_tables
from trainer.presets import PRESETS


@pytest.mark.parametrize("tie", [False, True])
def test_counted_parameters_equal_the_module_parameters(tie):
    cfg = PRESETS["tiny-1m"].config(vocab_size=512, context=64, tie_embeddings=tie)
    model = Decoder(cfg)
    assert sum(p.numel() for p in model.parameters()) == count_params(cfg, include_embeddings=True)
    embedding = 512 * cfg.d_model * (1 if tie else 2)
    assert count_params(cfg, include_embeddings=False) == count_params(cfg, True) - embedding


def test_flops_per_token_is_6n_plus_the_attention_term():
    cfg = ModelConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_seq_len=32)
    n = count_params(cfg, False) + 100 * 64
    assert flops_per_token(cfg, 32) == 6 * n + 12 * 2 * 4 * 16 * 32


def test_attention_is_causal_a_future_token_never_changes_the_past():
    torch.manual_seed(0)
    model = Decoder(ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=16)).eval()
    x = torch.randint(0, 50, (1, 16))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 50
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    torch.testing.assert_close(a[0, :-1], b[0, :-1])
    assert not torch.allclose(a[0, -1], b[0, -1])


def test_rope_preserves_norms_and_makes_scores_depend_on_relative_position():
    cos, sin = rope_tables(8, 32, 10_000.0)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 32, 8)
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 32, 8)
    rq, rk = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    s1 = (rq[0, 0, 5] * rk[0, 0, 3]).sum()
    s2 = (rq[0, 0, 12] * rk[0, 0, 10]).sum()
    torch.testing.assert_close(s1, s2, rtol=1e-4, atol=1e-5)


def test_a_sequence_longer_than_the_context_is_refused():
    model = Decoder(ModelConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_seq_len=8))
    with pytest.raises(ValueError, match="exceeds the model's context of 8"):
        model(torch.zeros(1, 9, dtype=torch.long))
