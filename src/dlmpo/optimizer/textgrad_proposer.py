"""The textual-gradient baseline (TextGrad-style) on our chat protocol: a chat model first writes a
critique of the prompt from the failing traces (the "gradient"), then rewrites the whole prompt
to address it (the "step"). Same loop, selection and budget as the DLM proposer."""

from __future__ import annotations

import re
import time

from dlmpo.dlm import ContextItem
from dlmpo.lm import ChatModel, ChatRequest
from dlmpo.optimizer.ar_proposer import render_traces
from dlmpo.optimizer.proposers import Proposal

CRITIQUE = (
    "You are a critic of system prompts. Below is the system prompt of an assistant and answers it gave with "
    "that prompt, each with its score (1 is correct) and feedback. Explain concisely how the system prompt "
    "should change so that the failing answers would become correct, without breaking the correct ones. "
    "Give general guidance; do not quote the examples."
)
STEP = (
    "You edit system prompts. Rewrite the system prompt below following the feedback. Keep what works, change "
    "what the feedback asks for, stay concise, and do not include examples from the answers. Reply with the new "
    "system prompt only, between <PROMPT> and </PROMPT>."
)


def extract_prompt(reply: str, fallback: str) -> str:
    found = re.search(r"<PROMPT>\s*(.*?)\s*(?:</PROMPT>|$)", reply, flags=re.S | re.I)
    text = (found.group(1) if found else reply).strip()
    return text or fallback


class TextGradProposer:
    name = "textgrad"

    def __init__(self, model: ChatModel, *, temperature: float = 0.7, max_prompt_tokens: int = 1024):
        self.model = model
        self.temperature = temperature
        self.max_prompt_tokens = max_prompt_tokens

    def prompt_token_limit(self) -> None:  # a chat model's context is far beyond a prompt's
        return None

    async def propose(self, incumbent: str, context: list[ContextItem], k: int, round_index: int, *,
                      avoid: frozenset[str] = frozenset()) -> list[Proposal]:
        traces = render_traces(context)
        start = time.perf_counter()
        critique = await self.model.chat(ChatRequest(
            messages=[{"role": "system", "content": CRITIQUE},
                      {"role": "user", "content": f"System prompt:\n{incumbent}\n\nAnswers:\n{traces}"}],
            temperature=0.0, max_tokens=256, sample_index=round_index * 1000))
        if critique.error or not critique.text.strip():
            failure = f"critique call failed: {critique.error}" if critique.error else "critique was empty"
            seconds = time.perf_counter() - start
            return [Proposal(incumbent, "rewrite", "[critique] (none)", 0, seconds / k, failure) for _ in range(k)]
        gradient = critique.text.strip()
        critique_seconds = time.perf_counter() - start
        proposals = []
        for i in range(k):  # k sampled steps along the same gradient
            step_start = time.perf_counter()
            reply = await self.model.chat(ChatRequest(
                messages=[{"role": "system", "content": STEP},
                          {"role": "user", "content": f"System prompt:\n{incumbent}\n\nFeedback:\n{gradient}"}],
                temperature=self.temperature, max_tokens=self.max_prompt_tokens, sample_index=round_index * 1000 + 1 + i))
            prompt = extract_prompt(reply.text, incumbent)
            seconds = time.perf_counter() - step_start + critique_seconds / k  # the critique is shared
            failure = f"writer call failed: {reply.error}" if reply.error else None
            proposals.append(Proposal(prompt, "rewrite", f"[critique] {gradient}", 0, seconds, failure))
        return proposals


def build(s, writer: ChatModel) -> TextGradProposer:
    """The registry's builder (`optimizer.registry.PROPOSERS['textgrad']`)."""
    assert writer is not None
    return TextGradProposer(writer, temperature=s.temperature)
