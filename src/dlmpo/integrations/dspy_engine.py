"""The bridge from DSPy to dlmpo's chat models, shared by the MIPROv2 peer and the DSPy
integration: `ChatModelEngine`, a dspy engine over a dlmpo ChatModel on an event loop; `CallGuard`,
which answers "" for a call the run's budget refuses; a lenient ChatAdapter for small models."""

from __future__ import annotations

import asyncio

from dlmpo.errors import BudgetExceeded
from dlmpo.lm import ChatModel, ChatRequest


class CallGuard:
    """Runs chat calls on the run's loop; a call the run's budget refuses answers "" (and is
    counted), so that MIPROv2 scores it as a miss instead of stopping."""

    def __init__(self):
        self.refused = 0
        self.failed = 0

    async def chat(self, model: ChatModel, request: ChatRequest) -> str:
        try:
            response = await model.chat(request)
        except BudgetExceeded:
            self.refused += 1
            return ""
        if response.error is not None:
            self.failed += 1
            return ""
        return response.text


class ChatModelEngine:
    """A dspy engine (complete(Request) -> Response) backed by a dlmpo chat model."""

    def __init__(self, guard: CallGuard, model: ChatModel, loop: asyncio.AbstractEventLoop, *, temperature: float,
                 max_tokens: int, distinct_samples: bool):
        self.guard, self.model, self.loop = guard, model, loop
        self.temperature, self.max_tokens = temperature, max_tokens
        self.distinct_samples = distinct_samples
        self.samples = 0

    def complete(self, request):
        from dspy.lm15 import Message, Response, TextPart, Usage

        messages = []
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
            messages.append({"role": "system", "content": system})
        messages += [{"role": m.role, "content": m.text or ""} for m in request.messages]
        self.samples += self.distinct_samples  # a proposal per call: a cached answer would repeat the last one
        chat = ChatRequest(messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                           sample_index=self.samples)
        text = asyncio.run_coroutine_threadsafe(self.guard.chat(self.model, chat), self.loop).result()
        return Response(id=None, model=self.model.backend.model_id, message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0))

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self):
        pass


def lenient_chat_adapter_class():
    """dspy's ChatAdapter, except that a completion without the field markers still answers a
    signature of one output field: the whole text (marker lines dropped) is that field. Small
    models (the embedded target, a small optimizer model) rarely keep DSPy's format."""
    import dspy
    from dspy.utils.exceptions import AdapterParseError

    class LenientChatAdapter(dspy.ChatAdapter):
        def parse(self, signature, completion):
            try:
                return super().parse(signature, completion)
            except AdapterParseError:
                if len(signature.output_fields) != 1:
                    raise
                text = "\n".join(line for line in completion.splitlines() if not line.lstrip().startswith("[[ ##"))
                return {next(iter(signature.output_fields)): text.strip()}

    return LenientChatAdapter
