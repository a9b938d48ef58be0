"""Dream against its upstream code: a random reference DreamModel saved as a checkpoint and loaded
with `dream:` gives the same logits, and our sampler reproduces `diffusion_generate`: the same
per-step reveal counts always, the same tokens wherever both make the same random draws."""

import copy
import sys

import pytest
import torch
from reference_models import import_reference, reference_dream, save_checkpoint

from dlmpo.dlm import Sampler, SamplerConfig, load_dlm
from dlmpo.dlm.checkpoints import load_dream

ROWS_TEXT = ["You are a careful classifier of movie reviews.", "Answer with one word: positive or negative"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_dlm("tiny-random:dream", device="cpu").tokenizer


@pytest.fixture(scope="module")
def reference(tokenizer):
    return reference_dream(len(tokenizer), tokenizer.mask_token_id, tokenizer.pad_token_id)


@pytest.fixture(scope="module")
def checkpoint(reference, tokenizer, tmp_path_factory):
    """Dream's own layout: vocab.json + merges.txt and a tokenizer_config.json naming DreamTokenizer."""
    return save_checkpoint(reference, tokenizer, tmp_path_factory.mktemp("dream"), tokenizer_files="vocab+merges",
                           remote_tokenizer="tokenization_dream.DreamTokenizer")


@pytest.fixture(scope="module")
def ours(checkpoint):
    return load_dlm(f"dream:{checkpoint}", device="cpu")


@pytest.fixture(scope="module")
def prompt(tokenizer):
    rows = [tokenizer(t)["input_ids"] for t in ROWS_TEXT]
    width = min(map(len, rows))
    return torch.tensor([r[:width] for r in rows])


def test_logits_match_reference(reference, ours, tokenizer):
    x = torch.randint(0, len(tokenizer), (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x).logits
    torch.testing.assert_close(ours.raw_logits(x), expected, rtol=1e-5, atol=1e-5)


def test_bf16_checkpoint_loads_in_bf16_with_reference_logits(reference, tokenizer, tmp_path):
    folder = save_checkpoint(reference, tokenizer, tmp_path, dtype=torch.bfloat16)
    model = load_dream(str(folder), torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
    x = torch.randint(0, len(tokenizer), (2, 24), generator=torch.Generator().manual_seed(2))
    # the weights in bf16 and the rotary frequencies in fp32, as from_pretrained(dtype=bf16) leaves them
    bf16_reference = copy.deepcopy(reference)
    for p in bf16_reference.parameters():
        p.data = p.data.to(torch.bfloat16)
    with torch.no_grad():
        expected = bf16_reference(x).logits.float()
    torch.testing.assert_close(model.raw_logits(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["vocab+merges", "tokenizer.json"])
def test_tokenizer_loads_without_remote_code(reference, tokenizer, tmp_path, layout):
    folder = save_checkpoint(reference, tokenizer, tmp_path, tokenizer_files=layout,
                             remote_tokenizer="tokenization_dream.DreamTokenizer")
    model = load_dlm(f"dream:{folder}", device="cpu")
    tok = model.tokenizer
    assert "tokenization_dream" not in sys.modules
    assert tok.mask_token == "<|mask|>" and model.mask_token_id == tokenizer.mask_token_id == tok.mask_token_id
    text = "Rate it: <|mask|><|mask|> then stop. It's 2024!"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok(text)["input_ids"].count(model.mask_token_id) == 2
    if layout == "tokenizer.json":  # the same pipeline as the original, token for token
        assert tok(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def _reference_generate(reference, tokenizer, prompt, masks, seed, **options):
    """diffusion_generate on prompt + `masks` appended masks, the mask token kept out of the
    answers (our sampler never proposes it). Returns the tokens and per-step reveal counts per row."""
    gen_utils = import_reference("dllm.pipelines.dream.models.generation_utils")
    mask = tokenizer.mask_token_id

    def no_mask_answers(step, x, logits):
        logits[..., mask] = float("-inf")
        return logits

    config = gen_utils.DreamGenerationConfig(
        max_new_tokens=masks, mask_token_id=mask, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, return_dict=True,
        output_history=True, **options)
    torch.manual_seed(seed)
    out = reference.diffusion_generate(prompt, generation_config=config, generation_logits_hook_func=no_mask_answers)
    states = [torch.cat([prompt, torch.full((prompt.shape[0], masks), mask)], 1), *out.history]
    return out.sequences, _reveal_counts(states, mask)


def _our_sample(model, prompt, masks, seed, **options):
    """Our sampler on the same canvas; the canvas is recorded at every forward."""
    x = torch.cat([prompt, torch.full((prompt.shape[0], masks), model.mask_token_id)], 1)
    seen = []
    forward = model.raw_logits

    def spy(ids, rows=None):
        seen.append(ids.clone())
        return forward(ids, rows)

    model.raw_logits = spy
    try:
        cfg = {"seed": seed, "schedule": "dream", "noise": "reference", "top_p": None, "kv_reuse": False, **options}
        result = Sampler(model, SamplerConfig(**cfg)).sample(x)
    finally:
        del model.raw_logits
    return result, _reveal_counts([*seen, result.tokens], model.mask_token_id)


def _reveal_counts(states, mask) -> list[tuple[int, ...]]:
    masked = [(s == mask).sum(1) for s in states]
    return [tuple((a - b).tolist()) for a, b in zip(masked, masked[1:])]


CANVASES = {"no-empty-step": (12, 4), "empty-first-step": (8, 8)}  # masks, steps
CASES = [(canvas, alg, alg_temp, temperature)
         for canvas in CANVASES for alg in ("origin", "maskgit_plus", "topk_margin", "entropy")
         for alg_temp in ((0.0,) if alg == "origin" else (0.0, 0.5)) for temperature in (0.0, 0.8)]


@pytest.mark.parametrize("canvas, alg, alg_temp, temperature", CASES)
def test_sampler_matches_diffusion_generate(reference, ours, tokenizer, prompt, canvas, alg, alg_temp, temperature):
    masks, steps = CANVASES[canvas]
    options = dict(steps=steps, alg=alg, alg_temp=alg_temp, temperature=temperature)
    expected, expected_counts = _reference_generate(reference, tokenizer, prompt, masks, seed=7, **options)
    result, counts = _our_sample(ours, prompt, masks, seed=7, **options)
    # Dream spends a forward on a step that reveals nothing; we skip it (no NFE)
    assert counts == [c for c in expected_counts if any(c)]
    assert result.nfe == len(counts) <= steps
    if canvas == "empty-first-step" and alg != "origin":  # Dream's quirks, reproduced
        assert expected_counts[0] == (0, 0) and expected_counts[-1] == (2, 2)
    # Dream draws (and discards) token samples in its empty steps, so at temperature > 0 our
    # draws part ways from its after one; everywhere else the draws are the same
    if alg == "origin" or temperature == 0 or canvas == "no-empty-step":
        assert torch.equal(result.tokens, expected)


@pytest.mark.parametrize("options", [
    dict(alg="maskgit_plus", temperature=0.8, top_p=0.9, top_k=50),
    dict(alg="entropy", temperature=1.0, top_p=0.5),
    dict(alg="origin", temperature=1.0, top_p=0.95, top_k=5),
])
def test_top_p_and_top_k_match_diffusion_generate(reference, ours, tokenizer, prompt, options):
    expected, expected_counts = _reference_generate(reference, tokenizer, prompt, 12, seed=3, steps=4, **options)
    result, counts = _our_sample(ours, prompt, 12, seed=3, steps=4, **options)
    assert counts == [c for c in expected_counts if any(c)]
    assert torch.equal(result.tokens, expected)
