"""The model presets: the shapes of the models MuPT released, their counts, and ``smslab presets``."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch

from trainer.model import Decoder
from trainer.presets import PRESETS

# Released shapes (m-a-p on Hugging Face): layers per size, and the parameter count
# with (untied) embeddings and MuPT's 50,000-token vocabulary that each name rounds.
RELEASED_LAYERS = {"190m": 12, "505m": 24, "1.07b": 36, "1.97b": 48, "4.23b": 60}
RELEASED_HIDDEN = {"190m": 768, "505m": 1024, "1.07b": 1280, "1.97b": 1536, "4.23b": 2048}
NAMED_SIZE = {"190m": 190.07e6, "505m": 505.10e6, "1.07b": 1.0718e9, "1.97b": 1.9657e9, "4.23b": 4.2316e9}
# Exact counts, so that any change to the shapes or to count_params is seen.
WITH_EMBEDDINGS = {"190m": 190_065_408, "505m": 505_103_360, "1.07b": 1_071_811_840,
                   "1.97b": 1_965_688_320, "4.23b": 4_231_579_648}
NON_EMBEDDING = {"190m": 113_265_408, "505m": 402_703_360, "1.07b": 943_811_840,
                 "1.97b": 1_812_088_320, "4.23b": 4_026_779_648}
REQUIRED_FIELDS = {"name", "hidden", "layers", "ffn", "heads", "head_dim", "vocab",
                   "n_params_non_embedding", "n_params_with_embeddings"}


@pytest.mark.parametrize("name", list(RELEASED_LAYERS))
def test_each_mupt_preset_has_the_released_shape(name):
    described = PRESETS[name].describe()
    assert described["layers"] == RELEASED_LAYERS[name]
    assert described["hidden"] == RELEASED_HIDDEN[name]
    assert described["ffn"] == 4 * described["hidden"]
    assert described["head_dim"] == 64 and described["heads"] * 64 == described["hidden"]
    assert described["vocab"] == 50_000 and described["max_seq_len"] == 8192


@pytest.mark.parametrize("name", list(NAMED_SIZE))
def test_each_mupt_preset_reaches_its_named_size_with_embeddings(name):
    described = PRESETS[name].describe()
    assert described["n_params_with_embeddings"] == pytest.approx(NAMED_SIZE[name], rel=1e-4)
    assert described["n_params_with_embeddings"] == WITH_EMBEDDINGS[name]
    assert described["n_params_non_embedding"] == NON_EMBEDDING[name]


@pytest.mark.parametrize("name", ["190m", "4.23b"])
def test_the_built_decoder_of_a_mupt_preset_has_the_counted_parameters(name):
    # On the meta device: shapes only, no memory, so the 4.23B model is cheap to build.
    with torch.device("meta"):
        model = Decoder(PRESETS[name].config(vocab_size=50_000))
    assert sum(p.numel() for p in model.parameters()) == WITH_EMBEDDINGS[name]


def test_tiny_presets_step_geometrically_from_0_1m_to_20m():
    tiny = [p.describe()["n_params_non_embedding"] for name, p in PRESETS.items() if name.startswith("tiny")]
    assert tiny == sorted(tiny)
    assert tiny[0] == pytest.approx(1e5, rel=0.1) and tiny[-1] == pytest.approx(2e7, rel=0.03)
    ratios = [b / a for a, b in itertools.pairwise(tiny)]
    assert all(1.9 < r < 3.6 for r in ratios)


def test_presets_command_lists_every_preset_with_its_shape_and_both_counts_as_json():
    out = subprocess.run([sys.executable, "-m", "smslab", "presets", "--json"], capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(PRESETS)
    assert all(set(r) >= REQUIRED_FIELDS for r in rows.values())
    assert [rows[n]["layers"] for n in RELEASED_LAYERS] == [12, 24, 36, 48, 60]
    assert all(rows[n]["ffn"] == 4 * rows[n]["hidden"] for n in RELEASED_LAYERS)
    assert {n: rows[n]["n_params_with_embeddings"] for n in WITH_EMBEDDINGS} == WITH_EMBEDDINGS


def test_presets_command_table_shows_the_same_columns():
    out = subprocess.run([sys.executable, "-m", "smslab", "presets"], capture_output=True, text=True, check=True)
    header = out.stdout.splitlines()[0].split()
    for column in ("preset", "hidden", "layers", "ffn", "heads", "head_dim", "vocab"):
        assert column in header
    assert "4,231,579,648" in out.stdout
