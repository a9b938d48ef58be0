import json
import subprocess
import sys

import pytest
import torch

from dlmpo.dlm import load_dlm
from dlmpo.dlm.adapter import load_adapter
from dlmpo.errors import DataError, UserError
from dlmpo.train import TrainConfig, Trainer, evaluate_masked
from dlmpo.train.data import encode, read_chat_jsonl, response_end_id
from dlmpo.train.objective import apply_masks, maskable

ROWS = [{"system": f"You classify movie reviews. Rule {i}: answer in one word.", "user": f"Review {i}: fine film",
         "assistant": "positive" if i % 2 else "negative"} for i in range(8)]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS))
    return path


def test_joint_masks_prompt_tokens_response_does_not():
    resp = torch.tensor([[False] * 6 + [True] * 4])
    real = torch.ones_like(resp)
    gen = torch.Generator().manual_seed(0)
    ids = torch.arange(10)[None]
    _, joint, _, _ = apply_masks(ids, maskable(resp, real, "joint"), 99, gen, ratio=1.0)
    _, only_resp, _, _ = apply_masks(ids, maskable(resp, real, "target"), 99, gen, ratio=1.0)
    assert joint[0, 1:].all() and not joint[0, 0]  # the first token always stays
    assert only_resp[0, 6:].all() and not only_resp[0, :6].any()


def test_encode_marks_the_response(data):
    dlm = load_dlm("tiny-random:dream", "cpu")
    enc = encode(dlm.tokenizer, read_chat_jsonl(data)[0], 512, dlm.tokenizer.eos_token_id)
    response = [t for t, r in zip(enc.input_ids, enc.is_target) if r]
    assert dlm.tokenizer.decode(response[:-1]) == "negative" and response[-1] == dlm.tokenizer.eos_token_id


@pytest.mark.parametrize("arch", ["dream", "llada", "mlm"])
def test_training_lowers_held_out_loss(arch, data, tmp_path):
    cfg = TrainConfig(dlm=f"tiny-random:{arch}", data=str(data), eval_data=str(data), out=str(tmp_path / "run"),
                      lora=False, steps=25, batch_size=4, lr=5e-3, warmup=1, eval_every=25, save_every=25,
                      eval_on="all", device="cpu")
    summary = Trainer(cfg).run()
    assert summary["eval_after"]["loss"] < summary["eval_before"]["loss"]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    # the weights load back onto a fresh base and reproduce the evaluation
    dlm = load_adapter(load_dlm(f"tiny-random:{arch}", "cpu"), tmp_path / "run")
    examples = [encode(dlm.tokenizer, m, 512, response_end_id(dlm.tokenizer)) for m in read_chat_jsonl(data)]
    again = evaluate_masked(dlm, examples, on="all")
    assert again["loss"] == pytest.approx(summary["eval_after"]["loss"], rel=1e-4)


def test_lora_trains_only_adapters(data, tmp_path):
    cfg = TrainConfig(dlm="tiny-random:dream", data=str(data), out=str(tmp_path / "lora"), lora=True, lora_rank=4,
                      steps=3, batch_size=2, device="cpu")
    summary = Trainer(cfg).run()
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "lora" / "adapter.safetensors"))
    assert weights and all("lora_" in k for k in weights)
    assert summary["weights_mb"] < 1


def test_resume_continues_to_the_same_weights(data, tmp_path):
    from safetensors.torch import load_file

    base = dict(dlm="tiny-random:llada", data=str(data), lora=False, batch_size=3, lr=1e-3, save_every=4,
                device="cpu")
    Trainer(TrainConfig(**base, out=str(tmp_path / "a"), steps=8)).run()
    Trainer(TrainConfig(**base, out=str(tmp_path / "b"), steps=4)).run()  # an interrupted run, checkpointed
    Trainer(TrainConfig(**base, out=str(tmp_path / "b"), steps=8)).run()  # resumed
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    # equal up to the bf16 rounding of the Adam moments kept in the checkpoint
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_bad_inputs(tmp_path, data):
    (tmp_path / "bad.jsonl").write_text('{"user": "hi"}\n')
    with pytest.raises(DataError, match="bad.jsonl, line 1"):
        read_chat_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(UserError, match="Unknown masking"):
        Trainer(TrainConfig(dlm="tiny-random:dream", data=str(data), out=str(tmp_path), masking="prompt"))
    with pytest.raises(UserError, match="Unknown attention"):
        Trainer(TrainConfig(dlm="tiny-random:dream", data=str(data), out=str(tmp_path), attention="block"))


def test_cli_train_json(data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dlmpo", "train", "--dlm", "tiny-random:mlm", "--data", str(data),
                           "--eval-data", str(data), "--out", str(tmp_path / "cli"), "--steps", "2", "--batch-size",
                           "2", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["steps"] == 2 and out["eval_after"]["tokens"] > 0
    proc = subprocess.run([sys.executable, "-m", "dlmpo", "infill", "--dlm", "tiny-random:mlm", "--adapter",
                           str(tmp_path / "cli"), "--text", "Classify. [MASK:4]", "--steps", "2", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["candidates"][0]["nfe"] <= 2


CANVAS_ROWS = [{"prompt": f"You classify movie reviews. Rule {i}: answer in one word.",
                "context": [{"query": f"Review {i}: fine film", "output": "positive", "score": 0,
                             "feedback": "Expected 'negative'."}]} for i in range(6)]


@pytest.fixture
def canvas_data(tmp_path):
    path = tmp_path / "canvas.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in CANVAS_ROWS))
    return path


@pytest.mark.parametrize("attention,first", [("full", "prompt"), ("block:8", "context")])
def test_canvas_rows_target_the_prompt_in_the_models_canvas_order(attention, first):
    from dlmpo.dlm.adapter import configure_for
    from dlmpo.train.data import encode_canvas

    dlm = load_dlm("tiny-random:dream", "cpu")
    configure_for(dlm, attention)
    enc = encode_canvas(dlm, CANVAS_ROWS[0], 512)
    target = [t for t, flag in zip(enc.input_ids, enc.is_target) if flag]
    assert dlm.tokenizer.decode(target) == CANVAS_ROWS[0]["prompt"]
    text = dlm.tokenizer.decode(enc.input_ids)
    assert (text.index("Rule 0") < text.index("Review 0")) == (first == "prompt")
    assert encode_canvas(dlm, CANVAS_ROWS[0], 10) is None  # too long: dropped, never cut


def test_attention_patterns_by_hand():
    from dlmpo.dlm.modeling import attention_pattern

    block = attention_pattern("block:2", 5).int().tolist()
    assert block == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    causal = attention_pattern("causal", 4)
    assert torch.equal(attention_pattern("anneal", 4, open_fraction=0.0, generator=torch.Generator()), causal)
    assert attention_pattern("anneal", 4, open_fraction=1.0) is None and attention_pattern("full", 4) is None


def test_span_masking_masks_target_runs_only():
    target = torch.tensor([[False] * 4 + [True] * 12 + [False] * 4])
    real = torch.ones_like(target)
    ids = torch.arange(20)[None]
    gen = torch.Generator().manual_seed(3)
    _, masked, _, allowed = apply_masks(ids, maskable(target, real, "joint"), 99, gen, target=target, span_fraction=1.0)
    assert masked.any() and not (masked & ~target).any()
    assert torch.equal(allowed, target)


def test_time_limit_stops_cleanly_and_the_same_command_resumes(canvas_data, tmp_path):
    from safetensors.torch import load_file

    base = dict(dlm="tiny-random:dream", data=str(canvas_data), lora=True, lora_rank=4, batch_size=2, lr=1e-3,
                save_every=100, train_mask_row=True, attention="anneal:4", span_fraction=0.5, device="cpu", steps=6)
    Trainer(TrainConfig(**base, out=str(tmp_path / "a"))).run()
    cut = Trainer(TrainConfig(**base, out=str(tmp_path / "b"), time_limit=3600))

    def stop_after_three(step, total, last):
        if step == 3:
            cut.cfg.time_limit = 1e-9  # as if the wall clock ran out here
    first = cut.run(progress=stop_after_three)
    assert not first["finished"] and first["steps"] == 3 and (tmp_path / "b" / "checkpoint.pt").is_file()
    assert not (tmp_path / "b" / "adapter.safetensors").exists()
    second = Trainer(TrainConfig(**base, out=str(tmp_path / "b"), time_limit=3600)).run()
    assert second["finished"] and second["tokens_seen"] == json.loads(
        (tmp_path / "a" / "log.jsonl").read_text().splitlines()[-1])["tokens_seen"]
    a = load_file(str(tmp_path / "a" / "adapter.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter.safetensors"))
    assert "mask_token_embedding" in a and a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    slices = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [s["stopped"] for s in slices if s["type"] == "slice"] == ["time limit", "steps"]


def test_trained_mask_row_and_attention_come_back_with_the_adapter(canvas_data, tmp_path):
    cfg = TrainConfig(dlm="tiny-random:dream", data=str(canvas_data), out=str(tmp_path / "run"), lora=True,
                      lora_rank=4, steps=3, batch_size=2, lr=5e-2, train_mask_row=True, attention="block:4",
                      device="cpu")
    Trainer(cfg).run()
    base = load_dlm("tiny-random:dream", "cpu")
    before = base.model.model.embed_tokens.weight[base.mask_token_id].clone()
    dlm = load_adapter(load_dlm("tiny-random:dream", "cpu"), tmp_path / "run")
    after = dlm.model.model.embed_tokens.weight[dlm.mask_token_id]
    assert not torch.allclose(before, after)
    assert dlm.attention == "block:4" and dlm.canvas_order == "context_first" and not dlm.supports_kv_reuse
    with pytest.raises(UserError, match="trained on tiny-random:dream"):
        load_adapter(load_dlm("tiny-random:llada", "cpu"), tmp_path / "run")


def test_init_from_an_exported_adapter_continues_its_weights_and_steps(canvas_data, tmp_path):
    from safetensors.torch import load_file

    base = dict(dlm="tiny-random:dream", data=str(canvas_data), lora=True, lora_rank=4, batch_size=2,
                train_mask_row=True, device="cpu")
    Trainer(TrainConfig(**base, out=str(tmp_path / "a"), steps=3, lr=5e-2)).run()
    exported = tmp_path / "export"
    exported.mkdir()
    (exported / "adapter.safetensors").write_bytes((tmp_path / "a" / "adapter.safetensors").read_bytes())
    (exported / "train_config.json").write_text(json.dumps({"step": 3, "tokens_seen": 123}))
    summary = Trainer(TrainConfig(**base, out=str(tmp_path / "b"), steps=4, lr=0.0, init_from=str(exported))).run()
    assert summary["steps"] == 4 and summary["tokens_seen"] > 123  # one step on top of the export's three
    a, b = load_file(str(exported / "adapter.safetensors")), load_file(str(tmp_path / "b" / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k]) for k in a)  # lr 0: the weights carried over


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_is_warned(data, tmp_path, monkeypatch, native):
    monkeypatch.setattr("dlmpo.train.trainer.bf16_is_native", lambda: native)
    seen = []
    cfg = TrainConfig(dlm="tiny-random:dream", data=str(data), out=str(tmp_path / "bf16"), bf16=True, steps=1,
                      batch_size=2, device="cpu")
    Trainer(cfg, on_log=seen.append).run()
    warnings = [e["text"] for e in seen if e["type"] == "warning"]
    assert len(warnings) == (0 if native else 1) and all("emulated" in w for w in warnings)
