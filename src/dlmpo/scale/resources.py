"""What one run asks of a cluster, read from its settings: a GPU, and host memory for the weights,
when it loads a large model itself (a DLM other than the small built-ins, or an `hf:` chat model in
any role); one CPU otherwise (a run that only calls servers, or a small model on a CPU)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.lm.spec import parse_target_spec
from dlmpo.optimizer.registry import FEEDBACK
from dlmpo.optimizers import optimizer_named
from dlmpo.scale.grid import GridRun

SMALL_DLMS = ("embedded", "smollm2:base", "tiny-random:")  # a few hundred MB at most: a CPU holds them
MEMORY_MARGIN = 1.2  # weights on disk -> memory to load and run them


@dataclass(frozen=True)
class RunResources:
    cpus: int = 1
    gpus: int = 0
    memory: int = 0  # bytes of host memory; 0 when not declared (weights not on this machine)


def large_local_models(run: GridRun) -> list[str]:
    """The repositories or folders of the large models a run loads into its own process."""
    s = run.settings
    entry = optimizer_named(run.optimizer)
    found = []
    if entry.writes_with_dlm and not s.dlm.startswith(SMALL_DLMS):
        found.append(s.dlm.partition(":")[2])
    chat = [s.target, s.judge if FEEDBACK[s.feedback].judge and s.judge else None,
            None if s.user_model == "scripted" else s.user_model, None if entry.writes_with_dlm else s.optimizer_model]
    for spec in dict.fromkeys(c for c in chat if c):
        kind, arg = parse_target_spec(spec)
        if kind == "hf":
            found.append(arg)
    return found


def weights_bytes(repo_or_path: str) -> int | None:
    """Size of a model's weights from a local folder or the hub cache (never the network), else None."""
    folder = Path(repo_or_path).expanduser()
    if folder.is_dir():
        files = [*folder.glob("*.safetensors"), *folder.glob("pytorch_model*.bin")]
        return sum(f.stat().st_size for f in files) or None
    from huggingface_hub import try_to_load_from_cache

    index = try_to_load_from_cache(repo_or_path, "model.safetensors.index.json")
    if isinstance(index, str):
        return int(json.loads(Path(index).read_text())["metadata"]["total_size"])
    single = try_to_load_from_cache(repo_or_path, "model.safetensors")
    return Path(single).stat().st_size if isinstance(single, str) else None


def run_resources(run: GridRun, cluster_gpus: float) -> RunResources:
    """One CPU, plus a GPU when the run loads a large model and a GPU is there (or `--device cuda`
    asks for one), plus the memory of those weights when they are on this machine."""
    models = large_local_models(run)
    if not models:
        return RunResources()
    device = run.settings.device
    wants_gpu = device.startswith("cuda") if device else cluster_gpus > 0
    if wants_gpu and cluster_gpus <= 0:
        raise UserError(f"Run {run.name} asks for --device {device}, but the Ray cluster has no GPU: "
                        "add a node with one, or pass --set device=cpu.")
    sizes = [weights_bytes(m) for m in models]
    memory = int(MEMORY_MARGIN * sum(sizes)) if all(sizes) else 0
    return RunResources(cpus=1, gpus=1 if wants_gpu else 0, memory=memory)
