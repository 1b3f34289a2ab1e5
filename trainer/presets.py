"""Model presets: the shapes of the models MuPT released, tiny CPU models, and which N the laws use.

The five MuPT presets are the LLaMA-style decoders MuPT released (m-a-p on
Hugging Face): hidden size h, SwiGLU inner size 4·h, head size 64 (so h / 64
heads), 12 / 24 / 36 / 48 / 60 layers for 190M / 505M / 1.07B / 1.97B / 4.23B,
a 50,000-token vocabulary and untied input and output embeddings. Counted with
embeddings (``count_params(..., include_embeddings=True)``) they have
190,065,408 / 505,103,360 / 1,071,811,840 / 1,965,688,320 / 4,231,579,648
parameters: each reaches its name.

Why not MuPT Table 1's layer column: Table 1 is internally inconsistent. It
gives every size a head size of 256, yet its head count × 256 is not its hidden
size (12 × 256 ≠ 768, and so on for every row); and with its layer counts
(12 / 16 / 20 / 24 / 32) and FFN = 4·hidden only 190M reaches its name (the
others come to 371M, 652M, 1.06B and 2.35B with embeddings). The checkpoints
MuPT released have the named sizes, so their shapes are the ones used here.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.config import ModelConfig, count_params, flops_per_token

MUPT_VOCAB = 50_000
MUPT_CONTEXT = 8192
MUPT_HEAD_DIM = 64
MUPT_FFN_MULTIPLE = 4  # SwiGLU inner size = 4 × hidden, as in the released configs
# The parameter count the scaling laws use as N: non-embedding parameters
# (Kaplan et al. 2020; the OLMo ladder data is non-embedding too). Every run
# records both counts and this choice.
N_FOR_LAWS = "non_embedding"

_RELEASED = "MuPT released checkpoints (m-a-p on Hugging Face)"


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
        """The preset's shape and counts (untied embeddings), as ``smslab presets --json`` prints them."""
        cfg = self.config(vocab_size or self.reference_vocab)
        return {
            "name": self.name,
            "hidden": self.d_model,
            "layers": self.n_layers,
            "ffn": self.d_ff,
            "heads": self.n_heads,
            "head_dim": cfg.head_dim,
            "vocab": cfg.vocab_size,
            "n_params_non_embedding": count_params(cfg, include_embeddings=False),
            "n_params_with_embeddings": count_params(cfg, include_embeddings=True),
            "max_seq_len": self.max_seq_len,
            "flops_per_token": flops_per_token(cfg, self.max_seq_len),
            "source": self.source,
        }


def released_mupt(name: str, hidden: int, layers: int) -> Preset:
    """A MuPT size from its hidden size and layer count; the released models derive the rest the same way."""
    return Preset(
        name=name,
        d_model=hidden,
        n_layers=layers,
        n_heads=hidden // MUPT_HEAD_DIM,
        d_ff=MUPT_FFN_MULTIPLE * hidden,
        max_seq_len=MUPT_CONTEXT,
        reference_vocab=MUPT_VOCAB,
        source=_RELEASED,
    )


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
        released_mupt("190m", hidden=768, layers=12),
        released_mupt("505m", hidden=1024, layers=24),
        released_mupt("1.07b", hidden=1280, layers=36),
        released_mupt("1.97b", hidden=1536, layers=48),
        released_mupt("4.23b", hidden=2048, layers=60),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; presets are {', '.join(PRESETS)}") from None
