"""The autoregressive baseline proposer (the paper's Llama3-8B / Qwen3-8B comparison): a chat model
reads the same masked prompt, traces and feedback as the DLM and writes the text of each blank.
Same strategies, loop, selection and budget; only the writer differs."""

from __future__ import annotations

import random
import re
import time

from dlmpo.dlm import ContextItem
from dlmpo.dlm.masks import MASK_RUN
from dlmpo.lm import ChatModel, ChatRequest
from dlmpo.optimizer.proposers import Proposal
from dlmpo.optimizer.strategies import apply_strategy

INSTRUCTION = (
    "You improve the system prompt of an assistant. The prompt below has blanks written as [BLANK k]. "
    "Below it are answers the assistant gave with this prompt, with scores (1 is correct) and feedback. "
    "Write, for every blank, short general instructions that would make every answer correct and in the "
    "expected format. Do not copy the examples. Reply with one line per blank: `BLANK k: <text>`."
)


def render_blanks(masked: str) -> tuple[str, list[int]]:
    sizes: list[int] = []

    def blank(m: re.Match) -> str:
        sizes.append(int(m.group(1)))
        return f"[BLANK {len(sizes)}]"

    return MASK_RUN.sub(blank, masked), sizes


def parse_blanks(reply: str, count: int) -> list[str]:
    """The text for each blank: `BLANK k: text` lines; a reply without labels fills a single blank."""
    found: dict[int, str] = {}
    for m in re.finditer(r"BLANK\s*(\d+)\s*[:.\-]\s*(.+)", reply, flags=re.IGNORECASE):
        found.setdefault(int(m.group(1)), m.group(2).strip())
    if not found and count == 1:
        found[1] = " ".join(reply.split())
    # a writer that echoes the blanks' markers, in any case ("[blank 2] …"), has not written them
    return [re.sub(r"\s*\[BLANK[^\]]*\]", "", found.get(i + 1, ""), flags=re.IGNORECASE).strip() for i in range(count)]


def _trim_words(text: str, tokens: int) -> str:
    words = text.split()
    limit = max(1, int(tokens * 0.75))  # about 0.75 words per token
    return " ".join(words[:limit])


class ARProposer:
    name = "ar"

    def __init__(self, model: ChatModel, *, strategy: str, mask_tokens: int, span_ratio: float, span_length: int,
                 seed: int, temperature: float = 0.7, count=None):
        self.model = model
        self.strategy, self.mask_tokens = strategy, mask_tokens
        self.span_ratio, self.span_length, self.seed = span_ratio, span_length, seed
        self.temperature = temperature
        self._count = count or (lambda text: max(1, round(len(text.split()) / 0.75)))

    def prompt_token_limit(self) -> None:  # a chat model's context is far beyond a prompt's
        return None

    async def propose(self, incumbent: str, context: list[ContextItem], k: int, round_index: int, *,
                      avoid: frozenset[str] = frozenset()) -> list[Proposal]:
        rng = random.Random(f"{self.seed}:{round_index}:mask")
        masked = [apply_strategy(self.strategy, i, incumbent, rng, self._count, n=self.mask_tokens,
                                 ratio=self.span_ratio, span_length=self.span_length) for i in range(k)]
        traces = render_traces(context)
        proposals = []
        for i, (text, strategy) in enumerate(masked):
            blanks, sizes = render_blanks(text)
            start = time.perf_counter()
            reply = await self.model.chat(ChatRequest(
                messages=[{"role": "system", "content": INSTRUCTION},
                          {"role": "user", "content": f"System prompt:\n{blanks}\n\nAnswers:\n{traces}"}],
                temperature=self.temperature, max_tokens=min(512, 32 + sum(sizes) * 2),
                sample_index=round_index * 1000 + i))
            texts = [] if reply.error else parse_blanks(reply.text, len(sizes))
            fills = iter(_trim_words(t, n) for t, n in zip(texts, sizes))
            failure = (f"writer call failed: {reply.error}" if reply.error
                       else None if any(texts) else "writer wrote nothing")
            prompt = text if failure else re.sub(r"[ \t]+\n", "\n", MASK_RUN.sub(lambda _m: next(fills), text)).strip()
            proposals.append(Proposal(prompt, strategy, text, 0, time.perf_counter() - start, failure))
        return proposals


class _WordTokenizer:
    """Caps trace fields by words for a chat model (the DLM canvas caps them by its own tokens)."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}

    def decode(self, ids):
        return " ".join(ids)


def render_traces(context: list[ContextItem]) -> str:
    """The traces as a chat model's writers read them: numbered, each field capped by words."""
    return "\n\n".join(c.render(i, 160, 96, _WordTokenizer()) for i, c in enumerate(context, 1))


def build(s, writer: ChatModel) -> ARProposer:
    """The registry's builder (`optimizer.registry.PROPOSERS['ar']`)."""
    assert writer is not None
    return ARProposer(writer, strategy=s.strategy, mask_tokens=s.mask_tokens, span_ratio=s.span_ratio,
                      span_length=s.span_length, seed=s.seed, temperature=s.temperature)
