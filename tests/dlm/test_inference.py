"""The DLM as proposals run it: LoRA folded in, the machine's fastest dtype, loaded once per scope."""

import gc
import weakref

import pytest
import torch

from dlmpo.dlm import inference, load_dlm
from dlmpo.dlm.adapter import add_lora
from dlmpo.dlm.inference import dlm_scope, inference_dtype, merge_lora, prepare_for_inference, shared_dlm


def test_merging_lora_keeps_the_logits_and_drops_the_extra_layers():
    from peft.tuners.tuners_utils import BaseTunerLayer

    dlm = load_dlm("tiny-random:dream", "cpu")
    add_lora(dlm, rank=4, alpha=8)
    with torch.no_grad():
        for name, p in dlm.model.named_parameters():
            if "lora_B" in name:  # zero at initialisation: give the adapter something to fold
                p.normal_(std=0.05)
    ids = dlm.tokenizer("Classify the review as positive or negative.", return_tensors="pt")["input_ids"]
    before = dlm.raw_logits(ids)
    assert merge_lora(dlm) == 2 * 7  # two layers, seven projections each
    assert not any(isinstance(m, BaseTunerLayer) for m in dlm.model.modules())
    after = dlm.raw_logits(ids)
    assert not torch.allclose(before, load_dlm("tiny-random:dream", "cpu").raw_logits(ids), atol=1e-3)
    assert torch.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("native, expected", [(False, torch.float32), (True, torch.bfloat16)])
def test_bf16_only_where_the_cpu_computes_it(monkeypatch, native, expected):
    monkeypatch.setattr(inference, "bf16_is_native", lambda: native)
    assert inference_dtype(torch.device("cpu")) == expected
    assert inference_dtype(torch.device("cuda")) == torch.bfloat16
    dlm = prepare_for_inference(load_dlm("tiny-random:llada", "cpu"))
    assert {p.dtype for p in dlm.model.parameters()} == {expected}
    assert not any(p.requires_grad for p in dlm.model.parameters())


def test_a_scope_loads_once_and_frees_at_its_end():
    with dlm_scope():
        first = shared_dlm("tiny-random:dream", "cpu")
        with dlm_scope():  # a run inside a compare
            assert shared_dlm(" tiny-random:dream", "cpu") is first
        assert shared_dlm("tiny-random:dream", "cpu") is first
        assert shared_dlm("tiny-random:llada", "cpu") is not first
        gone = weakref.ref(first)
        del first
    gc.collect()
    assert gone() is None
    assert shared_dlm("tiny-random:dream", "cpu") is not shared_dlm("tiny-random:dream", "cpu")  # no scope, no cache
