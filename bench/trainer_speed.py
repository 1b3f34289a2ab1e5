"""trainer speed on the CPU, measured side by side in one run.

The same model shape and batch (d_model 256, 4 layers, 4 heads, SwiGLU 688,
vocabulary 4,096, context 256, batch 8 sequences, fp32, AdamW) trained by:

1. a minimal plain-PyTorch loop over ``trainer.model.Decoder``  — the baseline;
2. smslab's Lightning module and Trainer (what ``smslab train`` runs);
3. Hugging Face transformers' ``LlamaForCausalLM`` of the same shape (SDPA
   attention) in the same plain loop.

It prints tokens/s of each, Lightning / plain (target >= 0.95x), smslab's
model / LlamaForCausalLM (target >= 1.0x), the MFU of each against this
machine's fp32 matmul peak measured in the same run (target >= 60 % for
Lightning), and the plain loop with bf16 autocast for reference.

Run: .venv/bin/python bench/trainer_speed.py [--steps 30] [--warmup 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import ModelConfig, flops_per_token  # noqa: E402
from trainer.model import Decoder  # noqa: E402
from trainer.module import DecoderModule  # noqa: E402
from trainer.throughput import measure_peak_flops, resolve_precision  # noqa: E402

CFG = ModelConfig(vocab_size=4096, d_model=256, n_layers=4, n_heads=4, d_ff=688, max_seq_len=256)
BATCH = 8


def batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        block = torch.randint(0, CFG.vocab_size, (BATCH, CFG.max_seq_len + 1), generator=g)
        out.append((block[:, :-1], block[:, 1:]))
    return out


def adamw(params) -> torch.optim.Optimizer:  # type: ignore[no-untyped-def]
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def time_loop(step_fn, data, warmup: int) -> float:  # type: ignore[no-untyped-def]
    for x, y in data[:warmup]:
        step_fn(x, y)
    started = time.perf_counter()
    for x, y in data[warmup:]:
        step_fn(x, y)
    elapsed = time.perf_counter() - started
    return (len(data) - warmup) * BATCH * CFG.max_seq_len / elapsed


def train_step(model: torch.nn.Module, loss_of):  # type: ignore[no-untyped-def]
    """One optimizer step of the minimal loop: forward, backward, clip, AdamW."""
    opt = adamw(model.parameters())

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = loss_of(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def plain(data, warmup: int, bf16: bool = False) -> float:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = Decoder(CFG)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(x, y)[1]

    return time_loop(train_step(model, loss_of), data, warmup)


def hf_llama(data, warmup: int) -> float:  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=CFG.vocab_size, hidden_size=CFG.d_model, intermediate_size=CFG.d_ff, num_hidden_layers=CFG.n_layers,
        num_attention_heads=CFG.n_heads, num_key_value_heads=CFG.n_heads, max_position_embeddings=CFG.max_seq_len,
        tie_word_embeddings=False, attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=x).logits
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))

    return time_loop(train_step(model, loss_of), data, warmup)


def lightning(data, warmup: int) -> float:  # type: ignore[no-untyped-def]
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    class Timer(Callback):
        def __init__(self) -> None:
            self.started = 0.0
            self.elapsed = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            if batch_idx == warmup:
                self.started = time.perf_counter()

        def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            self.elapsed = time.perf_counter() - self.started

    torch.manual_seed(0)
    module = DecoderModule(CFG, lr=1e-3, final_lr=1e-3, total_steps=len(data), warmup_fraction=0.0)
    timer = Timer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=len(data), gradient_clip_val=1.0, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                        callbacks=[timer], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    return (len(data) - warmup) * BATCH * CFG.max_seq_len / timer.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = batches(args.steps + args.warmup)
    peak = measure_peak_flops("cpu", "32", seconds=2.0).flops_per_s
    fpt = flops_per_token(CFG, CFG.max_seq_len)
    print(f"threads {torch.get_num_threads()}; fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; "
          f"model {sum(p.numel() for p in Decoder(CFG).parameters()) / 1e6:.2f}M parameters, {fpt / 1e6:.1f} MFLOP/token")
    results = {}
    for name, fn in (("plain loop", lambda: plain(data, args.warmup)),
                     ("Lightning", lambda: lightning(data, args.warmup)),
                     ("HF LlamaForCausalLM", lambda: hf_llama(data, args.warmup)),
                     ("plain loop, bf16 autocast", lambda: plain(data, args.warmup, bf16=True))):
        results[name] = fn()
        print(f"{name:<26} {results[name]:9,.0f} tokens/s   MFU {results[name] * fpt / peak:6.1%}")
    print(f"Lightning / plain loop        : {results['Lightning'] / results['plain loop']:.3f}x  (target >= 0.95x)")
    print(f"smslab plain / HF Llama       : {results['plain loop'] / results['HF LlamaForCausalLM']:.3f}x  (target >= 1.0x)")
    print(f"smslab Lightning / HF Llama   : {results['Lightning'] / results['HF LlamaForCausalLM']:.3f}x")
    print(f"bf16 autocast / fp32 (plain)  : {results['plain loop, bf16 autocast'] / results['plain loop']:.3f}x  "
          f"(oneDNN bf16 matmul on this CPU: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; "
          f"--precision auto chooses {resolve_precision('auto')})")


if __name__ == "__main__":
    main()
