"""Local transformers causal LM with batched generation.

Concurrent `complete()` calls are gathered into batches by a background worker: the evaluator
submits many requests at once and the model sees them as one padded batch. Every request of an
evaluation shares the system prompt, so the batch's common token prefix is computed once (and
kept for the next batches) and its K/V given to every row; only the rest of each request runs."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from dlmpo.devices import check_device
from dlmpo.errors import ModelSpecError, TargetError
from dlmpo.lm.tool_prompt import parse_tool_calls, render_messages
from dlmpo.lm.types import ChatRequest, ChatResponse, Usage


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future


MIN_SHARED_PREFIX = 16  # tokens; below this the plain batch is as fast
PREFIX_CACHE_SIZE = 4


def common_prefix_length(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    n = 0
    limit = min(len(r) for r in rows) - 1
    while n < limit and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n


DTYPES = ("float32", "bfloat16")


@functools.cache
def _cache_kwarg() -> str:
    """transformers 5.24 renamed `past_key_values` to `cache` (the old name warns on every run)."""
    import transformers
    from packaging.version import Version

    return "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"


def resolve_dtype(dtype: str | None, device: str) -> str:
    """The weights' dtype: as asked (argument, else DLMPO_LOCAL_DTYPE), else bfloat16 on a GPU
    and on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX: several times faster there than
    float32), float32 elsewhere, where bf16 is emulated and slow."""
    import torch

    dtype = dtype or os.environ.get("DLMPO_LOCAL_DTYPE") or "auto"
    if dtype == "auto":
        if device.startswith("cuda"):
            return "bfloat16"
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return "bfloat16" if device == "cpu" and native else "float32"
    if dtype not in DTYPES:
        raise ModelSpecError(f"Unknown local model dtype '{dtype}': use auto, {' or '.join(DTYPES)}.")
    return dtype


class LocalBackend:
    default_concurrency = 64
    billed_when_sent = False  # a computation cut short costs nothing

    def __init__(self, path: str | Path, model_id: str | None = None, batch_size: int = 32,
                 device: str | None = None, share_prefix: bool = True, dtype: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.batch_size = batch_size
        self.share_prefix = share_prefix
        self.device = check_device(device) or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = resolve_dtype(dtype, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModelForCausalLM.from_pretrained(
                str(path), dtype=getattr(torch, self.dtype)).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise ModelSpecError(f"Cannot load a transformers causal LM from '{path}': {exc}".split("\n")[0]) from None
        # other weights give other answers: they must not share cached calls (float32 keeps the old ids)
        base_id = model_id or f"hf:{path}"
        self.model_id = base_id if self.dtype == "float32" else f"{base_id}@{self.dtype}"
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._gpu_lock = threading.Lock()
        self._prefixes: OrderedDict[tuple[int, ...], list] = OrderedDict()  # prefix ids -> per-layer (K, V)

    def _render(self, request: ChatRequest) -> str:
        messages = render_messages(request.messages, request.tools)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        future: asyncio.Future = loop.create_future()
        await self._queue.put(_Pending(request, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            await asyncio.sleep(0)  # let concurrent submitters enqueue before the batches close
            waiting = [first]
            while len(waiting) < 8 * self.batch_size and not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            groups: dict[tuple, list[_Pending]] = {}
            for item in waiting:
                r = item.request
                groups.setdefault((r.temperature, r.max_tokens, r.top_p, tuple(r.stop or ()), r.sample_index),
                                  []).append(item)
            for items in groups.values():
                # similar lengths share a batch: less padding to compute
                items.sort(key=lambda i: sum(len(str(m.get("content", ""))) for m in i.request.messages))
                for start in range(0, len(items), self.batch_size):
                    await self._serve(items[start:start + self.batch_size])

    async def _serve(self, items: list[_Pending]) -> None:
        try:
            results = await asyncio.to_thread(self._generate, [i.request for i in items])
        except Exception as exc:  # surface to each caller as a retryable failure
            for item in items:
                if not item.future.done():
                    item.future.set_exception(TargetError(f"local generation failed: {exc}", retryable=True))
            return
        for item, result in zip(items, results):
            if not item.future.done():
                item.future.set_result(result)

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        import torch

        first = requests[0]
        rows = [self.tokenizer(self._render(r), add_special_tokens=False)["input_ids"] for r in requests]
        kwargs = dict(max_new_tokens=first.max_tokens, pad_token_id=self.tokenizer.pad_token_id)
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature)
            if first.top_p is not None:
                kwargs["top_p"] = first.top_p
            torch.manual_seed(first.sample_index)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        shared = common_prefix_length(rows) if self.share_prefix and len(rows) > 1 else 0
        with self._gpu_lock, torch.inference_mode():
            input_ids, mask = self._left_padded(rows, shared)
            if shared >= MIN_SHARED_PREFIX:
                kwargs[_cache_kwarg()] = self._prefix_cache(rows[0][:shared], len(rows))
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        new = out[:, input_ids.shape[1]:]
        eos = self.tokenizer.eos_token_id
        responses = []
        for row, row_mask, req in zip(new, mask, requests):
            ids = row.tolist()
            finish = "length"
            if eos in ids:
                ids = ids[: ids.index(eos)]
                finish = "stop"
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            for s in req.stop or ():
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            calls: list = []
            if req.tools:
                text, calls = parse_tool_calls(text)
            responses.append(ChatResponse(text=text.strip(), finish_reason="tool_calls" if calls else finish,
                                          usage=Usage(int(row_mask.sum()), len(ids)), tool_calls=calls))
        return responses

    def _left_padded(self, rows: list[list[int]], shared: int):
        """(B, L) ids and mask; with a shared prefix the padding goes between it and each row's own
        tokens, so the prefix sits at the same positions in every row (positions follow the mask)."""
        import torch

        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            own = row[shared:]
            ids[i, :shared] = torch.tensor(row[:shared], dtype=torch.long)
            mask[i, :shared] = 1
            ids[i, width - len(own):] = torch.tensor(own, dtype=torch.long)
            mask[i, width - len(own):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prefix_cache(self, prefix: list[int], batch: int):
        """A fresh DynamicCache holding the prefix's K/V for every row (generate extends it in place)."""
        import torch
        from transformers import DynamicCache

        key = tuple(prefix)
        if key not in self._prefixes:
            past = getattr(self.model(torch.tensor([prefix], device=self.device), use_cache=True), _cache_kwarg())
            self._prefixes[key] = [(layer.keys, layer.values) for layer in past.layers]
            if len(self._prefixes) > PREFIX_CACHE_SIZE:
                self._prefixes.popitem(last=False)
        self._prefixes.move_to_end(key)
        cache = DynamicCache()
        for i, (k, v) in enumerate(self._prefixes[key]):
            cache.update(k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous(), i)
        return cache

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, RuntimeError):
                pass
            self._worker = None
