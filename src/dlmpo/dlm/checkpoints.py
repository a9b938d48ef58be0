"""Real checkpoints, from a local folder or the Hugging Face hub: Dream (`dream:`) and masked LMs
(`mlm:`), and what every checkpoint is read with: its config, its tokenizer (by transformers' own
classes: no checkpoint tokenizer code runs), its mask token, and its safetensors weights streamed
into our module tensor by tensor."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dlmpo.dlm.base import HFMaskedDLM, NativeDLM, pick_dtype
from dlmpo.dlm.families import CHATML_TEMPLATE, DREAM_MASK, MLM_TEMPLATE
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.errors import UserError
from dlmpo.files import read_json


def local_snapshot(repo_or_path: str) -> Path:
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
    folder = local_snapshot(repo_or_path)
    cfg_raw = read_config(folder)
    cfg = TransformerConfig.from_hf({**cfg_raw, "attention_bias": True})
    tokenizer = checkpoint_tokenizer(folder, DREAM_MASK, CHATML_TEMPLATE)
    model = load_native_weights(cfg, weight_files(folder), device, dtype or pick_dtype(device), lambda name: name)
    return NativeDLM(model, tokenizer, name=f"dream:{repo_or_path}", family="dream",
                     mask_token_id=checkpoint_mask_id(cfg_raw, tokenizer, DREAM_MASK, folder), shift=True, max_length=2048,
                     device=device)


def load_mlm(repo_or_path: str, device: torch.device) -> HFMaskedDLM:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = local_snapshot(repo_or_path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.mask_token_id is None:
        raise UserError(f"'{repo_or_path}' has no mask token: it is not a masked LM.")
    model = AutoModelForMaskedLM.from_pretrained(str(folder), dtype=pick_dtype(device))
    if tokenizer.chat_template is None:
        tokenizer.chat_template = MLM_TEMPLATE
    max_len = int(getattr(model.config, "max_position_embeddings", 512))
    return HFMaskedDLM(model, tokenizer, name=f"mlm:{repo_or_path}", family="mlm",
                       mask_token_id=tokenizer.mask_token_id, shift=False, max_length=max_len, device=device)


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"No config.json in {folder}.")
    return read_json(path, "Model config")


def checkpoint_tokenizer(folder: Path, mask_token: str, chat_template: str):
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


def checkpoint_mask_id(cfg_raw: dict, tokenizer, mask_token: str, folder: Path) -> int:
    mask_id = cfg_raw.get("mask_token_id")
    if mask_id is None and mask_token in tokenizer.get_vocab():
        mask_id = tokenizer.convert_tokens_to_ids(mask_token)
    if mask_id is None:
        raise UserError(f"{folder} names no mask token: no mask_token_id in config.json and no {mask_token} token.")
    return int(mask_id)


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"No .safetensors weights in {folder}.")
    return files


SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def safetensors_header(path: Path) -> dict:
    with path.open("rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    header.pop("__metadata__", None)
    return header


READ_CHUNK = 16 * 2**20  # bytes read at a time when a tensor changes dtype on the way in


def read_safetensors(path: Path, dtype: torch.dtype | None = None):
    """(name, CPU tensor) for each tensor of a .safetensors file, one at a time, floating-point
    ones in `dtype` when given. Read with plain file reads, not memory-mapped (mapped pages count
    as resident: a map would hold a second copy of the weights while they load), and converted
    chunk by chunk through one small buffer, so no tensor ever has a whole temporary copy."""
    header = safetensors_header(path)
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


def load_native_weights(cfg: TransformerConfig, files: list[Path], device: torch.device, dtype: torch.dtype,
                        rename) -> BidirectionalLM:
    """Our module with the checkpoint's weights, built on the meta device and filled tensor by
    tensor in `dtype` on `device`: nothing is allocated twice, and weights stored in bf16 never
    pass through fp32 on the way to a bf16 model. `rename` maps checkpoint names to ours."""
    with torch.device("meta"):
        model = BidirectionalLM(cfg).to(dtype)
    for file in files:
        for stored, tensor in read_safetensors(file, dtype):
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
