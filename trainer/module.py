"""The Lightning module: MuPT's training recipe (Appendix C) around the plain-torch decoder.

AdamW with beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight decay 0.1 on the
weight matrices (not on norms); a cosine schedule with 10 % linear warm-up from
the peak to the final learning rate; gradient clipping at 1.0 (set on the
Trainer). Gradient accumulation and bf16 autocast are the Trainer's too.
"""

from __future__ import annotations

import math

import lightning as L
import torch

from trainer.model import Decoder, ModelConfig


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int, peak: float, final: float) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warm-up, then cosine to ``final``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final + 0.5 * (peak - final) * (1.0 + math.cos(math.pi * progress))


class DecoderModule(L.LightningModule):
    def __init__(
        self, cfg: ModelConfig, lr: float, final_lr: float, total_steps: int, warmup_fraction: float = 0.1,
        weight_decay: float = 0.1,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Decoder(cfg)
        self.lr = lr
        self.final_lr = final_lr
        self.total_steps = total_steps
        self.warmup_steps = int(round(warmup_fraction * total_steps))
        self.weight_decay = weight_decay

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        inputs, targets = batch
        _, loss = self.model(inputs, targets)
        assert loss is not None
        # Lightning divides "loss" by the accumulation count in the outputs callbacks see;
        # "train_loss" reaches them as computed.
        return {"loss": loss, "train_loss": loss.detach()}

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr, betas=(0.9, 0.95), eps=1e-8,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: cosine_with_warmup(step, self.warmup_steps, self.total_steps, self.lr, self.final_lr) / self.lr,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @torch.no_grad()
    def validation_loss(self, windows: torch.Tensor, batch_size: int) -> float:
        """Mean token loss over the whole held-out set (every window, every target)."""
        was_training = self.model.training
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, windows.size(0), batch_size):
            block = windows[start : start + batch_size].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16()):
                logits, _ = self.model(block[:, :-1])
            loss = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.size(-1)), block[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += block[:, 1:].numel()
        self.model.train(was_training)
        return total / count

    def _bf16(self) -> bool:
        precision = str(getattr(self.trainer, "precision", "32")) if self._trainer is not None else "32"
        return precision.startswith("bf16")
