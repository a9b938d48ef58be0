"""The embedded DLM's learning curve: held-out prompt-token loss and accuracy against training
tokens seen (log scale), from the logs of one or more runs (the CPU campaign, then the GPU stage
that continued it), one marker per slice end.

    python recipes/embedded_dlm/plot_curve.py recipes/embedded_dlm/campaign recipes/embedded_dlm/campaign_gpu \
        docs/embedded_dlm_curve.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(runs: list[Path], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    for colour, run in enumerate(runs):
        events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        cfg = json.loads((run / "train_config.json").read_text())
        evals = {e["step"]: e for e in events if e["type"] == "eval"}  # a re-logged step keeps its last value
        points = sorted(evals.values(), key=lambda e: e["tokens_seen"])
        slice_ends = {e["to_step"] for e in events if e["type"] == "slice"}
        ends = [e for e in points if e["step"] in slice_ends]
        name = f"{run.name} ({cfg.get('device') or 'cpu'}, batch {cfg['batch_size']})"
        for ax, key in ((left, "loss"), (right, "accuracy")):
            ax.plot([e["tokens_seen"] for e in points], [e[key] for e in points], marker="o", markersize=3,
                    color=f"C{colour}", label=name)
            ax.plot([e["tokens_seen"] for e in ends], [e[key] for e in ends], "s", color="C3",
                    label="slice end" if colour == len(runs) - 1 else None)
    for ax, label in ((left, "held-out loss"), (right, "held-out accuracy")):
        ax.set_xscale("log")
        ax.set_xlabel("training tokens seen")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle("embedded DLM: masked prompt tokens of held-out canvases (ratio 0.5)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"written {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: plot_curve.py RUN_DIR [RUN_DIR ...] OUT.png")
    plot([Path(a) for a in sys.argv[1:-1]], Path(sys.argv[-1]))
