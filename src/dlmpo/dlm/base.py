"""The DLM protocol the sampler talks to, and its three families of adapters.

`raw_logits` returns the model's own logits; `shift` says whether logit i predicts token i+1
(Dream, adapted from an autoregressive Qwen2.5) or token i (LLaDA, BERT-style masked LMs). The
sampler aligns them so that row i always predicts token i."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from dlmpo.devices import check_device
from dlmpo.dlm.modeling import KV, BidirectionalLM, attention_pattern


def pick_device(device: str | None = None) -> torch.device:
    if device is not None:
        return torch.device(check_device(device))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class DiffusionLM(ABC):
    name: str
    family: str  # dream | llada | mlm
    tokenizer: object
    mask_token_id: int
    shift: bool
    max_length: int
    device: torch.device
    supports_kv_reuse: bool = False
    # the attention the model was trained with, and where the canvas puts the traces: a
    # block-causal DLM must read the traces before the prompt it rewrites
    attention: str = "full"
    canvas_order: str = "prompt_first"

    def __init__(self, model, tokenizer, *, name: str, family: str, mask_token_id: int, shift: bool,
                 max_length: int, device: torch.device):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.name, self.family, self.mask_token_id = name, family, mask_token_id
        self.shift, self.max_length, self.device = shift, max_length, device
        self._stop_ids: set[int] | None = None

    @abstractmethod
    def raw_logits(self, input_ids: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) -> (B, L, V) with full bidirectional attention; only the positions in `rows`
        (B, M) -> (B, M, V) when given, which spares the vocabulary projection elsewhere."""

    def raw_logits_with_kv(self, input_ids: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, KV]:
        raise NotImplementedError(f"{self.name} does not support K/V reuse")

    def raw_logits_partial(self, input_ids: torch.Tensor, active: torch.Tensor, context: KV,
                           rows: torch.Tensor) -> torch.Tensor:
        """Logits at `rows` (B, M), all within the `active` positions (1-D index), which are
        recomputed while attending to cached K/V of the other positions."""
        raise NotImplementedError(f"{self.name} does not support K/V reuse")

    def stop_token_ids(self) -> set[int]:
        """Tokens that mean 'nothing here': unused slots that decode to them are stripped."""
        if self._stop_ids is not None:
            return self._stop_ids
        tok = self.tokenizer
        ids = {tok.eos_token_id, tok.pad_token_id}
        for name in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "[SEP]", "[PAD]", "</s>", "<|end_of_text|>"):
            tid = tok.convert_tokens_to_ids(name) if name in tok.get_vocab() else None
            ids.add(tid)
        self._stop_ids = {i for i in ids if i is not None and i != self.mask_token_id}
        return self._stop_ids

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError


class NativeDLM(DiffusionLM):
    """Our own bidirectional transformer: Dream and Llama-shaped DLMs, with K/V reuse."""

    model: BidirectionalLM

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size

    @property
    def supports_kv_reuse(self) -> bool:  # the cached path assumes full attention
        return self.attention == "full"

    def _pattern(self, length: int):
        return attention_pattern(self.attention, length, self.device)

    @torch.inference_mode()
    def raw_logits(self, input_ids, rows=None):
        return self.model(input_ids, rows=rows, pattern=self._pattern(input_ids.shape[1]))[0].float()

    @torch.inference_mode()
    def raw_logits_with_kv(self, input_ids, rows):
        logits, kv = self.model(input_ids, return_kv=True, rows=rows)
        return logits.float(), kv

    @torch.inference_mode()
    def raw_logits_partial(self, input_ids, active, context, rows):
        b = input_ids.shape[0]
        positions = active.to(input_ids.device).expand(b, -1)
        local_rows = torch.searchsorted(active, rows.contiguous())  # active is sorted and holds every row
        return self.model(input_ids[:, active], positions, context=context, rows=local_rows)[0].float()


class HFMaskedDLM(DiffusionLM):
    """Any transformers model whose forward returns `.logits` over full attention: the masked-LM
    family through AutoModelForMaskedLM, and LLaDA through its remote code."""

    @property
    def vocab_size(self) -> int:
        return self.model.get_output_embeddings().weight.shape[0]

    @torch.inference_mode()
    def raw_logits(self, input_ids, rows=None):
        logits = self.model(input_ids=input_ids).logits
        if rows is not None:
            logits = logits.gather(1, rows[..., None].expand(-1, -1, logits.shape[-1]))
        return logits.float()
