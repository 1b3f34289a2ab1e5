"""Model presets: MuPT Table 1 and tiny CPU models, and the one place that says which N the laws use.

MuPT Table 1 lists, per size, hidden size, layers, FFN size, heads and a head
size of 256 — but 12 heads × 256 ≠ 768 and so on: its head size and head count
do not agree with its hidden sizes. We keep hidden size, layers and head count
and take head size = hidden / heads (64 everywhere), as LLaMA does, so the
attention projections stay square. With the listed FFN sizes (4 × hidden) only
190M reaches its name (MuPT's 50,000-token vocabulary, untied embeddings); for
the other sizes we choose the SwiGLU hidden size (a multiple of 256) that makes
the total parameter count match the name, so that the presets are the models
the paper's scaling study names.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.config import ModelConfig, count_params, flops_per_token

MUPT_VOCAB = 50_000
# The parameter count the scaling laws use as N: non-embedding parameters
# (Kaplan et al. 2020; the OLMo ladder data is non-embedding too). Every run
# records both counts and this choice.
N_FOR_LAWS = "non_embedding"


@dataclass(frozen=True)
class Preset:
    name: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_seq_len: int
    reference_vocab: int  # the vocabulary its name's parameter count refers to
    source: str

    def config(self, vocab_size: int, context: int | None = None, tie_embeddings: bool = False) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            max_seq_len=context or self.max_seq_len,
            tie_embeddings=tie_embeddings,
        )

    def describe(self, vocab_size: int | None = None) -> dict[str, object]:
        cfg = self.config(vocab_size or self.reference_vocab)
        return {
            "name": self.name,
            "n_params": count_params(cfg, include_embeddings=False),
            "n_params_with_embeddings": count_params(cfg, include_embeddings=True),
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_ff": self.d_ff,
            "head_dim": cfg.head_dim,
            "max_seq_len": self.max_seq_len,
            "vocab_size": cfg.vocab_size,
            "flops_per_token": flops_per_token(cfg, self.max_seq_len),
            "source": self.source,
        }


_TABLE1 = "MuPT Table 1"
_TINY = "tiny CPU preset (non-embedding N in the name)"
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny-0.1m", 64, 2, 2, 192, 1024, 4096, _TINY),
        Preset("tiny-0.3m", 96, 3, 3, 256, 1024, 4096, _TINY),
        Preset("tiny-1m", 128, 5, 4, 352, 1024, 4096, _TINY),
        Preset("tiny-3m", 192, 7, 6, 512, 1024, 4096, _TINY),
        Preset("tiny-10m", 320, 8, 5, 864, 1024, 4096, _TINY),
        Preset("tiny-20m", 384, 11, 6, 1024, 1024, 4096, _TINY),
        Preset("190m", 768, 12, 12, 3072, 8192, MUPT_VOCAB, _TABLE1),
        Preset("505m", 1024, 16, 16, 6912, 8192, MUPT_VOCAB, _TABLE1),
        Preset("1.07b", 1280, 20, 20, 10496, 8192, MUPT_VOCAB, _TABLE1),
        Preset("1.97b", 1536, 24, 24, 14336, 8192, MUPT_VOCAB, _TABLE1),
        Preset("4.23b", 2048, 32, 32, 17664, 8192, MUPT_VOCAB, _TABLE1),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; presets are {', '.join(PRESETS)}") from None
