"""The DLM's input: the prompt with masks, then the interaction traces it is conditioned on, in
the DLM's own chat template, within the DLM's context length.

    system:  <prompt with mask tokens>
    user:    <instruction>  [1] User: ... / Assistant: ... / Score: ... / Feedback: ...  [2] ...

Budgeting never cuts the prompt or its masks: each trace field is first capped, then whole traces
are dropped from the end until everything fits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dlmpo.dlm.base import DiffusionLM
from dlmpo.dlm.masks import Segment, Span
from dlmpo.errors import UserError

DEFAULT_INSTRUCTION = (
    "Here is how an assistant answered with the system prompt above. "
    "Each answer has a score (1 is correct) and feedback. "
    "The system prompt gives clear, general instructions so that every answer is correct and in the "
    "expected format."
)
EXAMPLES_INSTRUCTION = (
    "The system prompt above tells an assistant how to turn each input below into its output."
)

_PROMPT_SLOT = "\u0000PROMPT\u0000"
_CONTEXT_SLOT = "\u0000CONTEXT\u0000"


@dataclass
class ContextItem:
    """One trace (query, output, score, feedback) or one input -> output example."""

    query: str
    output: str
    score: float | None = None
    feedback: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> ContextItem:
        query = d.get("query", d.get("user", d.get("input")))
        output = d.get("output", d.get("assistant"))
        if query is None or output is None:
            raise UserError("Each context item needs 'query' (or 'user'/'input') and 'output' (or 'assistant').")
        return cls(str(query), str(output), d.get("score"), d.get("feedback"))

    def render(self, index: int, query_tokens: int, output_tokens: int, tokenizer) -> str:
        lines = [f"[{index}] User: {_clip(self.query, query_tokens, tokenizer)}",
                 f"Assistant: {_clip(self.output, output_tokens, tokenizer) or '(empty)'}"]
        if self.score is not None:
            lines.append(f"Score: {self.score:g}")
        if self.feedback:
            lines.append(f"Feedback: {_clip(self.feedback, output_tokens, tokenizer)}")
        return "\n".join(lines)


def _clip(text: str, max_tokens: int, tokenizer) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text.strip()
    return tokenizer.decode(ids[:max_tokens]).strip() + " …"


@dataclass
class Canvas:
    input_ids: torch.Tensor  # (L,)
    span_positions: list[list[int]]  # token positions of each mask run, in order
    segments: list[Segment]
    traces_used: int
    traces_dropped: int
    notes: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def build_canvas(
    model: DiffusionLM,
    segments: list[Segment],
    context: list[ContextItem] | None = None,
    *,
    instruction: str | None = None,
    query_tokens: int = 160,
    output_tokens: int = 96,
    reserve: int = 0,
) -> Canvas:
    tok = model.tokenizer
    context = context or []
    messages = [{"role": "system", "content": _PROMPT_SLOT}]
    if context:
        messages.append({"role": "user", "content": _CONTEXT_SLOT})
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if _PROMPT_SLOT not in rendered:  # templates without a system role: put the prompt in the user turn
        messages[0]["role"] = "user"
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    before, _, after = rendered.partition(_PROMPT_SLOT)
    middle, _, tail = after.partition(_CONTEXT_SLOT) if context else (after, "", "")

    prefix = _encode(tok, before)
    if model.family == "mlm" and tok.cls_token_id is not None and (not prefix or prefix[0] != tok.cls_token_id):
        prefix = [tok.cls_token_id] + prefix
    if model.shift and not prefix:
        prefix = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    ids: list[int] = list(prefix)
    spans: list[list[int]] = []
    for seg in segments:
        if isinstance(seg, Span):
            spans.append(list(range(len(ids), len(ids) + seg.size)))
            ids.extend([model.mask_token_id] * seg.size)
        else:
            ids.extend(_encode(tok, seg))
    ids.extend(_encode(tok, middle))
    suffix = _encode(tok, tail)
    if model.family == "mlm" and tok.sep_token_id is not None:
        suffix = suffix + [tok.sep_token_id]
    fixed = len(ids) + len(suffix) + reserve
    if fixed > model.max_length:
        raise UserError(
            f"The prompt with its masks takes {fixed} tokens but {model.name} reads at most "
            f"{model.max_length}: use fewer mask tokens or a shorter prompt."
        )
    used = dropped = 0
    notes: list[str] = []
    if context:
        head = _encode(tok, (instruction or DEFAULT_INSTRUCTION) + "\n\n")
        budget = model.max_length - fixed - len(head)
        blocks: list[int] = []
        for i, item in enumerate(context, 1):
            block = _encode(tok, item.render(i, query_tokens, output_tokens, tok) + "\n\n")
            if len(blocks) + len(block) > budget:
                dropped = len(context) - used
                notes.append(f"{dropped} of {len(context)} traces did not fit in {model.max_length} tokens.")
                break
            blocks.extend(block)
            used += 1
        if used:
            ids.extend(head + blocks)
        elif context:
            notes.append("No trace fitted beside the prompt: the DLM sees the prompt alone.")
    ids.extend(suffix)
    return Canvas(torch.tensor(ids, dtype=torch.long), spans, segments, used, dropped, notes)
