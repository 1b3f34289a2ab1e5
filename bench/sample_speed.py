"""Sampling speed, measured side by side in one run.

The same decoder shape as bench/trainer_speed.py (d_model 256, 4 layers, 4 heads, SwiGLU 688, vocabulary
4,096), fp32, the same threads, greedy decoding of 512 new tokens after a 16-token prompt (no end-of-tune
stop, so every method writes all 512), decoded by:

1. ``trainer.sample.generate`` with the KV cache (what ``smslab sample`` runs);
2. the same loop recomputing the whole prefix every step (``--no-kv-cache``);
3. Hugging Face ``LlamaForCausalLM.generate`` (its KV cache, SDPA attention) on a model of the same shape
   holding the same weights (q/k rows permuted to its rotate-half rotary layout), so all three must write
   the same tokens — checked, and printed.

It prints tokens/s (new tokens of the whole batch per second) at batch 1 and 8, and the ratios
cached / recompute (target >= 5x) and cached / HF (target >= 1.0x). The methods take turns, --repeats
times, and each keeps its best time, so a busy shared machine slows them alike. Recomputing at batch 8
costs minutes on a small CPU: it runs only with --recompute-batch-8.

Run: .venv/bin/python bench/sample_speed.py [--new-tokens 512] [--threads N] [--repeats 3] [--recompute-batch-8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import ModelConfig
from trainer.model import Decoder
from trainer.sample import SamplingSettings, generate

PROMPT = 16


def config(new_tokens: int) -> ModelConfig:
    return ModelConfig(vocab_size=4096, d_model=256, n_layers=4, n_heads=4, d_ff=688, max_seq_len=PROMPT + new_tokens)


def hf_twin(model: Decoder):  # type: ignore[no-untyped-def]
    """LlamaForCausalLM of the same shape with the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = model.cfg
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads, max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=cfg.norm_eps, tie_word_embeddings=False, attn_implementation="sdpa",
    )).eval()
    hs, C = cfg.head_dim, cfg.d_model
    # Ours rotates pairs (2i, 2i+1) of each head, Llama pairs (i, i + hs/2): reorder q and k rows to match.
    order = torch.cat([torch.arange(0, hs, 2), torch.arange(1, hs, 2)])
    rows = torch.cat([h * hs + order for h in range(cfg.n_heads)])
    with torch.no_grad():
        hf.model.embed_tokens.weight.copy_(model.embed.weight)
        hf.lm_head.weight.copy_(model.lm_head.weight)
        hf.model.norm.weight.copy_(model.norm.weight)
        for ours, theirs in zip(model.blocks, hf.model.layers, strict=True):
            q, k, v = ours.attn.qkv.weight.split(C, dim=0)
            theirs.self_attn.q_proj.weight.copy_(q[rows])
            theirs.self_attn.k_proj.weight.copy_(k[rows])
            theirs.self_attn.v_proj.weight.copy_(v)
            theirs.self_attn.o_proj.weight.copy_(ours.attn.out.weight)
            theirs.mlp.gate_proj.weight.copy_(ours.mlp.gate.weight)
            theirs.mlp.up_proj.weight.copy_(ours.mlp.up.weight)
            theirs.mlp.down_proj.weight.copy_(ours.mlp.down.weight)
            theirs.input_layernorm.weight.copy_(ours.attn_norm.weight)
            theirs.post_attention_layernorm.weight.copy_(ours.mlp_norm.weight)
    return hf


def timed(methods: dict, new_tokens: int, batch: int, repeats: int) -> dict[str, tuple[float, list[list[int]]]]:  # type: ignore[type-arg]
    """Tokens/s of each method (its best of ``repeats`` turns) and the tokens it wrote."""
    best: dict[str, float] = {}
    tokens: dict[str, list[list[int]]] = {}
    for fn in methods.values():
        fn(8)  # warm-up: first-call allocations and kernel selection
    for _ in range(repeats):
        for name, fn in methods.items():
            started = time.perf_counter()
            tokens[name] = fn(new_tokens)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    return {name: (batch * new_tokens / best[name], tokens[name]) for name in methods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recompute-batch-8", action="store_true", help="also time recomputing at batch 8 (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Decoder(config(args.new_tokens)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(10)  # decisive logits: greedy ties between methods would be float noise
    hf = hf_twin(model)
    print(f"threads {torch.get_num_threads()}; fp32; d_model 256, 4 layers, 4 heads, ffn 688, vocab 4096; "
          f"prompt {PROMPT} tokens, {args.new_tokens} new tokens, greedy")

    def ours(batch: int, kv_cache: bool):  # type: ignore[no-untyped-def]
        def run(n: int) -> list[list[int]]:
            settings = SamplingSettings(temperature=0.0, max_new_tokens=n, kv_cache=kv_cache)
            return [list(s.tokens) for s in generate(model, prompts(batch), settings, None, list(range(batch)))]
        return run

    def theirs(batch: int):  # type: ignore[no-untyped-def]
        def run(n: int) -> list[list[int]]:
            ids = torch.tensor(prompts(batch))
            with torch.inference_mode():
                out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)
            return out[:, PROMPT:].tolist()
        return run

    for batch in (1, 8):
        methods = {"KV cache": ours(batch, True), "HF generate": theirs(batch)}
        if batch == 1 or args.recompute_batch_8:
            methods["recompute"] = ours(batch, False)
        results = timed(methods, args.new_tokens, batch, args.repeats)
        for name, (speed, _) in results.items():
            print(f"batch {batch}  {name:<12} {speed:9,.0f} tokens/s")
        cached, cached_tokens = results["KV cache"]
        same = all(tokens == cached_tokens for _, tokens in results.values())
        print(f"batch {batch}  same greedy tokens from every method: {same}")
        if "recompute" in results:
            print(f"batch {batch}  KV cache / recompute : {cached / results['recompute'][0]:6.2f}x  (target >= 5x)")
        print(f"batch {batch}  KV cache / HF        : {cached / results['HF generate'][0]:6.2f}x  (target >= 1.0x)")


def prompts(batch: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 4096, (batch, PROMPT), generator=g).tolist()


if __name__ == "__main__":
    main()
