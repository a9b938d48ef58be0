"""The tiny grid that tests/test_scale_ray.py and benchmarks/scale_grid.py run: 2 tasks x 2
optimizers x 2 seeds with the tiny-random DLM, against a local counting server
(fake_openai_server.py) that `answer` plays; and results compared without what may differ between
two places of running (wall times and their per-phase timing, the folder, one process's own spend)."""

from __future__ import annotations

from hashlib import sha256

TINY = dict(rounds=1, candidates=1, train_size=4, val_size=4, test_size=4, batch_size=2, screen_batch=2, steps=2,
            mask_tokens=4, readability=False, max_calls=40, dlm="tiny-random:dream")
GRID = dict(optimizers=["dlm", "ar"], seeds=2, tasks=["sst2", "mrpc"])
NOT_COMPARED = {"seconds", "dlm_seconds", "run_dir", "timing"}


def answer(body: dict) -> str:
    """The writer fills every blank; the target answers a label that depends on prompt and input."""
    last = str(body["messages"][-1].get("content") or "")
    if body["model"] == "writer":
        return "\n".join("Decide by the main opinion." for _ in range(max(1, last.count("[BLANK"))))
    system = str(body["messages"][0]["content"]) if body["messages"][0]["role"] == "system" else ""
    labels = ["positive", "negative", "equivalent", "not_equivalent"]
    return labels[sha256(f"{system}\0{last}".encode()).digest()[0] % 4]


def comparable(result):
    """A result.json without wall times, its folder, or what one process of it spent (a resumed run's
    last process spends less; the run's totals must be equal)."""
    if isinstance(result, dict):
        return {k: comparable(v) for k, v in result.items() if k not in NOT_COMPARED and "this_process" not in k}
    if isinstance(result, list):
        return [comparable(v) for v in result]
    return result
