"""Exact, resumable token streams over the corpus shards.

One epoch over a data fraction is its tokens cut into ``W`` windows of
``context + 1`` tokens starting every ``context`` tokens, so each token of the
fraction (but the first) is a prediction target exactly once: U_D = W·context.
Epoch e visits the windows in an order drawn from (seed, e). Sample s of a run
is window ``perm_e[s mod W]`` with e = s div W, a pure function of s — so a run
resumed at optimizer step k starts at sample k·samples_per_step with nothing
skipped and nothing repeated, and the tokens seen D = samples·context exactly.

Samples form micro-batches of ``micro_batch`` samples; micro-batch k goes to
rank k mod world_size. An optimizer step takes ``accumulation × world_size``
consecutive micro-batches: the same samples whatever the number of processes.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trainer.stream_plan import StreamPlan


class WindowStream(Dataset):
    """Micro-batch k of a run: (inputs, targets), each (micro_batch, context) int64."""

    def __init__(self, tokens: np.ndarray, plan: StreamPlan, seed: int) -> None:
        self.tokens = tokens
        self.plan = plan
        self.seed = seed
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.plan.total_steps * self.plan.micro_batches_per_step()

    def window_of_sample(self, sample: int) -> int:
        epoch, position = divmod(sample, self.plan.windows_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.plan.windows_per_epoch)
            self._perm_epoch = epoch
        return int(self._perm[position])

    def __getitem__(self, micro_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.plan.context
        first = micro_index * self.plan.micro_batch
        rows = []
        for sample in range(first, first + self.plan.micro_batch):
            start = self.window_of_sample(sample) * c
            rows.append(np.asarray(self.tokens[start : start + c + 1], dtype=np.int64))
        block = torch.from_numpy(np.stack(rows))
        return block[:, :-1], block[:, 1:]


class RankSampler(Sampler[int]):
    """Micro-batch indices of one rank from ``start`` on: k ≡ rank (mod world_size).

    Its length is the whole run's count for this rank, not what is left: a
    resumed Lightning fit restores how many batches of the epoch were done and
    ends the epoch after length − done more, which is exactly what is left.
    """

    def __init__(self, start: int, end: int, rank: int, world_size: int) -> None:
        self.indices = range(start + rank, end, world_size)
        self.length = len(range(rank, end, world_size))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.indices)

    def __len__(self) -> int:
        return self.length


def validation_windows(tokens: np.ndarray, context: int) -> torch.Tensor:
    """The whole held-out set as non-overlapping windows of context + 1 tokens (the last partial one dropped)."""
    n = (len(tokens) - 1) // context
    if n < 1:
        raise ValueError(f"the validation set has {len(tokens)} tokens, fewer than one context of {context} + 1")
    idx = np.arange(n)[:, None] * context + np.arange(context + 1)[None, :]
    return torch.from_numpy(np.asarray(tokens, dtype=np.int64)[idx])


class ShardDataModule(L.LightningDataModule):
    """The run's training stream as a Lightning data module.

    The first micro-batch is the one after ``start_step`` optimizer steps, and
    each rank gets its own micro-batches, so Lightning's distributed sampler
    stays off (``use_distributed_sampler=False``).
    """

    def __init__(self, tokens: np.ndarray, plan: StreamPlan, seed: int, start_step: int) -> None:
        super().__init__()
        self.stream = WindowStream(tokens, plan, seed)
        self.start_micro = start_step * plan.micro_batches_per_step()

    def train_dataloader(self) -> DataLoader:
        sampler = RankSampler(self.start_micro, len(self.stream), self.trainer.global_rank, self.trainer.world_size)
        return DataLoader(self.stream, batch_size=None, sampler=sampler, num_workers=0)
