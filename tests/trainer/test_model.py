"""The decoder and its presets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from trainer.config import ModelConfig, count_params, flops_per_token
from trainer.model import Decoder, apply_rope, rope_tables
from trainer.presets import PRESETS

TABLE_1 = {"190m": 190e6, "505m": 505e6, "1.07b": 1.07e9, "1.97b": 1.97e9, "4.23b": 4.23e9}


@pytest.mark.parametrize(("name", "size"), list(TABLE_1.items()))
def test_every_table_1_preset_is_within_3_percent_of_its_name(name, size):
    described = PRESETS[name].describe()
    assert described["n_params_with_embeddings"] == pytest.approx(size, rel=0.03)
    assert described["vocab_size"] == 50_000 and described["head_dim"] == 64


def test_tiny_presets_step_geometrically_from_0_1m_to_20m():
    tiny = [p.describe()["n_params"] for name, p in PRESETS.items() if name.startswith("tiny")]
    assert tiny == sorted(tiny)
    assert tiny[0] == pytest.approx(1e5, rel=0.1) and tiny[-1] == pytest.approx(2e7, rel=0.03)
    ratios = [b / a for a, b in zip(tiny, tiny[1:])]
    assert all(1.9 < r < 3.6 for r in ratios)


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


def test_presets_command_lists_json():
    out = subprocess.run([sys.executable, "-m", "smslab", "presets", "--json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    assert {r["name"] for r in rows} == set(PRESETS)
    assert set(rows[0]) >= {"name", "n_params", "n_params_with_embeddings", "d_model", "n_layers", "n_heads"}
