"""How a run walks its data fraction: windows per epoch, samples per optimizer step, steps.

Torch-free arithmetic (``trainer/data.py`` streams the tokens by this plan), so
that a run's U_D, planned D and step count are known without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamPlan:
    context: int
    windows_per_epoch: int
    micro_batch: int
    samples_per_step: int
    total_steps: int

    @property
    def unique_tokens(self) -> int:
        """U_D: distinct target tokens of one epoch."""
        return self.windows_per_epoch * self.context

    @property
    def tokens_per_step(self) -> int:
        return self.samples_per_step * self.context

    @property
    def total_tokens(self) -> int:
        """D at the end of the run."""
        return self.total_steps * self.tokens_per_step

    def micro_batches_per_step(self) -> int:
        return self.samples_per_step // self.micro_batch


def plan_stream(
    n_tokens: int, context: int, batch_tokens: int, micro_batch: int, world_size: int,
    epochs: float | None, tokens: int | None,
) -> StreamPlan:
    """How many windows, samples per step and steps a run has; errors say what to change."""
    windows = (n_tokens - 1) // context
    if windows < 1:
        raise ValueError(f"the data fraction has {n_tokens} tokens, fewer than one context of {context} + 1")
    if batch_tokens % context:
        raise ValueError(f"batch of {batch_tokens} tokens is not a multiple of the context {context}")
    samples_per_step = batch_tokens // context
    if samples_per_step % (micro_batch * world_size):
        raise ValueError(
            f"{samples_per_step} samples per step cannot be split into micro-batches of {micro_batch} "
            f"on {world_size} process(es); choose a batch of a multiple of {micro_batch * world_size * context} tokens"
        )
    if (epochs is None) == (tokens is None):
        raise ValueError("give exactly one of epochs or tokens")
    target = epochs * windows * context if epochs is not None else float(tokens)  # type: ignore[operator]
    if target <= 0:
        raise ValueError("the token budget must be positive")
    steps = max(1, round(target / (samples_per_step * context)))
    return StreamPlan(context, windows, micro_batch, samples_per_step, steps)
