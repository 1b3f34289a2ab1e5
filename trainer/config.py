"""The decoder's shape and what follows from it without building it: parameter counts and FLOPs.

Torch-free, so that sweeps, dashboards and the laws' N can be computed without
loading torch (``trainer/model.py`` builds the module from the same config).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int  # SwiGLU hidden size
    max_seq_len: int
    tie_embeddings: bool = False
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(f"head size {self.d_model // self.n_heads} must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def count_params(cfg: ModelConfig, include_embeddings: bool) -> int:
    """Parameters of the decoder. Without embeddings: the transformer blocks and final
    norm only — the input embedding and the output projection are left out, as Kaplan
    et al. (2020) count N; with them: every parameter (a tied matrix counted once)."""
    per_block = 4 * cfg.d_model * cfg.d_model + 3 * cfg.d_model * cfg.d_ff + 2 * cfg.d_model
    non_embedding = cfg.n_layers * per_block + cfg.d_model
    if not include_embeddings:
        return non_embedding
    embeddings = cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    return non_embedding + embeddings


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6·N + 12·L·H·Q·T (PaLM, Chowdhery et al. 2022, Appendix B),
    N the parameters in matrix multiplies (non-embedding + the output projection),
    L layers, H heads, Q head size, T the sequence length (the attention term)."""
    n_matmul = count_params(cfg, include_embeddings=False) + cfg.vocab_size * cfg.d_model
    return 6.0 * n_matmul + 12.0 * cfg.n_layers * cfg.n_heads * cfg.head_dim * seq_len
