"""The DLM that ships inside dlmpo: it loads offline and writes English into a masked span."""

import json
import subprocess
import sys

from dlmpo.dlm import load_dlm
from dlmpo.dlm.fluency import english_fraction
from dlmpo.dlm.smollm2 import EMBEDDED_DLM_DIR

PROMPT = "You classify movie reviews as positive or negative."


def test_embedded_dlm_loads_with_its_adapter():
    cfg = json.loads((EMBEDDED_DLM_DIR / "train_config.json").read_text())
    assert (EMBEDDED_DLM_DIR / "adapter.safetensors").stat().st_size < 16 * 2**20
    dlm = load_dlm("embedded", "cpu")
    assert dlm.name == "embedded" and dlm.shift and cfg["dlm"] == "smollm2:base"
    assert dlm.attention == "full" and dlm.canvas_order == "prompt_first" and dlm.supports_kv_reuse


def test_infill_writes_english():
    proc = subprocess.run([sys.executable, "-m", "dlmpo", "infill", "--dlm", "embedded", "--text",
                           f"{PROMPT} [MASK:24]", "--steps", "24", "--seed", "0", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    candidate = json.loads(proc.stdout.strip().splitlines()[-1])["candidates"][0]
    span = candidate["spans"][0]
    assert candidate["text"].startswith(PROMPT) and len(span.split()) >= 3
    assert english_fraction(span) >= 0.8, span
