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
# the same words for a canvas whose traces come before the prompt (block-causal DLMs)
_BEFORE = {DEFAULT_INSTRUCTION: DEFAULT_INSTRUCTION.replace("the system prompt above", "the system prompt that follows"),
           EXAMPLES_INSTRUCTION: "The system prompt that follows tells an assistant how to turn each input here "
                                 "into its output."}

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
    prompt_range: tuple[int, int] = (0, 0)  # [start, end) of the prompt's tokens

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])


CANVAS_ORDERS = ("prompt_first", "context_first")


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _template_parts(tok, has_context: bool, order: str) -> tuple[str, str, str]:
    """The chat template's text before, between and after the two slots (prompt, context), in
    canvas order."""
    prompt_msg = {"role": "system", "content": _PROMPT_SLOT}
    messages = [prompt_msg]
    if has_context:
        context_msg = {"role": "user", "content": _CONTEXT_SLOT}
        messages = [prompt_msg, context_msg] if order == "prompt_first" else [context_msg, prompt_msg]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if _PROMPT_SLOT not in rendered:  # templates without a system role: put the prompt in a user turn
        prompt_msg["role"] = "user"
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    if not has_context:
        before, _, after = rendered.partition(_PROMPT_SLOT)
        return before, after, ""
    first, second = (_PROMPT_SLOT, _CONTEXT_SLOT) if order == "prompt_first" else (_CONTEXT_SLOT, _PROMPT_SLOT)
    before, _, rest = rendered.partition(first)
    middle, _, tail = rest.partition(second)
    return before, middle, tail


def build_canvas(
    model: DiffusionLM,
    segments: list[Segment],
    context: list[ContextItem] | None = None,
    *,
    instruction: str | None = None,
    query_tokens: int = 160,
    output_tokens: int = 96,
    reserve: int = 0,
    order: str | None = None,
    max_length: int | None = None,
) -> Canvas:
    """`order` defaults to the model's own (`model.canvas_order`): a DLM with block-causal
    attention reads the traces before the prompt it rewrites."""
    tok = model.tokenizer
    context = context or []
    order = order or model.canvas_order
    if order not in CANVAS_ORDERS:
        raise UserError(f"Unknown canvas order '{order}': use {' or '.join(CANVAS_ORDERS)}.")
    limit = min(max_length or model.max_length, model.max_length)
    before, middle, tail = _template_parts(tok, bool(context), order)

    prefix = _encode(tok, before)
    if model.family == "mlm" and tok.cls_token_id is not None and (not prefix or prefix[0] != tok.cls_token_id):
        prefix = [tok.cls_token_id] + prefix
    if model.shift and not prefix:
        prefix = [tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id]
    prompt: list[int] = []
    spans: list[list[int]] = []  # relative to the prompt's start
    for seg in segments:
        if isinstance(seg, Span):
            spans.append(list(range(len(prompt), len(prompt) + seg.size)))
            prompt.extend([model.mask_token_id] * seg.size)
        else:
            prompt.extend(_encode(tok, seg))
    between = _encode(tok, middle)
    suffix = _encode(tok, tail)
    if model.family == "mlm" and tok.sep_token_id is not None:
        suffix = suffix + [tok.sep_token_id]
    fixed = len(prefix) + len(prompt) + len(between) + len(suffix) + reserve
    if fixed > limit:
        raise UserError(
            f"The prompt with its masks takes {fixed} tokens but {model.name} reads at most "
            f"{limit}: use fewer mask tokens or a shorter prompt."
        )
    used = dropped = 0
    notes: list[str] = []
    traces: list[int] = []
    if context:
        head = _encode(tok, instruction_for(instruction, order) + "\n\n")
        budget = limit - fixed - len(head)
        blocks: list[int] = []
        for i, item in enumerate(context, 1):
            block = _encode(tok, item.render(i, query_tokens, output_tokens, tok) + "\n\n")
            if len(blocks) + len(block) > budget:
                dropped = len(context) - used
                notes.append(f"{dropped} of {len(context)} traces did not fit in {limit} tokens.")
                break
            blocks.extend(block)
            used += 1
        if used:
            traces = head + blocks
        else:
            notes.append("No trace fitted beside the prompt: the DLM sees the prompt alone.")
    if order == "prompt_first":
        ids = prefix + prompt + between + traces + suffix
        start = len(prefix)
    else:
        ids = prefix + traces + between + prompt + suffix
        start = len(prefix) + len(traces) + len(between)
    spans = [[start + p for p in run] for run in spans]
    return Canvas(torch.tensor(ids, dtype=torch.long), spans, segments, used, dropped, notes,
                  (start, start + len(prompt)))


def instruction_for(instruction: str | None, order: str) -> str:
    """The instruction above the traces, worded for where the prompt is."""
    instruction = instruction or DEFAULT_INSTRUCTION
    return instruction if order == "prompt_first" else _BEFORE.get(instruction, instruction)
