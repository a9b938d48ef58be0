"""Checkpoint loading: `mlm:` on a saved ModernBERT, our safetensors reader, sharded and broken
checkpoints."""

import pytest
import torch
from reference_models import randomize, reference_dream, save_checkpoint
from safetensors.torch import load_file, save_file

from dlmpo.dlm import load_dlm
from dlmpo.dlm.base import HFMaskedDLM
from dlmpo.dlm.checkpoints import read_safetensors
from dlmpo.errors import UserError


def test_mlm_checkpoint_gives_the_saved_models_logits(tmp_path):
    from transformers import ModernBertConfig, ModernBertForMaskedLM

    tokenizer = load_dlm("tiny-random:mlm", device="cpu").tokenizer
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
        global_attn_every_n_layers=2, local_attention=16,
    )
    model = ModernBertForMaskedLM(config).eval()
    randomize(model, std=0.1)
    model.save_pretrained(str(tmp_path))
    tokenizer.save_pretrained(str(tmp_path))
    loaded = load_dlm(f"mlm:{tmp_path}", device="cpu")
    assert isinstance(loaded, HFMaskedDLM) and loaded.mask_token_id == tokenizer.mask_token_id
    assert loaded.max_length == 256
    x = torch.randint(0, len(tokenizer), (2, 40), generator=torch.Generator().manual_seed(0))
    x[:, 5:9] = tokenizer.mask_token_id
    with torch.no_grad():
        expected = model(input_ids=x).logits
    torch.testing.assert_close(loaded.raw_logits(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [None, torch.float32, torch.bfloat16])
def test_safetensors_reader_matches_the_library(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr("dlmpo.dlm.checkpoints.READ_CHUNK", 8)  # conversions go through many chunks
    tensors = {"a": torch.randn(3, 5), "b": torch.randn(7).to(torch.bfloat16), "c": torch.arange(6).view(2, 3),
               "d": torch.tensor(2.5, dtype=torch.float16), "e": torch.zeros(0, 4), "f": torch.tensor([True, False])}
    save_file(tensors, str(tmp_path / "t.safetensors"), metadata={"format": "pt"})
    ours = dict(read_safetensors(tmp_path / "t.safetensors", dtype))
    library = load_file(str(tmp_path / "t.safetensors"))
    assert ours.keys() == library.keys()
    for name, tensor in library.items():
        expected = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
        assert ours[name].dtype == expected.dtype and torch.equal(ours[name], expected), name


@pytest.fixture(scope="module")
def dream_folder(tmp_path_factory):
    tokenizer = load_dlm("tiny-random:dream", device="cpu").tokenizer
    reference = reference_dream(len(tokenizer), tokenizer.mask_token_id, tokenizer.pad_token_id)
    return reference, save_checkpoint(reference, tokenizer, tmp_path_factory.mktemp("dream"))


def test_sharded_checkpoint(dream_folder, tmp_path):
    reference, folder = dream_folder
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    state = load_file(str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").unlink()
    names = sorted(state)
    save_file({n: state[n] for n in names[: len(names) // 2]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({n: state[n] for n in names[len(names) // 2:]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    x = torch.randint(0, 1000, (1, 16))
    with torch.no_grad():
        expected = reference(x).logits
    torch.testing.assert_close(load_dlm(f"dream:{tmp_path}", device="cpu").raw_logits(x), expected)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("model.layers.1.mlp.up_proj.weight"), "lacks weights"),
    (lambda s: s.update({"model.layers.0.extra.weight": torch.zeros(2)}), "does not know"),
    (lambda s: s.update({"model.norm.weight": torch.ones(3)}), "has shape"),
])
def test_broken_checkpoints_say_what_is_wrong(dream_folder, tmp_path, damage, message):
    _, folder = dream_folder
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    state = load_file(str(tmp_path / "model.safetensors"))
    damage(state)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match=message):
        load_dlm(f"dream:{tmp_path}", device="cpu")
