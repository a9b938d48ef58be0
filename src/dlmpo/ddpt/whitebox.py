"""A frozen local causal LM that takes soft prompts: input embeddings in, code NLL and completions out.

Every sequence is [prefix][problem prompt][solution or generated code], built as inputs_embeds;
the prefix (context + A z, then the instruction) is the only place a soft prompt enters. The
weights never change and need no gradients; gradients flow to the prefix alone."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from dlmpo.devices import check_device
from dlmpo.errors import ModelSpecError, UserError
from dlmpo.lm.spec import parse_target_spec


def api_refusal(target: str) -> str:
    return (f"DDPT needs the model's weights, and '{target}' is an API model: use embedded or "
            "hf:<repo-or-path> (a local transformers causal LM).")


def require_white_box(target: str) -> tuple[str, str]:
    """The parsed specifier of a local target, or the one-sentence refusal for API targets."""
    kind, arg = parse_target_spec(target)
    if kind not in ("embedded", "hf"):
        raise UserError(api_refusal(target))
    return kind, arg


class WhiteBoxLM:
    def __init__(self, target: str, device: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        kind, arg = require_white_box(target)
        if kind == "embedded":
            from dlmpo.embedded_weights import embedded_model_dir

            path: Path | str = embedded_model_dir()
        else:
            path = arg
        self.target = target
        self.device = check_device(device) or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise ModelSpecError(f"Cannot load a transformers causal LM from '{path}': {exc}".split("\n")[0]) from None
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.embeddings = self.model.get_input_embeddings()
        self.d_model = self.embeddings.weight.shape[1]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def embed(self, ids: list[int]) -> torch.Tensor:
        return self.embeddings(torch.tensor(ids, dtype=torch.long, device=self.device))

    def _sequence(self, prefix: torch.Tensor | None, ids: list[int]) -> torch.Tensor:
        body = self.embed(ids)
        return body if prefix is None else torch.cat([prefix.to(body.dtype), body])

    def solution_nll(self, prefix: torch.Tensor | None, prompt_ids: list[int], solution_ids: list[int]) -> torch.Tensor:
        """Summed NLL of the solution tokens after [prefix][prompt]; differentiable in the prefix."""
        x = self._sequence(prefix, prompt_ids + solution_ids).unsqueeze(0)
        n = len(solution_ids)
        # logits only where a solution token is predicted: the output layer is a fifth of the work
        logits = self.model(inputs_embeds=x, logits_to_keep=n + 1).logits[0, :n].float()
        target = torch.tensor(solution_ids, device=logits.device)
        return torch.nn.functional.cross_entropy(logits, target, reduction="sum")

    @torch.no_grad()
    def pooled(self, prompt_ids: list[int]) -> torch.Tensor:
        """The problem's mean last-layer hidden state: what conditions the diffusion model."""
        out = self.model(input_ids=torch.tensor([prompt_ids], device=self.device), output_hidden_states=True,
                         logits_to_keep=1)
        return out.hidden_states[-1][0].mean(0).float().cpu()

    @torch.no_grad()
    def generate(self, prefixes: list[torch.Tensor | None], prompts: list[list[int]], *, max_new_tokens: int,
                 stops: tuple[str, ...], temperature: float = 0.0, seed: int = 0, batch_size: int = 8,
                 on_batch: Callable[[int], None] | None = None) -> list[str]:
        """Completions of [prefix][prompt], cut at the first stop sequence; greedy unless temperature > 0.
        Rows of similar length share a batch; `on_batch(n)` is told after each batch of n rows."""
        from dlmpo.code.completion import cut_at_stop

        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + (0 if prefixes[i] is None else len(prefixes[i])))
        texts: list[str] = [""] * len(prompts)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            rows = [self._sequence(prefixes[i], prompts[i]) for i in chunk]
            for i, text in zip(chunk, self._generate_batch(rows, max_new_tokens, stops, temperature, seed + start)):
                texts[i] = cut_at_stop(text, stops)[0]
            if on_batch is not None:
                on_batch(len(chunk))
        return texts

    def _generate_batch(self, rows: list[torch.Tensor], max_new_tokens: int, stops: tuple[str, ...],
                        temperature: float, seed: int) -> list[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList

        from dlmpo.code.completion import cut_at_stop

        longest = max(len(r) for r in rows)
        embeds = torch.zeros(len(rows), longest, self.d_model, device=self.device)
        mask = torch.zeros(len(rows), longest, dtype=torch.long, device=self.device)
        for b, row in enumerate(rows):  # left padding: every row ends where generation starts
            embeds[b, longest - len(row):] = row
            mask[b, longest - len(row):] = 1
        tokenizer = self.tokenizer

        class StopOnText(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # input_ids holds only new tokens here
                done = [cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), stops)[1] for row in input_ids]
                return torch.tensor(done, device=input_ids.device)

        kwargs = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs = dict(do_sample=True, temperature=temperature, top_p=None, top_k=None)
        out = self.model.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  pad_token_id=self.pad_id, eos_token_id=self.tokenizer.eos_token_id,
                                  stopping_criteria=StoppingCriteriaList([StopOnText()]), **kwargs)
        return [tokenizer.decode(row, skip_special_tokens=True) for row in out]
