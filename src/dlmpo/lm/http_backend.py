"""Any OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, llama.cpp, Ollama)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from dlmpo.errors import FatalTargetError, TargetError
from dlmpo.lm.types import ChatRequest, ChatResponse, ToolCall, Usage


class OpenAICompatibleBackend:
    default_concurrency = 16

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = f"{self.base_url}#{model}"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = httpx.Timeout(timeout, connect=10.0)
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        """One pooled client per event loop: pooled connections cannot outlive their loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
            )
            self._loop = loop
        return self._client

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.tools:
            payload["tools"] = request.tools
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop"] = request.stop
        return payload

    async def complete(self, request: ChatRequest) -> ChatResponse:
        try:
            resp = await self._http().post("/chat/completions", json=self._payload(request))
        except httpx.ConnectError:
            raise TargetError(f"cannot connect to {self.base_url}", retryable=True, status=None) from None
        except httpx.TimeoutException:
            raise TargetError(f"request to {self.base_url} timed out", retryable=True) from None
        except httpx.HTTPError as exc:
            raise TargetError(f"HTTP error talking to {self.base_url}: {exc}", retryable=True) from None
        if resp.status_code in (401, 403):
            raise FatalTargetError(
                f"The server at {self.base_url} refused the API key (HTTP {resp.status_code}): "
                "check OPENAI_API_KEY."
            )
        if resp.status_code == 404:
            raise FatalTargetError(
                f"The server at {self.base_url} has no chat endpoint or no model '{self.model}' (HTTP 404)."
            )
        if resp.status_code == 429 or resp.status_code >= 500 or resp.status_code == 408:
            err = TargetError(f"HTTP {resp.status_code} from {self.base_url}", retryable=True,
                              status=resp.status_code)
            err.retry_after = _retry_after(resp)  # type: ignore[attr-defined]
            raise err
        if resp.status_code >= 400:
            raise TargetError(f"HTTP {resp.status_code}: {resp.text[:200]}", retryable=False,
                              status=resp.status_code)
        try:
            return _parse(resp.json())
        except (ValueError, KeyError, IndexError, TypeError):
            raise TargetError(f"malformed response from {self.base_url}", retryable=True) from None

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _parse(data: dict[str, Any]) -> ChatResponse:
    choice = data["choices"][0]
    message = choice["message"]
    calls = [
        ToolCall(
            id=c.get("id", f"call_{i}"),
            name=c["function"]["name"],
            arguments=c["function"].get("arguments") or "{}",
        )
        for i, c in enumerate(message.get("tool_calls") or [])
    ]
    usage = data.get("usage") or {}
    return ChatResponse(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        tool_calls=calls,
    )

