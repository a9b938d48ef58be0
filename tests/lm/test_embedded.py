"""The embedded target (SmolLM2-135M-Instruct) on a handful of real SST-2 rows."""

import asyncio

from dlmpo.catalog import get_task
from dlmpo.evaluate import evaluate
from dlmpo.lm import ChatRequest, open_target


def test_embedded_answers_sst2_rows(data_dir, tmp_path):
    task = get_task("sst2", data_dir)
    model = open_target("embedded", cache_path=tmp_path / "c.sqlite")
    rows = task.examples("val")[:8]

    async def go():
        try:
            return await evaluate(task, model, task.seed_prompt, rows, max_tokens=8)
        finally:
            await model.aclose()

    result = asyncio.run(go())
    assert result.n == 8 and result.failures == 0
    assert all(t.output for t in result.traces)
    assert sum(t.prediction is not None for t in result.traces) >= 6  # SmolLM2 mostly names a label
    assert model.accounting.calls == 8 and model.accounting.usage.completion_tokens > 0
    assert model.accounting.cost_usd == 0.0


def test_embedded_batches_and_caches(tmp_path):
    model = open_target("embedded", cache_path=tmp_path / "c.sqlite")
    reqs = [ChatRequest(messages=[{"role": "user", "content": f"Say the number {i}."}], max_tokens=4) for i in range(6)]

    async def go():
        batched = await asyncio.gather(*(model.chat(r) for r in reqs))
        single = await model.chat(reqs[3].__class__(messages=reqs[3].messages, max_tokens=4, sample_index=1))
        again = await asyncio.gather(*(model.chat(r) for r in reqs))
        await model.aclose()
        return batched, single, again

    batched, single, again = asyncio.run(go())
    # greedy decoding: padding in a batch does not change the answer
    assert single.text == batched[3].text
    assert all(a.cached and a.text == b.text for a, b in zip(again, batched))
    assert model.accounting.calls == 7 and model.accounting.cache_hits == 6


def test_shared_system_prompt_kv_gives_the_same_answers(data_dir):
    """The batch's common prefix is run once and its K/V shared: greedy answers equal those of
    each request run alone (no padding, no sharing)."""
    from dlmpo.embedded_weights import embedded_model_dir
    from dlmpo.lm import local_backend
    from dlmpo.lm.local_backend import LocalBackend

    task = get_task("sst2", data_dir)
    backend = LocalBackend(embedded_model_dir(), dtype="float32")  # bf16 rounding depends on the batch shape
    requests = [ChatRequest(messages=[{"role": "system", "content": task.seed_prompt},
                                      {"role": "user", "content": task.user_message(ex)}], max_tokens=6)
                for ex in task.examples("val")[:5]]
    rows = [backend.tokenizer(backend._render(r), add_special_tokens=False)["input_ids"] for r in requests]
    assert local_backend.common_prefix_length(rows) >= local_backend.MIN_SHARED_PREFIX
    together = backend._generate(requests)
    assert len(backend._prefixes) == 1  # kept for the next batch of the same prompt
    alone = [backend._generate([r])[0] for r in requests]
    assert [t.text for t in together] == [a.text for a in alone]
    assert [t.usage.prompt_tokens for t in together] == [len(r) for r in rows]


def test_local_dtype_is_chosen_once_and_named_in_the_cache_id(monkeypatch):
    import pytest
    import torch

    from dlmpo.errors import ModelSpecError
    from dlmpo.lm.local_backend import resolve_dtype

    monkeypatch.delenv("DLMPO_LOCAL_DTYPE", raising=False)
    assert resolve_dtype("float32", "cpu") == "float32" and resolve_dtype(None, "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_dtype(None, "cpu") == "float32"  # emulated bf16 would be slower
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setenv("DLMPO_LOCAL_DTYPE", "float32")
    assert resolve_dtype(None, "cpu") == "float32"
    with pytest.raises(ModelSpecError, match="Unknown local model dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")


def test_bfloat16_target_has_its_own_cache_id():
    from dlmpo.embedded_weights import embedded_model_dir
    from dlmpo.lm.local_backend import LocalBackend

    bf16 = LocalBackend(embedded_model_dir(), model_id="embedded:x", dtype="bfloat16")
    fp32 = LocalBackend(embedded_model_dir(), model_id="embedded:x", dtype="float32")
    assert (bf16.model_id, fp32.model_id) == ("embedded:x@bfloat16", "embedded:x")
    assert next(bf16.model.parameters()).dtype.__str__() == "torch.bfloat16"
