"""The embedded DLM's learning curve: held-out prompt-token loss and accuracy against training
tokens seen, from the campaign's log, one marker per slice end.

    python recipes/embedded_dlm/plot_curve.py recipes/embedded_dlm/campaign docs/embedded_dlm_curve.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(run: Path, out: Path) -> None:
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = {e["step"]: e for e in events if e["type"] == "eval"}  # a re-logged step keeps its last value
    points = sorted(evals.values(), key=lambda e: e["tokens_seen"])
    tokens = [e["tokens_seen"] / 1e3 for e in points]
    slice_ends = {e["to_step"] for e in events if e["type"] == "slice"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((left, "loss", "held-out loss"), (right, "accuracy", "held-out accuracy")):
        ax.plot(tokens, [e[key] for e in points], marker="o", markersize=3)
        ends = [e for e in points if e["step"] in slice_ends]
        ax.plot([e["tokens_seen"] / 1e3 for e in ends], [e[key] for e in ends], "s", color="C3", label="slice end")
        ax.set_xlabel("training tokens seen (thousands)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    left.legend()
    fig.suptitle("embedded DLM: masked prompt tokens of held-out canvases (ratio 0.5)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"written {out}")


if __name__ == "__main__":
    plot(Path(sys.argv[1]), Path(sys.argv[2]))
