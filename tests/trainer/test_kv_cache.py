"""The KV cache and the sampling loop: cached logits are the uncached ones, and sampling is reproducible."""

from __future__ import annotations

import pytest
import torch

from trainer.config import ModelConfig
from trainer.model import Decoder, KVCache
from trainer.sample import STOP_EOS, STOP_MAX_TOKENS, SamplingSettings, generate, next_tokens

CFG = ModelConfig(vocab_size=61, d_model=32, n_layers=3, n_heads=4, d_ff=64, max_seq_len=48)
GREEDY = SamplingSettings(temperature=0.0, max_new_tokens=20)


@pytest.fixture(scope="module")
def model() -> Decoder:
    torch.manual_seed(0)
    decoder = Decoder(CFG).eval()
    # Larger logits than the init's make sampling decisions depend on the model, not on near-uniform noise.
    with torch.no_grad():
        decoder.lm_head.weight.mul_(20)
    return decoder


def uncached(model: Decoder, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids]))[0][0]  # (T, V)


def test_cached_logits_equal_uncached_ones_at_every_step(model: Decoder):
    ids = torch.randint(0, CFG.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1))
    cache = KVCache(40)
    with torch.no_grad():
        full = model(ids)[0]  # (2, 40, V)
        steps = [model(ids[:, :7], cache=cache)[0]]  # the prompt at once
        steps += [model(ids[:, t : t + 1], cache=cache)[0] for t in range(7, 30)]  # one token a step
        steps.append(model(ids[:, 30:], cache=cache)[0])  # a block after cached slots (its causal mask shifts)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)
    assert cache.length == 40


def test_left_padded_rows_get_the_logits_of_each_row_decoded_alone(model: Decoder):
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, CFG.vocab_size, (n,), generator=g).tolist() for n in (9, 3, 6)]
    follow = torch.randint(0, CFG.vocab_size, (3, 12), generator=g)
    longest = 9
    pad = torch.tensor([longest - len(p) for p in prompts])
    ids = torch.tensor([[0] * (longest - len(p)) + p for p in prompts])
    cache = KVCache(longest + 12, pad)
    with torch.no_grad():
        prefill = model(ids, cache=cache)[0]
        steps = [model(follow[:, t : t + 1], cache=cache)[0] for t in range(12)]
    for row, prompt in enumerate(prompts):
        alone = uncached(model, prompt + follow[row].tolist())  # (len + 12, V)
        torch.testing.assert_close(prefill[row, pad[row]:], alone[: len(prompt)], rtol=0, atol=1e-5)
        decoded = torch.stack([s[row, 0] for s in steps])
        torch.testing.assert_close(decoded, alone[len(prompt) - 1 + 1 :], rtol=0, atol=1e-5)


def test_the_cache_refuses_more_than_its_capacity_or_the_context(model: Decoder):
    cache = KVCache(4)
    with torch.no_grad(), pytest.raises(ValueError, match="holds 4 positions"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
    with torch.no_grad(), pytest.raises(ValueError, match="context of 48"):
        model(torch.zeros(1, 49, dtype=torch.long), cache=KVCache(64))


@pytest.mark.parametrize("prompts", [[[5]] * 3, [[5, 9, 2, 7], [11], [3, 3]]], ids=["equal", "left-padded"])
def test_greedy_with_and_without_the_cache_writes_the_same_tokens(model: Decoder, prompts):
    cached = generate(model, prompts, GREEDY, eos_id=None, seeds=[0, 1, 2])
    recomputed = generate(model, prompts, SamplingSettings(temperature=0.0, max_new_tokens=20, kv_cache=False), None, [0, 1, 2])
    assert cached == recomputed
    for prompt, sample in zip(prompts, cached, strict=True):
        assert len(sample.tokens) == 20 and sample.stop == STOP_MAX_TOKENS
        # Each greedy token is the argmax of the uncached model over the prompt and what came before it.
        ids = [*prompt, *sample.tokens]
        assert uncached(model, ids[:-1])[len(prompt) - 1 :].argmax(-1).tolist() == list(sample.tokens)


def test_greedy_is_deterministic_and_top_k_1_is_greedy(model: Decoder):
    prompts = [[1, 2, 3], [4]]
    greedy = generate(model, prompts, GREEDY, None, [0, 1])
    assert generate(model, prompts, GREEDY, None, [7, 8]) == greedy  # seeds play no part
    top1 = SamplingSettings(temperature=1.3, top_k=1, max_new_tokens=20)
    assert generate(model, prompts, top1, None, [3, 4]) == greedy
    tiny_nucleus = SamplingSettings(temperature=1.0, top_p=1e-9, max_new_tokens=20)
    assert generate(model, prompts, tiny_nucleus, None, [5, 6]) == greedy


def test_a_seeded_sample_is_reproducible_and_independent_of_its_batch(model: Decoder):
    settings = SamplingSettings(temperature=1.0, top_k=20, top_p=0.9, max_new_tokens=25)
    prompts = [[1], [2, 3], [4, 5, 6]]
    first = generate(model, prompts, settings, None, [10, 11, 12])
    assert generate(model, prompts, settings, None, [10, 11, 12]) == first
    assert generate(model, prompts[1:2], settings, None, [11]) == first[1:2]  # alone, it is the same sample
    assert generate(model, prompts, settings, None, [20, 21, 22]) != first


def test_the_end_of_tune_token_stops_a_sample_and_is_recorded(model: Decoder):
    free = generate(model, [[1], [2]], GREEDY, None, [0, 0])
    eos = free[0].tokens[5]
    stop_at = free[0].tokens.index(eos)
    stopped = generate(model, [[1], [2]], GREEDY, eos, [0, 0])
    assert stopped[0].stop == STOP_EOS and stopped[0].tokens == free[0].tokens[:stop_at]
    assert eos not in stopped[1].tokens  # the other row stops on its own or runs to the cap
    assert stopped[1].stop == (STOP_EOS if eos in free[1].tokens else STOP_MAX_TOKENS)


def test_the_token_cap_is_at_most_the_context_left(model: Decoder):
    samples = generate(model, [list(range(40)), [3]], SamplingSettings(temperature=0.0, max_new_tokens=100), None, [0, 1])
    assert [len(s.tokens) for s in samples] == [8, 8]  # context 48 − the longest prompt of 40
    with pytest.raises(ValueError, match="leaves no room"):
        generate(model, [list(range(48))], GREEDY, None, [0])


def test_top_k_and_top_p_only_draw_from_the_kept_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(400, 1)  # (400, 4)
    generators = [torch.Generator().manual_seed(i) for i in range(400)]
    top2 = next_tokens(logits, SamplingSettings(top_k=2), generators)
    assert set(top2.tolist()) == {0, 1}
    nucleus = next_tokens(logits, SamplingSettings(top_p=0.7), generators)  # 0.5 + 0.3 reach 0.7
    assert set(nucleus.tolist()) == {0, 1}
    plain = next_tokens(logits, SamplingSettings(), generators)
    assert set(plain.tolist()) == {0, 1, 2, 3}
    assert abs((plain == 0).float().mean().item() - 0.5) < 0.1


@pytest.mark.parametrize("field, value", [("temperature", -1.0), ("top_k", -1), ("top_p", 0.0), ("top_p", 1.5),
                                          ("max_new_tokens", 0), ("seed", -2)])
def test_settings_out_of_range_are_refused(field, value):
    with pytest.raises(ValueError, match=field.replace("_", "[ -]")):
        SamplingSettings(**{field: value}).check()
