"""LLaDA against its upstream code: a random reference LLaDAModelLM saved as a checkpoint loads
natively into our module (no remote code, K/V reuse) with the same logits, and our sampler with
blocks reproduces dllm's MDLM sampler (LLaDA's low-confidence remasking)."""

import copy
import json
import shutil

import pytest
import torch
from reference_models import import_reference, reference_llada, save_checkpoint

from dlmpo.dlm import Sampler, SamplerConfig, load_dlm
from dlmpo.dlm.base import NativeDLM
from dlmpo.dlm.llada import llada_native_config, load_llada

ROWS_TEXT = ["You are a careful classifier of movie reviews.", "Answer with one word: positive or negative"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_dlm("tiny-random:llada", device="cpu").tokenizer


@pytest.fixture(scope="module")
def reference(tokenizer):
    return reference_llada(len(tokenizer), tokenizer.mask_token_id, tokenizer.eos_token_id)


@pytest.fixture(scope="module")
def checkpoint(reference, tokenizer, tmp_path_factory):
    return save_checkpoint(reference, tokenizer, tmp_path_factory.mktemp("llada"),
                           remote_tokenizer="tokenization_llada.LLaDATokenizer")


@pytest.fixture(scope="module")
def ours(checkpoint):
    return load_dlm(f"llada:{checkpoint}", device="cpu")


@pytest.fixture(scope="module")
def prompt(tokenizer):
    rows = [tokenizer(t)["input_ids"] for t in ROWS_TEXT]
    width = min(map(len, rows))
    return torch.tensor([r[:width] for r in rows])


def test_loads_natively(ours, tokenizer):
    assert isinstance(ours, NativeDLM) and ours.supports_kv_reuse
    assert ours.family == "llada" and ours.shift is False
    assert ours.mask_token_id == tokenizer.mask_token_id and ours.tokenizer.mask_token == "<|mdm_mask|>"
    assert ours.max_length == 512  # the checkpoint's max_sequence_length


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logits_match_reference(reference, checkpoint, tokenizer, dtype):
    model = load_llada(str(checkpoint), torch.device("cpu"), dtype)
    assert {p.dtype for p in model.model.parameters()} == {dtype}
    x = torch.randint(0, len(tokenizer), (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # a copy: casting the shared reference back to fp32 would not restore it
        expected = copy.deepcopy(reference).to(dtype)(x).logits.float()
    # exact in bf16 too: RoPE is applied in fp32 as LLaDA's rope_full_precision asks
    torch.testing.assert_close(model.raw_logits(x), expected, rtol=1e-5 if dtype == torch.float32 else 0,
                               atol=1e-5 if dtype == torch.float32 else 0)


def _mdlm_sample(reference, tokenizer, prompt, masks, steps, block, temperature=0.0):
    mdlm = import_reference("dllm.core.samplers.mdlm")
    sampler = mdlm.MDLMSampler(model=reference, tokenizer=tokenizer)
    out = sampler.sample(list(prompt), mdlm.MDLMSamplerConfig(), max_new_tokens=masks, block_size=block, steps=steps,
                         temperature=temperature, remasking="low_confidence", return_dict=True,
                         suppress_tokens=[tokenizer.mask_token_id])  # our sampler never proposes the mask
    return out.sequences, _reveal_counts(out.histories, tokenizer.mask_token_id)


def _our_sample(model, prompt, masks, **options):
    x = torch.cat([prompt, torch.full((prompt.shape[0], masks), model.mask_token_id)], 1)
    seen = []
    forward = model.raw_logits

    def spy(ids, rows=None):
        seen.append(ids.clone())
        return forward(ids, rows)

    model.raw_logits = spy
    try:
        cfg = {"alg": "maskgit_plus", "schedule": "auto", "noise": "reference", "temperature": 0.0, "top_p": None,
               "kv_reuse": False, **options}
        result = Sampler(model, SamplerConfig(**cfg)).sample(x)
    finally:
        del model.raw_logits
    return result, _reveal_counts([*seen, result.tokens], model.mask_token_id)


def _reveal_counts(states, mask) -> list[tuple[int, ...]]:
    masked = [(s == mask).sum(1) for s in states]
    return [tuple((a - b).tolist()) for a, b in zip(masked, masked[1:])]


@pytest.mark.parametrize("masks, steps, block", [
    (16, 8, 8),  # two blocks, one token per step
    (10, 6, 4),  # a short last block
    (6, 4, 6),  # rounding half to even: 2, 1, 2, 1
    (3, 8, 3),  # more steps than masks: empty steps are skipped, no forward
    (7, 14, 3),
])
def test_sampler_matches_mdlm_sampler(reference, ours, tokenizer, prompt, masks, steps, block):
    expected, expected_counts = _mdlm_sample(reference, tokenizer, prompt, masks, steps, block)
    result, counts = _our_sample(ours, prompt, masks, steps=steps, block_length=block)
    assert counts == expected_counts and result.nfe == len(counts)
    assert torch.equal(result.tokens, expected)


def test_reveal_counts_match_when_sampling(reference, ours, tokenizer, prompt):
    """At temperature > 0 the draws differ (LLaDA's float64 Gumbel noise from the global generator),
    the schedule does not."""
    _, expected_counts = _mdlm_sample(reference, tokenizer, prompt, 10, 6, 4, temperature=0.7)
    _, counts = _our_sample(ours, prompt, 10, steps=6, block_length=4, temperature=0.7)
    assert counts == expected_counts


def test_kv_reuse_on_a_loaded_checkpoint(ours, prompt):
    x = torch.cat([prompt, torch.full((2, 10), ours.mask_token_id)], 1)
    plain = Sampler(ours, SamplerConfig(steps=10, block_length=5, temperature=0.0, kv_reuse=False)).sample(x)
    cached = Sampler(ours, SamplerConfig(steps=10, block_length=5, kv_refresh=1, temperature=0.0)).sample(x)
    assert torch.equal(plain.tokens, cached.tokens)
    reused = Sampler(ours, SamplerConfig(steps=10, block_length=5, kv_refresh=4)).sample(x)
    assert reused.full_forwards < reused.nfe and not (reused.tokens == ours.mask_token_id).any()


@pytest.mark.parametrize("variant", [
    {"block_type": "sequential"}, {"layer_norm_type": "default"}, {"include_bias": True}, {"scale_logits": True},
    {"rope": False, "alibi": True}, {"block_group_size": 2}, {"activation_type": "swiglu"},
])
def test_variants_the_module_lacks_are_not_mapped(checkpoint, variant):
    config = json.loads((checkpoint / "config.json").read_text())
    assert llada_native_config(config) is not None
    assert llada_native_config({**config, **variant}) is None


@pytest.mark.parametrize("change", ["config", "weights"])
def test_unrecognised_checkpoint_falls_back_to_remote_code(checkpoint, tmp_path, monkeypatch, change):
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint, folder)
    if change == "config":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "block_type": "sequential"}))
    else:
        from safetensors.torch import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        state["model.transformer.blocks.0.att_proj.weight"] = torch.zeros(1)
        save_file(state, str(folder / "model.safetensors"))
    calls = []
    monkeypatch.setattr("dlmpo.dlm.llada.load_llada_remote", lambda *args: calls.append(args) or "remote")
    assert load_dlm(f"llada:{folder}", device="cpu") == "remote" and len(calls) == 1
