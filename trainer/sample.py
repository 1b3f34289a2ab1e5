"""Sampling token sequences from the decoder: temperature, top-k, top-p, a seed per sample, batched.

This is the model-level loop only (token ids in, token ids out); ``evals/sampling.py`` turns a checkpoint
into prompts, samples and files. Decoding is incremental through ``trainer.model.KVCache`` unless
``kv_cache`` is off, in which case every step recomputes the whole prefix (the reference the cache is
tested and benchmarked against).

Reproducibility: sample i draws its randomness from its own ``torch.Generator`` seeded with its own seed
(the pipeline uses ``seed + i``), one uniform number per step, so a sample does not depend on which other
samples share its batch, nor on the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.model import Decoder, KVCache

STOP_EOS = "eos"  # the model wrote the end-of-tune token
STOP_MAX_TOKENS = "max_tokens"  # the token cap (or the end of the context) came first


@dataclass(frozen=True)
class SamplingSettings:
    """How to draw each next token, and when to stop. temperature 0 is greedy (argmax); top_k 0 and
    top_p 1 switch those filters off; when both are on, top-k is applied first."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int = 0
    kv_cache: bool = True

    def check(self) -> None:
        """``ValueError`` naming the first setting out of its range."""
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0 (0: greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top-k must be >= 0 (0: off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top-p must lie in (0, 1] (1: off), got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max new tokens must be at least 1, got {self.max_new_tokens}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")


@dataclass(frozen=True)
class Generated:
    """One sample: its new tokens (the end-of-tune token left out) and why it stopped."""

    tokens: tuple[int, ...]
    stop: str  # STOP_EOS or STOP_MAX_TOKENS


def next_tokens(logits: torch.Tensor, settings: SamplingSettings, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """The next token of each row, (B,), from the last position's logits (B, V)."""
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / settings.temperature
    index = None  # maps a column of ``values`` back to its token, when the columns are a sorted subset
    if 0 < settings.top_k < logits.size(-1):
        values, index = logits.topk(settings.top_k, dim=-1)  # (B, k), largest first
    elif settings.top_p < 1:
        values, index = logits.sort(dim=-1, descending=True)  # (B, V)
    else:
        values = logits
    probs = values.softmax(dim=-1).double()  # float64: the inverse-CDF draw below never lands past the end
    if settings.top_p < 1:
        # The nucleus: the fewest most likely tokens whose mass reaches top_p (a token stays while the
        # mass before it is below top_p, so the most likely one always stays).
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs >= settings.top_p, 0.0)
    # One uniform draw per row from that row's own generator (on the CPU: the same numbers on any device).
    uniform = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in generators]).to(probs.device)
    cdf = probs.cumsum(dim=-1)  # (B, K), unnormalised after filtering
    # right=True: the first column whose cdf exceeds the draw, never a column of probability 0.
    choice = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).clamp(max=cdf.size(-1) - 1)
    if index is not None:
        choice = index.gather(-1, choice)
    return choice.squeeze(-1)  # (B,)


@torch.inference_mode()
def generate(model: Decoder, prompts: Sequence[Sequence[int]], settings: SamplingSettings, eos_id: int | None,
             seeds: Sequence[int]) -> list[Generated]:
    """Continue each prompt until it writes ``eos_id`` or has ``max_new_tokens`` new tokens (fewer when the
    context ends first: at most context − longest prompt). The prompts form one batch, left-padded."""
    settings.check()
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (start from the end-of-tune token)")
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(p) for p in prompts]
    longest = max(lengths)
    budget = min(settings.max_new_tokens, model.cfg.max_seq_len - longest)
    if budget < 1:
        raise ValueError(f"a prompt of {longest} tokens leaves no room in the model's context of {model.cfg.max_seq_len}")
    pad = torch.tensor([longest - n for n in lengths])  # (B,) left-padding slots of each row
    rows = [[0] * (longest - len(p)) + list(p) for p in prompts]  # any id will do under the padding
    sequence = torch.tensor(rows, dtype=torch.long, device=device)  # (B, longest)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    cache = KVCache(longest + budget, pad) if settings.kv_cache else None
    logits = _forward(model, sequence, cache, pad)  # (B, longest, V)
    new: list[list[int]] = [[] for _ in prompts]
    stops = [STOP_MAX_TOKENS] * len(prompts)
    running = set(range(len(prompts)))
    for step in range(budget):
        chosen = next_tokens(logits[:, -1], settings, generators)  # (B,)
        for row, token in enumerate(chosen.tolist()):
            if row not in running:
                continue  # a finished row keeps decoding with the batch; its tokens are dropped
            if token == eos_id:
                stops[row] = STOP_EOS
                running.discard(row)
            else:
                new[row].append(token)
        if not running or step == budget - 1:
            break
        step_ids = chosen[:, None]  # (B, 1)
        if cache is not None:
            logits = _forward(model, step_ids, cache, pad)  # (B, 1, V)
        else:
            sequence = torch.cat([sequence, step_ids], dim=1)  # (B, T + 1)
            logits = _forward(model, sequence, None, pad)  # (B, T + 1, V): the whole prefix again
    return [Generated(tuple(tokens), stop) for tokens, stop in zip(new, stops, strict=True)]


def _forward(model: Decoder, ids: torch.Tensor, cache: KVCache | None, pad: torch.Tensor) -> torch.Tensor:
    if cache is None and bool(pad.any()):
        cache = KVCache(ids.size(1), pad)  # a throwaway cache carries the padding of a recomputed prefix
    return model(ids, cache=cache)[0]
