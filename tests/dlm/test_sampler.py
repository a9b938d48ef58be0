import pytest
import torch

from dlmpo.dlm import ALGS, Sampler, SamplerConfig
from dlmpo.errors import UserError

GREEDY = dict(temperature=0.0, top_p=None)


def masked_batch(model, n_masks=12, rows=2, scattered=False):
    ids = model.tokenizer("You are a careful classifier of movie reviews. Be brief and exact.",
                          add_special_tokens=False)["input_ids"]
    if scattered:
        seq = ids[:2] + [model.mask_token_id] * (n_masks // 2) + ids[2:6] + [model.mask_token_id] * (n_masks - n_masks // 2) + ids[6:]
    else:
        seq = ids[:3] + [model.mask_token_id] * n_masks + ids[3:]
    return torch.tensor([seq] * rows)


@pytest.mark.parametrize("alg", ALGS)
def test_invariants_for_every_rule(tiny, alg):
    x = masked_batch(tiny, scattered=True)
    cfg = SamplerConfig(steps=6, alg=alg, temperature=0.9, top_p=0.9, seed=3)
    out = Sampler(tiny, cfg).sample(x)
    fixed = x != tiny.mask_token_id
    assert torch.equal(out.tokens[fixed], x[fixed]), "unmasked tokens must never change"
    assert not (out.tokens == tiny.mask_token_id).any(), "every mask is filled"
    assert out.nfe <= cfg.steps
    again = Sampler(tiny, cfg).sample(x)
    assert torch.equal(out.tokens, again.tokens), "same seed, same output"


def test_seed_changes_samples(tiny):
    x = masked_batch(tiny)
    a = Sampler(tiny, SamplerConfig(steps=4, temperature=1.0, seed=0)).sample(x).tokens
    b = Sampler(tiny, SamplerConfig(steps=4, temperature=1.0, seed=1)).sample(x).tokens
    assert not torch.equal(a, b)


def test_batched_rows_differ_when_sampling(tiny):
    out = Sampler(tiny, SamplerConfig(steps=4, temperature=1.0)).sample(masked_batch(tiny, rows=3)).tokens
    assert not torch.equal(out[0], out[1])


def test_nfe_never_exceeds_masks_or_steps(tiny):
    x = masked_batch(tiny, n_masks=5)
    out = Sampler(tiny, SamplerConfig(steps=32, **GREEDY)).sample(x)
    assert out.nfe == 5  # one token per step, stops when done


def test_threshold_decoding_uses_fewer_forwards_than_masks(tiny):
    x = masked_batch(tiny, n_masks=16)
    plain = Sampler(tiny, SamplerConfig(steps=16, **GREEDY)).sample(x)
    # a random model is never confident: a threshold under its top-1 probabilities reveals many
    pos = (x == tiny.mask_token_id).nonzero()[:, 1].view(x.shape[0], -1)
    probs = tiny.raw_logits(x, pos - 1 if tiny.shift else pos).softmax(-1).max(-1).values
    tau = float(probs.median())
    fast = Sampler(tiny, SamplerConfig(steps=16, threshold=tau, **GREEDY)).sample(x)
    assert plain.nfe == 16
    assert fast.nfe < 16 and fast.tokens_per_forward > 1
    assert not (fast.tokens == tiny.mask_token_id).any()


def test_block_decoding_goes_left_to_right(tiny_dream):
    x = masked_batch(tiny_dream, n_masks=8, rows=1)
    seen = []
    original = tiny_dream.raw_logits

    def spy(ids, rows=None):
        seen.append((ids[0] == tiny_dream.mask_token_id).nonzero().squeeze(1).tolist())
        return original(ids, rows)

    tiny_dream.raw_logits = spy
    try:
        Sampler(tiny_dream, SamplerConfig(steps=4, block_length=4, kv_reuse=False)).sample(x)
    finally:
        del tiny_dream.raw_logits
    first_block = set(seen[0][:4])
    # after the first block's 2 steps, its positions are all revealed while the second block is untouched
    assert not first_block & set(seen[2]) and len(seen[2]) == 4


def test_dream_logits_are_shifted(tiny_dream):
    """Position i must be filled from the logits at i-1: force a token there and watch it land at i."""
    x = masked_batch(tiny_dream, n_masks=1, rows=1)
    pos = int((x[0] == tiny_dream.mask_token_id).nonzero()[0])
    original = tiny_dream.raw_logits
    forced = 42

    def rigged(ids, rows=None):
        raw = original(ids).clone()
        raw[:, pos - 1, forced] = 1e4  # what the model says *after* position pos-1
        return raw.gather(1, rows[..., None].expand(-1, -1, raw.shape[-1]))

    tiny_dream.raw_logits = rigged
    try:
        out = Sampler(tiny_dream, SamplerConfig(steps=1, kv_reuse=False, **GREEDY)).sample(x)
    finally:
        del tiny_dream.raw_logits
    assert out.tokens[0, pos] == forced


@pytest.mark.parametrize("arch", ["llada", "mlm"])
def test_llada_and_mlm_are_not_shifted(arch):
    from dlmpo.dlm import load_dlm

    model = load_dlm(f"tiny-random:{arch}", device="cpu")
    assert model.shift is False
    x = masked_batch(model, n_masks=1, rows=1)
    pos = int((x[0] == model.mask_token_id).nonzero()[0])
    original = model.raw_logits

    def rigged(ids, rows=None):
        raw = original(ids).clone()
        raw[:, pos, 42] = 1e4
        return raw.gather(1, rows[..., None].expand(-1, -1, raw.shape[-1]))

    model.raw_logits = rigged
    out = Sampler(model, SamplerConfig(steps=1, kv_reuse=False, **GREEDY)).sample(x)
    assert out.tokens[0, pos] == 42


@pytest.mark.parametrize("arch", ["dream", "llada"])
def test_kv_reuse_refresh_every_step_equals_plain(arch):
    from dlmpo.dlm import load_dlm

    model = load_dlm(f"tiny-random:{arch}", device="cpu")
    x = masked_batch(model, n_masks=10, scattered=True)
    for kw in ({}, {"temperature": 0.8, "top_k": 50}, {"block_length": 5}):
        plain = Sampler(model, SamplerConfig(steps=10, kv_reuse=False, **{**GREEDY, **kw})).sample(x)
        cached = Sampler(model, SamplerConfig(steps=10, kv_refresh=1, **{**GREEDY, **kw})).sample(x)
        assert torch.equal(plain.tokens, cached.tokens)
        assert cached.full_forwards == cached.nfe == plain.nfe


def test_kv_reuse_skips_full_forwards(tiny_dream):
    x = masked_batch(tiny_dream, n_masks=8)
    out = Sampler(tiny_dream, SamplerConfig(steps=8, kv_refresh=4)).sample(x)
    assert out.nfe == 8 and out.full_forwards == 2
    fixed = x != tiny_dream.mask_token_id
    assert torch.equal(out.tokens[fixed], x[fixed]) and not (out.tokens == tiny_dream.mask_token_id).any()


def test_partial_forward_matches_full_forward_when_context_is_fresh(tiny_dream):
    """The cached path computes the active positions exactly as a full forward would, given K/V
    of the same sequence."""
    x = masked_batch(tiny_dream, n_masks=6)
    every = torch.arange(x.shape[1]).expand(x.shape[0], -1)
    full, kv = tiny_dream.raw_logits_with_kv(x, every)
    active = torch.arange(2, 10)
    rest = torch.tensor([i for i in range(x.shape[1]) if i not in set(active.tolist())])
    rows = torch.tensor([[3, 5, 9]] * x.shape[0])
    part = tiny_dream.raw_logits_partial(x, active, [(k[:, :, rest], v[:, :, rest]) for k, v in kv], rows)
    assert torch.allclose(part, full[:, [3, 5, 9]], atol=1e-4)


def test_mlm_refuses_kv_reuse():
    from dlmpo.dlm import load_dlm

    model = load_dlm("tiny-random:mlm", device="cpu")
    with pytest.raises(UserError, match="does not support K/V reuse"):
        Sampler(model, SamplerConfig(kv_refresh=2))


@pytest.mark.parametrize("kwargs, message", [
    ({"alg": "greedy"}, "Unknown remasking rule"),
    ({"steps": 0}, "steps must be"),
    ({"top_p": 1.5}, "top_p"),
    ({"threshold": 0}, "threshold"),
])
def test_bad_config(tiny_dream, kwargs, message):
    with pytest.raises(UserError, match=message):
        Sampler(tiny_dream, SamplerConfig(**kwargs))


def test_no_mask_and_unequal_masks(tiny_dream):
    x = masked_batch(tiny_dream, rows=2)
    with pytest.raises(UserError, match="no mask"):
        Sampler(tiny_dream, SamplerConfig()).sample(torch.tensor([[1, 2, 3]]))
    x[1, 3] = 5
    with pytest.raises(UserError, match="same number of masks"):
        Sampler(tiny_dream, SamplerConfig()).sample(x)


def test_a_rows_draws_do_not_depend_on_the_batch(tiny_dream):
    """Per-row noise: candidate i samples the same text whether 2 or 4 candidates share its batch."""
    cfg = SamplerConfig(steps=6, temperature=1.0, alg_temp=0.5, seed=5)
    two = Sampler(tiny_dream, cfg).sample(masked_batch(tiny_dream, rows=2)).tokens
    four = Sampler(tiny_dream, cfg).sample(masked_batch(tiny_dream, rows=4)).tokens
    assert torch.equal(two, four[:2])
    assert not torch.equal(four[2], four[3])


def test_reference_noise_draws_over_the_whole_batch(tiny_dream):
    cfg = SamplerConfig(steps=6, temperature=1.0, seed=5, noise="reference")
    two = Sampler(tiny_dream, cfg).sample(masked_batch(tiny_dream, rows=2)).tokens
    four = Sampler(tiny_dream, cfg).sample(masked_batch(tiny_dream, rows=4)).tokens
    assert not torch.equal(two, four[:2])


@pytest.mark.parametrize("reuse", [dict(kv_reuse=False), dict(kv_refresh=4)])
def test_candidates_of_one_canvas_share_its_first_forward(tiny_dream, reuse):
    """Identical rows are computed once (one row, expanded): the same tokens as computing each."""
    x = masked_batch(tiny_dream, n_masks=8, rows=3)
    batches = []
    for name in ("raw_logits", "raw_logits_with_kv"):
        original = getattr(tiny_dream, name)
        setattr(tiny_dream, name, lambda ids, rows, f=original: batches.append(ids.shape[0]) or f(ids, rows))
    cfg = SamplerConfig(steps=8, temperature=1.0, seed=2, **reuse)
    try:
        shared = Sampler(tiny_dream, cfg).sample(x).tokens
    finally:
        del tiny_dream.raw_logits, tiny_dream.raw_logits_with_kv
    assert batches[0] == 1 and all(b == 3 for b in batches[1:])
    assert torch.equal(shared[0], Sampler(tiny_dream, cfg).sample(x[:1]).tokens[0])


def test_kv_reuse_computes_the_context_once_per_block_where_the_model_can(tiny):
    """Without kv_refresh, reused K/V is computed at each block's first step only; a model without
    K/V reuse (a masked LM) samples in full forwards instead of refusing."""
    x = masked_batch(tiny, n_masks=8)
    out = Sampler(tiny, SamplerConfig(steps=8, kv_reuse=True, block_length=4)).sample(x)
    assert out.nfe == 8
    assert out.full_forwards == (2 if tiny.supports_kv_reuse else 8)
    fixed = x != tiny.mask_token_id
    assert torch.equal(out.tokens[fixed], x[fixed]) and not (out.tokens == tiny.mask_token_id).any()

