"""The readability gate: text a proposer adds must read as an instruction a person would deploy.

Checked on the text a candidate adds or changes (a word-level diff against the incumbent), before
any target call:

- a word repeated back to back ("falls short short"), or five words said twice;
- an article right before another function word ("The is negative");
- a word cut off ("Rep negative"): not an English word, or a short prefix of an instruction word
  or a label, unless the incumbent, the labels or the traces use it;
- an answer that contradicts itself: one sentence that directs two answers ("reply negative if …,
  answer positive") with fewer conditions than directives;
- perplexity: the mean negative log-likelihood of the added tokens under SmolLM2-135M-Instruct,
  reading the whole prompt before them, above `max_nll` (calibrated in
  `benchmarks/readability_gate.py`: docs/benchmarks.md).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Callable

from dlmpo.dlm.fluency import is_english_word

WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
CONDITION = re.compile(r"\b(?:if|when|whenever|unless|otherwise|except|only|where|while|as long as)\b", re.I)
DIRECTIVE_VERBS = r"(?:answer|reply|respond|say|output|write|choose|pick|label it|classify it as|the answer is|the label is)"
# a cut-off word is most often the start of one of these (or of a label): "Rep negative"
INSTRUCTION_WORDS = ("answer", "reply", "respond", "classify", "label", "decide", "choose", "explain", "review",
                     "sentence", "positive", "negative", "neutral")
SHORT_WORDS = frozenset("a an as at be by de do go he if in is it me my no not of on or so to up us we you the and any "
                        "all but can for has how its may one our out she use was who why yes sent".split())

# the midpoint between the most surprising stage-1 guidance sentence and the least surprising
# recital that only perplexity catches (benchmarks/readability_gate.py)
READABILITY_NLL = 5.67

SpanNLL = Callable[[str, list[tuple[int, int]]], "float | None"]


def changed_spans(candidate: str, incumbent: str) -> list[tuple[int, int]]:
    """Character spans of `candidate` whose words the incumbent does not have at that place, less
    Markdown heading lines (the optimizer's `## Additional instructions` is not the edit's text)."""
    new = [(m.start(), m.end(), m.group().lower()) for m in re.finditer(r"\S+", candidate)]
    old = [m.group().lower() for m in re.finditer(r"\S+", incumbent)]
    spans = []
    matcher = difflib.SequenceMatcher(a=old, b=[w for *_, w in new], autojunk=False)
    for op, _, _, j1, j2 in matcher.get_opcodes():
        if op in ("replace", "insert") and j2 > j1:
            spans.append((new[j1][0], new[j2 - 1][1]))
    headings = [(m.start(), m.end()) for m in re.finditer(r"^#+ .*$", candidate, re.M)]
    return [piece for span in spans for piece in _minus(span, headings) if candidate[piece[0]:piece[1]].strip()]


def _minus(span: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [span]
    for h0, h1 in holes:
        pieces = [p for s, e in pieces for p in ((s, min(e, h0)), (max(s, h1), e)) if p[0] < p[1]]
    return pieces


def _around(text: str, spans: list[tuple[int, int]], pattern: re.Pattern) -> list[re.Match]:
    return [m for m in pattern.finditer(text) if any(m.start() < e and m.end() > s for s, e in spans)]


def repeated_word(text: str, spans: list[tuple[int, int]]) -> str | None:
    for m in _around(text, spans, re.compile(r"\b([A-Za-z]+)\s+\1\b", re.I)):
        return m.group()
    return None


def repeated_phrase(text: str, spans: list[tuple[int, int]], labels: list[str], n: int = 5) -> str | None:
    """A run of `n` words said twice, once at least in the edit ("Do not repeat the question …
    Do not repeat the question …"); naming the label list again is not a repeat."""
    words = [(m.start(), m.end(), m.group().lower()) for m in WORD.finditer(text)]
    listing = {w.lower() for lab in labels for w in WORD.findall(lab)} | {"or", "and"}
    first: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(w for *_, w in words[i:i + n])
        if gram in first and first[gram] + n <= i and not set(gram) <= listing:
            start, end = words[i][0], words[i + n - 1][1]
            if any(start < e and end > s for s, e in spans):
                return " ".join(gram)
        first.setdefault(gram, i)
    return None


# an article right before another article, a copula, a preposition or a conjunction: "The is negative"
BROKEN_ARTICLE = re.compile(r"\b(?:the|a|an)\s+(?:the|a|an|is|are|was|were|be|of|to|and|or|but|if|with|for)\b", re.I)


def broken_grammar(text: str, spans: list[tuple[int, int]]) -> str | None:
    for m in _around(text, spans, BROKEN_ARTICLE):
        return m.group()
    return None


def cut_word(text: str, spans: list[tuple[int, int]], known: set[str], labels: list[str]) -> str | None:
    vocabulary = set(INSTRUCTION_WORDS) | {w.lower() for lab in labels for w in WORD.findall(lab)}
    for m in _around(text, spans, WORD):
        w = m.group().lower()
        if w in known or w in SHORT_WORDS:
            continue
        if not is_english_word(w):
            return m.group()
        if 2 <= len(w) <= 4 and any(v.startswith(w) and len(v) >= len(w) + 2 for v in vocabulary):
            return m.group()
    return None


def contradiction(text: str, spans: list[tuple[int, int]], labels: list[str]) -> str | None:
    """A sentence touching the edit that directs an answer more often than it states a condition."""
    if not labels:
        return None
    names = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    directive = re.compile(rf"\b{DIRECTIVE_VERBS}\s+(?:with\s+)?['\"]?({names})\b", re.I)
    for sentence in _around(text, spans, re.compile(r"[^.!?\n]+[.!?]?")):
        said = [m.group(1).lower() for m in directive.finditer(sentence.group())]
        if len(said) >= 2 and len(CONDITION.findall(sentence.group())) < len(said):
            kind = "contradicts itself" if len(set(said)) > 1 else "directs the same answer twice"
            return f"{kind}: \"{' '.join(sentence.group().split())}\""
    return None


@dataclass
class ReadabilityGate:
    labels: list[str] = field(default_factory=list)
    max_nll: float | None = None
    span_nll: SpanNLL | None = None  # loaded on first use when max_nll is set

    def load(self) -> SpanNLL | None:
        """What the gate reads with, loaded once: the word list, and the embedded SmolLM2 when
        perplexity is checked. A one-sentence UserError when either is not installed."""
        is_english_word("word")
        if self.max_nll is not None and self.span_nll is None:
            from dlmpo.lm.perplexity import embedded_scorer

            self.span_nll = embedded_scorer().span_nll
        return self.span_nll

    def reject_reason(self, candidate: str, incumbent: str, known_text: str = "") -> str | None:
        spans = changed_spans(candidate, incumbent)
        if not spans:
            return None
        return self._reason(candidate, incumbent, spans, known_text)

    def _reason(self, candidate, incumbent, spans, known_text) -> str | None:
        known = {w.lower() for w in WORD.findall(" ".join([incumbent, known_text, *self.labels]))}
        if (word := repeated_word(candidate, spans)) is not None:
            return f"unreadable: a word repeated back to back (\"{word}\")"
        if (phrase := repeated_phrase(candidate, spans, self.labels)) is not None:
            return f"unreadable: it says \"{phrase}\" twice"
        if (word := cut_word(candidate, spans, known, self.labels)) is not None:
            return f"unreadable: a word cut off or not English (\"{word}\")"
        if (words := broken_grammar(candidate, spans)) is not None:
            return f"unreadable: an article before a function word (\"{words}\")"
        if (said := contradiction(candidate, spans, self.labels)) is not None:
            return f"unreadable: the answer it asks for {said}"
        if self.max_nll is not None:
            nll = self.load()(candidate, spans)
            if nll is not None and nll > self.max_nll:
                return f"unreadable: perplexity of the added text {nll:.2f} nats/token > {self.max_nll:g}"
        return None
