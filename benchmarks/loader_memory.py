"""Peak resident memory of loading a Dream checkpoint with the `dream:` loader, on the CPU.

A random Dream-layout checkpoint is written in bf16 (safetensors shards of about 500 MB, as real
checkpoints are sharded), then loaded (weights and tokenizer) in a fresh process, which reports:
its resident memory when the load starts, the peak during the load (VmHWM, reset when the load
starts), and its ru_maxrss (the whole process, imports included). `over_weights` is
(load peak - start) / the size of the loaded weights: 1.0 when nothing but the model is resident.
This process imports no torch, so the children's ru_maxrss is theirs alone.

`--previous` also loads the checkpoint the way the loader did before it read tensors one by one:
the model built in fp32, cast to the target dtype, then filled shard by shard from
`safetensors.torch.load_file`.

Shapes: the tests' tiny model, and Qwen2.5-1.5B's (Dream's architecture at 1.5B parameters).

    python -m benchmarks.loader_memory [--shapes tiny,1.5b] [--previous]"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPES = {
    "tiny": dict(vocab_size=49216, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
}
SHARD_BYTES = 500 * 2**20


def write_checkpoint(shape_name: str, folder: str) -> dict:
    """Random bf16 weights in shards, config.json, SmolLM2's tokenizer."""
    import torch
    from safetensors.torch import save_file

    from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
    from dlmpo.dlm.smollm2 import smollm2_tokenizer

    shape = SHAPES[shape_name]
    config = {**shape, "model_type": "Dream", "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
              "mask_token_id": shape["vocab_size"] - 1}
    with torch.device("meta"):
        skeleton = BidirectionalLM(TransformerConfig.from_hf({**config, "attention_bias": True}))
    shard: dict[str, torch.Tensor] = {}
    params = index = 0
    gen = torch.Generator().manual_seed(0)
    for name, p in skeleton.named_parameters():  # a tied lm_head is listed once, as the embeddings
        shard[name] = torch.empty(p.shape, dtype=torch.bfloat16).normal_(0, 0.02, generator=gen)
        params += p.numel()
        if sum(t.numel() * 2 for t in shard.values()) >= SHARD_BYTES:
            save_file(shard, f"{folder}/model-{index:05d}.safetensors")
            shard, index = {}, index + 1
    if shard:
        save_file(shard, f"{folder}/model-{index:05d}.safetensors")
    Path(folder, "config.json").write_text(json.dumps(config))
    smollm2_tokenizer().save_pretrained(folder)
    return {"params": params}


def _rss_mb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024


def _previous_loader(folder: str, dtype):
    import torch
    import transformers
    from safetensors.torch import load_file

    from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig

    cfg = TransformerConfig.from_hf({**json.loads(Path(folder, "config.json").read_text()), "attention_bias": True})
    with torch.device("meta"):
        model = BidirectionalLM(cfg)
    model = model.to_empty(device="cpu").to(dtype)
    for file in sorted(Path(folder).glob("*.safetensors")):
        model.load_state_dict(load_file(str(file)), strict=False)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    return model


def measure(folder: str, dtype_name: str, loader: str) -> dict:
    import resource
    import time

    import torch
    import transformers  # noqa: F401  (the tokenizer's; imported before the start is read)

    from dlmpo.dlm.checkpoints import load_dream

    dtype = getattr(torch, dtype_name)
    start_mb = _rss_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    start = time.perf_counter()
    model = load_dream(folder, torch.device("cpu"), dtype).model if loader == "ours" else _previous_loader(folder, dtype)
    seconds = time.perf_counter() - start
    return {"start_mb": start_mb, "load_peak_mb": _rss_mb("VmHWM"), "after_mb": _rss_mb("VmRSS"),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "weights_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20, "seconds": seconds}


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.loader_memory", "--child", *args], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="tiny,1.5b")
    parser.add_argument("--previous", action="store_true", help="also measure the loader before this change")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, *rest = args.child
        print(json.dumps(write_checkpoint(*rest) if task == "write" else measure(*rest)))
        return
    rows = []
    for shape in args.shapes.split(","):
        with tempfile.TemporaryDirectory() as folder:
            params = _child("write", shape, folder)["params"]
            for dtype in ("bfloat16", "float32"):
                for loader in ["ours", "previous"] if args.previous else ["ours"]:
                    m = _child("measure", folder, dtype, loader)
                    rows.append({
                        "shape": shape, "params_m": round(params / 1e6, 1), "target": dtype, "loader": loader,
                        "weights_mb": round(m["weights_mb"]), "rss_at_start_mb": round(m["start_mb"]),
                        "load_peak_mb": round(m["load_peak_mb"]), "rss_after_mb": round(m["after_mb"]),
                        "ru_maxrss_mb": round(m["ru_maxrss_mb"]),
                        "over_weights": round((m["load_peak_mb"] - m["start_mb"]) / m["weights_mb"], 2),
                        "seconds": round(m["seconds"], 2)})
                    print(rows[-1], flush=True)
    from benchmarks.common import report  # imports torch: only now, after the children ran

    report("loader_memory", rows, {"checkpoint": "bf16 safetensors shards of about 500 MB", "device": "cpu"})


if __name__ == "__main__":
    main()
