"""Training examples for DLM fine-tuning, each token marked as *target* (the text the DLM learns to
write) or context. Two row shapes:

    chat     {"messages": [...]} or {"system"?, "user", "assistant"}: the chat template; the target
             is the assistant's turn
    canvas   {"prompt", "context"?: [{query, output, score?, feedback?}], "instruction"?}: exactly
             the canvas the optimizer gives the DLM (`dlm.canvas.build_canvas`, in the DLM's canvas
             order); the target is the system prompt

Examples longer than `max_length` are dropped and counted, never cut: a cut would silently lose
the target or the template's closing tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dlmpo.errors import DataError
from dlmpo.jsonl import read_objects


@dataclass
class Encoded:
    input_ids: list[int]
    is_target: list[bool]


def _chat_messages(obj: dict) -> list[dict] | None:
    if isinstance(obj.get("messages"), list):
        return obj["messages"]
    if "user" in obj and "assistant" in obj:
        return ([{"role": "system", "content": obj["system"]}] if obj.get("system") else []) + [
            {"role": "user", "content": obj["user"]}, {"role": "assistant", "content": obj["assistant"]}]
    return None


def read_rows(path: str | Path) -> list[dict]:
    """Rows of either shape, checked; each comes back as {"messages": ...} or a canvas row."""
    rows = []
    for n, obj in read_objects(path, "Training data"):
        if isinstance(obj.get("prompt"), str):
            context = obj.get("context") or []
            if not isinstance(context, list) or not all(isinstance(c, dict) for c in context):
                raise DataError(f"{path}, line {n}: 'context' must be a list of {{query, output}} objects.")
            rows.append({"prompt": obj["prompt"], "context": context, "instruction": obj.get("instruction")})
            continue
        messages = _chat_messages(obj)
        if messages is None:
            raise DataError(f"{path}, line {n}: expected {{\"prompt\", \"context\"?}}, {{\"messages\": [...]}} "
                            "or {\"user\", \"assistant\"}.")
        if not messages or messages[-1].get("role") != "assistant":
            raise DataError(f"{path}, line {n}: the last message must be the assistant's.")
        rows.append({"messages": messages})
    if not rows:
        raise DataError(f"{path} holds no examples.")
    return rows


def read_chat_jsonl(path: str | Path) -> list[list[dict]]:
    """Chat rows only (the message lists)."""
    rows = read_rows(path)
    if any("messages" not in r for r in rows):
        raise DataError(f"{path}: expected chat rows only.")
    return [r["messages"] for r in rows]


def response_end_id(tokenizer) -> int | None:
    """The token that closes an assistant turn: EOS, or [SEP] for BERT-style tokenizers."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id


def encode(tokenizer, messages: list[dict], max_length: int, eos_id: int | None) -> Encoded | None:
    """A chat row; None when it does not fit in `max_length`."""
    prompt_text = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    if eos_id is not None:
        response = response + [eos_id]
    if len(prompt) + len(response) > max_length:
        return None
    return Encoded(prompt + response, [False] * len(prompt) + [True] * len(response))


def encode_canvas(dlm, row: dict, max_length: int) -> Encoded | None:
    """A canvas row, built as the optimizer builds it; traces that do not fit are dropped as the
    optimizer drops them. None when the prompt alone does not fit."""
    from dlmpo.dlm.canvas import ContextItem, build_canvas
    from dlmpo.errors import UserError

    items = [ContextItem.from_dict(c) for c in row["context"]]
    try:
        canvas = build_canvas(dlm, [row["prompt"]], items, instruction=row.get("instruction"), max_length=max_length)
    except UserError:
        return None
    ids = canvas.input_ids.tolist()
    start, end = canvas.prompt_range
    return Encoded(ids, [start <= i < end for i in range(len(ids))])


def encode_rows(dlm, rows: list[dict], max_length: int) -> tuple[list[Encoded], int]:
    """The encoded examples and how many were dropped as too long."""
    eos = response_end_id(dlm.tokenizer)
    out: list[Encoded] = []
    for row in rows:
        enc = (encode(dlm.tokenizer, row["messages"], max_length, eos) if "messages" in row
               else encode_canvas(dlm, row, max_length))
        if enc is not None:
            out.append(enc)
    return out, len(rows) - len(out)


def collate(batch: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, is_target, is_real (padding excluded), all (B, L)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    target = torch.zeros((len(batch), width), dtype=torch.bool)
    real = torch.zeros((len(batch), width), dtype=torch.bool)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        target[i, :n] = torch.tensor(e.is_target)
        real[i, :n] = True
    return ids, target, real
