import json
import subprocess
import sys

import pytest
import torch

from dlmpo.dlm import load_dlm
from dlmpo.errors import DataError, UserError
from dlmpo.dlm.adapter import load_adapter
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
