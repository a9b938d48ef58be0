"""The upstream reference code in ../shared/reference (Dream's and LLaDA's modeling, Dream's
generation, dllm's MDLM sampler), imported by path as test oracles, with the shims it needs to run
under transformers 5 on a CPU, and tiny random models built with it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
TINY = {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128}


def import_reference(module: str):
    """A module of the reference tree (e.g. 'dllm.core.samplers.mdlm'); a missing tree is a failure,
    not a skip: these tests are the only check of the loaders against upstream code."""
    if not (REFERENCE / "dllm").is_dir():
        pytest.fail(f"The reference implementations are missing: expected them in {REFERENCE}.")
    if str(REFERENCE) not in sys.path:
        sys.path.insert(0, str(REFERENCE))
    import importlib

    _stub_removed_transformers_modules()
    return importlib.import_module(module)


def _stub_removed_transformers_modules() -> None:
    """transformers 5.24 removed `modeling_attn_mask_utils`, which the reference LLaDA-MoE file
    imports at package import time; the MoE model is never built here, so a stub class will do."""
    import importlib.util
    import types

    name = "transformers.modeling_attn_mask_utils"
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    stub = types.ModuleType(name)
    stub.AttentionMaskConverter = type("AttentionMaskConverter", (), {})
    sys.modules[name] = stub


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Weights far from a fresh init (biases too, norms around 1), so that logits are peaked and
    every parameter matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(std * torch.randn(p.shape, generator=gen))


def _default_rope(config, device=None, **_):
    """transformers 4's 'default' rotary init, which transformers 5 dropped from ROPE_INIT_FUNCTIONS."""
    dim = config.hidden_size // config.num_attention_heads
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (config.rope_theta ** exponents), 1.0


def reference_dream(vocab_size: int, mask_token_id: int, pad_token_id: int, seed: int = 0):
    md = import_reference("dllm.pipelines.dream.models.modeling_dream")
    cfg_mod = import_reference("dllm.pipelines.dream.models.configuration_dream")
    config = cfg_mod.DreamConfig(
        vocab_size=vocab_size, hidden_size=TINY["hidden"], intermediate_size=TINY["intermediate"],
        num_hidden_layers=TINY["layers"], num_attention_heads=TINY["heads"], num_key_value_heads=TINY["kv_heads"],
        max_position_embeddings=512, mask_token_id=mask_token_id, pad_token_id=pad_token_id,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(md, "ROPE_INIT_FUNCTIONS", {**md.ROPE_INIT_FUNCTIONS, "default": _default_rope})
        model = md.DreamModel(config).eval()
    randomize(model, seed)
    return model


def reference_llada(vocab_size: int, mask_token_id: int, eos_token_id: int, seed: int = 0, **overrides):
    """LLaDA-8B's config shape at toy size. The model is built on the CPU: LLaDAModelLM would
    build its inner model on CUDA, so the inner model is made here and handed to it."""
    ml = import_reference("dllm.pipelines.llada.models.modeling_llada")
    cfg_mod = import_reference("dllm.pipelines.llada.models.configuration_llada")
    fields = dict(
        d_model=TINY["hidden"], n_heads=TINY["heads"], n_kv_heads=TINY["kv_heads"], n_layers=TINY["layers"],
        mlp_hidden_size=TINY["intermediate"], mlp_ratio=4, block_type="llama", layer_norm_type="rms",
        activation_type="silu", rope=True, rope_theta=500000.0, rope_full_precision=True, alibi=False,
        include_bias=False, include_qkv_bias=False, weight_tying=False, vocab_size=vocab_size,
        embedding_size=vocab_size, max_sequence_length=512, mask_token_id=mask_token_id, eos_token_id=eos_token_id,
        pad_token_id=eos_token_id, rms_norm_eps=1e-5,
        attention_dropout=0.0, residual_dropout=0.0, embedding_dropout=0.0, init_device="cpu",
        flash_attention=False,
    )
    config = cfg_mod.LLaDAConfig(**{**fields, **overrides})
    config.use_cache = False  # LLaDAConfig passes it on, but transformers 5 no longer keeps it
    inner = ml.LLaDAModel(ml.create_model_config_from_pretrained_config(config), init_params=True)
    model = ml.LLaDAModelLM(config, model=inner).eval()
    randomize(model, seed)
    return model


def save_checkpoint(model, tokenizer, folder: Path, *, tokenizer_files: str = "tokenizer.json",
                    remote_tokenizer: str | None = None, dtype: torch.dtype | None = None) -> Path:
    """config.json + model.safetensors + the tokenizer. `tokenizer_files` 'vocab+merges' writes the
    byte-level BPE as vocab.json and merges.txt only (Dream's layout). `remote_tokenizer` names a
    tokenizer class in tokenizer_config.json's auto_map, with a module that fails if imported."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), default=str))
    tokenizer.save_pretrained(str(folder))
    if tokenizer_files == "vocab+merges":
        _bpe_as_vocab_and_merges(folder)
    if remote_tokenizer:
        module, cls = remote_tokenizer.split(".")
        tc_path = folder / "tokenizer_config.json"
        tc = json.loads(tc_path.read_text())
        tc.update({"tokenizer_class": cls, "auto_map": {"AutoTokenizer": [remote_tokenizer, None]}})
        tc_path.write_text(json.dumps(tc))
        (folder / f"{module}.py").write_text("raise RuntimeError('the checkpoint tokenizer code was imported')\n")
    return folder


def _bpe_as_vocab_and_merges(folder: Path) -> None:
    spec = json.loads((folder / "tokenizer.json").read_text())
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    (folder / "vocab.json").write_text(json.dumps(spec["model"]["vocab"], ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer.json").unlink()
