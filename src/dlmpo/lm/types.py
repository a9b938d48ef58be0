"""The chat protocol every target backend speaks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    stop: list[str] | None = None
    sample_index: int = 0  # distinct repeated samples get distinct cache entries

    def prompt_tokens_bound(self) -> int:
        """The prompt's tokens, guessed high without a tokenizer (the one guess for budgets, rate
        limits and estimates): a token per 3 characters of the messages and tool schemas (English
        averages about 4), plus 8 for the chat template."""
        chars = sum(len(str(m.get("content") or "")) for m in self.messages)
        if self.tools:
            chars += len(json.dumps(self.tools))
        return chars // 3 + 8

    def cache_key(self, model_id: str) -> str:
        payload = {"model": model_id, **asdict(self)}
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it; may be malformed


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


@dataclass
class ChatResponse:
    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCall] = field(default_factory=list)
    cached: bool = False
    error: str | None = None  # set when the call failed after all retries

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": asdict(self.usage),
            "tool_calls": [asdict(t) for t in self.tool_calls],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], cached: bool = False) -> ChatResponse:
        return cls(
            text=data["text"],
            finish_reason=data["finish_reason"],
            usage=Usage(**data["usage"]),
            tool_calls=[ToolCall(**t) for t in data["tool_calls"]],
            cached=cached,
        )


@runtime_checkable
class ChatBackend(Protocol):
    """A raw backend: one call, no retries. Raises `TargetError` (retryable or not) on failure."""

    model_id: str
    default_concurrency: int
    billed_when_sent: bool  # a provider bills a request it received, even if the caller dies before the answer

    async def complete(self, request: ChatRequest) -> ChatResponse: ...

    async def aclose(self) -> None: ...
