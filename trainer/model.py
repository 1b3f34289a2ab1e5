"""MuPT's decoder in plain torch (§3.1): LLaMA-style pre-norm blocks with RMSNorm,
SwiGLU MLP, rotary position embeddings and causal attention through
``scaled_dot_product_attention``. No training framework here: Lightning wraps it
in ``trainer/module.py``.

Incremental decoding (``KVCache``): each layer keeps the keys and values of every
position seen so far, so a new token costs one position of work instead of the
whole prefix. Prompts of different lengths share a batch by **left-padding**:
row b's first ``pad[b]`` slots are padding, its rotary positions start at 0 on
its first real token (position = slot − pad[b]), and no real query ever attends
to a padding slot; a row's logits are then those of the row decoded alone (the
tests hold them to 1e-5 in float32). Left-padding rather than equal-length
groups because every row then takes its next token at the same slot, so one
forward serves the whole batch at every step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · g   (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (x.float() * norm).type_as(x) * self.weight


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles (Su et al. 2021), each (max_seq_len, head_dim/2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., 2i], x[..., 2i+1]) of x (B, nh, T, hs) by the position's angles."""
    xf = x.float()
    x1, x2 = xf[..., 0::2], xf[..., 1::2]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


class KVCache:
    """Keys and values of every layer for incremental decoding, preallocated for ``capacity`` slots.

    ``pad`` (B,) is the number of left-padding slots of each row (None: no row is padded). A forward with
    the cache writes its T new positions at slots [length, length + T) and attends over [0, length + T);
    ``length`` grows by T after each forward. Buffers take the dtype and device of the first keys written.
    """

    def __init__(self, capacity: int, pad: torch.Tensor | None = None) -> None:
        self.capacity = capacity
        self.pad = pad if pad is not None and bool(pad.any()) else None
        self.length = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new k, v (B, nh, T, hs); return all of them so far, (B, nh, length + T, hs)."""
        B, nh, T, hs = k.shape
        if layer == len(self.keys):
            self.keys.append(k.new_empty(B, nh, self.capacity, hs))
            self.values.append(v.new_empty(B, nh, self.capacity, hs))
        end = self.length + T
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def positions(self, rope_cos: torch.Tensor, rope_sin: torch.Tensor,
                  T: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """cos, sin and the attention mask of the next T slots. Without padding: (T, hs/2) slices and no
        mask where none is needed; with it: (B, 1, T, hs/2) tables and a (B, 1, T, length + T) mask."""
        start, end = self.length, self.length + T
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions; {end} were asked for")
        device = rope_cos.device
        slots = torch.arange(end, device=device)
        queries = slots[start:, None]  # (T, 1): each new slot
        if self.pad is None:
            # One new token may see every slot; a block starting at 0 is plain causal (SDPA's is_causal);
            # only a block after earlier slots needs its causal mask shifted.
            mask = None if T == 1 or start == 0 else (slots[None, :] <= queries)[None, None]
            return rope_cos[start:end], rope_sin[start:end], mask
        pad = self.pad.to(device)[:, None]  # (B, 1)
        pos = (slots[None, start:] - pad).clamp(min=0)  # (B, T): a padding slot sits at position 0
        cos, sin = rope_cos[pos][:, None], rope_sin[pos][:, None]  # (B, 1, T, hs/2)
        # A real query sees the real slots up to its own; a padding query sees only itself, so that
        # no row of the softmax is empty (an empty row is NaN, and NaN values poison 0-weighted sums).
        real = slots[None, None, :] >= pad[:, :, None]  # (B, 1, S)
        mask = (real | (slots[None, None, :] == queries[None])) & (slots[None, None, :] <= queries[None])
        return cos, sin, mask[:, None]  # mask (B, 1, T, S)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        v = v.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, nh, S, hs), S = slots so far
        # SDPA's is_causal aligns its mask top-left, right only when queries and keys start together.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and k.size(2) == T)
        return self.out(y.transpose(1, 2).contiguous().view(B, T, C))


class SwiGLU(nn.Module):
    """W2 · (Swish(W1·x) ⊙ W3·x)   (Shazeer 2020)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache, layer, mask)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # Scaled init of the residual projections (GPT-2): keeps the residual stream's
        # variance independent of depth.
        for name, param in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) of ``idx`` (B, T), and the loss when ``targets`` are given. With ``cache``,
        ``idx`` continues the cached slots (see ``KVCache``), and the cache takes its keys and values."""
        T = idx.size(1)  # idx (B, T)
        end = T + (cache.length if cache is not None else 0)
        if end > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {end} tokens exceeds the model's context of {self.cfg.max_seq_len}")
        x = self.embed(idx)  # (B, T, C)
        mask = None
        if cache is None:
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        else:
            cos, sin, mask = cache.positions(self.rope_cos, self.rope_sin, T)
        for layer, block in enumerate(self.blocks):
            x = block(x, cos, sin, cache, layer, mask)
        if cache is not None:
            cache.length = end
        logits = self.lm_head(self.norm(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss
