"""Chat examples for DLM fine-tuning, tokenized with the DLM's chat template, with each token
marked as prompt (system + user turns) or response (the assistant turn)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dlmpo.errors import DataError
from dlmpo.jsonl import read_objects


@dataclass
class Encoded:
    input_ids: list[int]
    is_response: list[bool]


def read_chat_jsonl(path: str | Path) -> list[list[dict]]:
    """Rows are {"messages": [{role, content}, ...]} or {"system"?, "user", "assistant"}."""
    rows = []
    for n, obj in read_objects(path, "Training data"):
        if isinstance(obj.get("messages"), list):
            messages = obj["messages"]
        elif "user" in obj and "assistant" in obj:
            messages = ([{"role": "system", "content": obj["system"]}] if obj.get("system") else []) + [
                {"role": "user", "content": obj["user"]}, {"role": "assistant", "content": obj["assistant"]}]
        else:
            raise DataError(f"{path}, line {n}: expected {{\"messages\": [...]}} or {{\"user\", \"assistant\"}}.")
        if not messages or messages[-1].get("role") != "assistant":
            raise DataError(f"{path}, line {n}: the last message must be the assistant's.")
        rows.append(messages)
    if not rows:
        raise DataError(f"{path} holds no examples.")
    return rows


def response_end_id(tokenizer) -> int | None:
    """The token that closes an assistant turn: EOS, or [SEP] for BERT-style tokenizers."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id


def encode(tokenizer, messages: list[dict], max_length: int, eos_id: int | None) -> Encoded:
    prompt_text = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    if eos_id is not None:
        response = response + [eos_id]
    ids = (prompt + response)[:max_length]
    flags = ([False] * len(prompt) + [True] * len(response))[:max_length]
    return Encoded(ids, flags)


def collate(batch: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, is_response, is_real (padding excluded), all (B, L)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    resp = torch.zeros((len(batch), width), dtype=torch.bool)
    real = torch.zeros((len(batch), width), dtype=torch.bool)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        resp[i, :n] = torch.tensor(e.is_response)
        real[i, :n] = True
    return ids, resp, real
