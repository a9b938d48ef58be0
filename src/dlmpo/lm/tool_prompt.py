"""Tool calling for local models without native function calling: the tool schemas go into the
system prompt, calls are written as <tool_call>{"name": ..., "arguments": {...}}</tool_call>
(the Hermes/Qwen convention), and tool results come back as <tool_response> user turns."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from dlmpo.lm.types import ToolCall

TOOLS_HEADER = (
    "You can call these tools. To call one, reply with only\n"
    '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>\n'
    "Tools:\n"
)
_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')


def _tool_line(schema: dict[str, Any]) -> str:
    fn = schema.get("function", schema)
    params = fn.get("parameters", {}).get("properties", {})
    return f"- {fn['name']}({', '.join(params)}): {fn.get('description', '').strip()}"


def render_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """Plain role/content messages any chat template accepts."""
    out: list[dict[str, str]] = []
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role == "assistant" and m.get("tool_calls"):
            calls = [json.dumps({"name": c["function"]["name"], "arguments": _loads(c["function"]["arguments"])})
                     for c in m["tool_calls"]]
            content = (content + "\n" if content else "") + "".join(f"<tool_call>{c}</tool_call>" for c in calls)
        elif role == "tool":
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        out.append({"role": role, "content": content})
    if tools:
        block = TOOLS_HEADER + "\n".join(_tool_line(t) for t in tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + block}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def _loads(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except (json.JSONDecodeError, TypeError):
        return arguments


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """(text outside the calls, the calls). A call whose JSON is broken keeps its raw arguments,
    so the environment answers with a tool error rather than the reply being lost."""
    calls: list[ToolCall] = []
    for i, match in enumerate(_CALL.finditer(text)):
        body = match.group(1)
        try:
            parsed = json.loads(body)
            name, arguments = str(parsed["name"]), json.dumps(parsed.get("arguments", {}))
        except (json.JSONDecodeError, KeyError, TypeError):
            found = _NAME.search(body)
            if not found:
                continue
            name, arguments = found.group(1), body
        digest = hashlib.sha1(f"{i}:{body}".encode()).hexdigest()[:12]
        calls.append(ToolCall(id=f"call_{digest}", name=name, arguments=arguments))
    rest = _CALL.sub("", text).strip() if calls else text
    return rest, calls
