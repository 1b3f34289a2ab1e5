"""What ``smslab eval run`` does to a run, as one frozen value (torch-free: a campaign's [eval] table builds it).

Only what changes the numbers belongs here: a run evaluated again with equal settings at the same checkpoint is
skipped (evals/run_eval.py compares ``to_dict()`` with what its ``measures.json`` recorded). How the work is
spread (batch size, device, worker processes) changes no number and stays out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PROMPT_KINDS = ("none", "first-bar")  # evals/sampling.py's PROMPTS, repeated here to keep this module torch-free


@dataclass(frozen=True)
class EvalSettings:
    samples: int = 100  # tunes drawn from the checkpoint
    prompt: str = "none"  # "none" or "first-bar" (evals/sampling.py)
    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0  # sample i uses seed + i; also the bootstrap's seed
    reference_tunes: int = 100  # held-out (validation) tunes of the corpus measured beside the samples
    time_limit_s: float = 10.0  # per tool call and stage of one tune (evals/measures.py)

    def check(self) -> None:
        """``ValueError`` naming the first setting out of its range (the sampling ones are checked again by
        trainer/sample.py's ``SamplingSettings.check``)."""
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if self.prompt not in PROMPT_KINDS:
            raise ValueError(f"prompt must be one of {', '.join(PROMPT_KINDS)}, got {self.prompt!r}")
        if self.reference_tunes < 1:
            raise ValueError(f"reference tunes must be at least 1, got {self.reference_tunes}")
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise ValueError(f"time limit must be a finite number of seconds > 0, got {self.time_limit_s}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
