"""Our bidirectional module is the Qwen2 / Llama architecture: with a causal mask it reproduces
transformers' reference implementations exactly, so real Dream weights mean the same thing."""

import pytest
import torch

from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_matches_transformers_reference(family):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    Config, Model = (Qwen2Config, Qwen2ForCausalLM) if family == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    torch.manual_seed(0)
    hf = Model(Config(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=96, rope_theta=500.0)).eval()
    ours = BidirectionalLM(TransformerConfig.from_hf(hf.config.to_dict())).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    ids = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, ours(ids, causal=True)[0], atol=1e-5)
        # bidirectional: the first position now sees the last one
        changed = ids.clone()
        changed[:, -1] = (changed[:, -1] + 1) % 128
        assert not torch.allclose(ours(ids)[0][:, 0], ours(changed)[0][:, 0])
        assert torch.allclose(ours(ids, causal=True)[0][:, 0], ours(changed, causal=True)[0][:, 0])


def test_dream_loader_reads_a_qwen2_checkpoint_directory(tmp_path):
    """`dream:<path>` loads a local Dream-layout checkpoint (Qwen2 names, mask_token_id in config)."""
    import json

    from transformers import Qwen2Config, Qwen2ForCausalLM

    from dlmpo.dlm import load_dlm
    from dlmpo.dlm.smollm2 import smollm2_tokenizer

    tok = smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|mask|>"]})
    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, intermediate_size=64))
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["mask_token_id"] = tok.convert_tokens_to_ids("<|mask|>")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model = load_dlm(f"dream:{tmp_path}", device="cpu")
    assert model.shift and model.supports_kv_reuse and model.mask_token_id == cfg["mask_token_id"]
    ids = torch.randint(0, 1000, (1, 7))
    with torch.no_grad():
        ref = hf(ids, attention_mask=None).logits
    assert torch.allclose(model.model(ids, causal=True)[0], ref, atol=1e-5)


def test_mlm_loader_reads_a_real_bert_checkpoint():
    """`mlm:<path>` goes through AutoModelForMaskedLM on a real checkpoint (all-MiniLM-L6-v2)."""
    from dlmpo.dlm import load_dlm
    from dlmpo.dlm.tiny import minilm_dir

    model = load_dlm(f"mlm:{minilm_dir()}", device="cpu")
    assert model.family == "mlm" and not model.shift
    assert model.tokenizer.convert_ids_to_tokens(model.mask_token_id) == "[MASK]"
    assert model.max_length == 512
