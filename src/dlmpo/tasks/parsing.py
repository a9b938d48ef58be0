"""Turn a model's free-text answer into one label, or None when it names none or several."""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSWER_CUE = re.compile(
    r"(?:final answer|answer|label|sentiment|classification|prediction|output|relation)\s*(?:is)?\s*[:=\-]",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"(?:\bnot|\bno|\bnever|\bneither|\bnor|n't)\s+(?:a\s+|an\s+|very\s+|really\s+)?$")


def normalize(text: str) -> str:
    text = text.lower().replace("_", " ")
    text = text.replace("’", "'")
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    text = re.sub(r"[*`#>\"“”‘()\[\]{}]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class LabelParser:
    """Maps surface forms to labels. `synonyms[label]` lists extra surface forms of that label.

    Rules, in order: look after the last answer cue ("Answer:", "Sentiment:", ...) if there is one;
    match the longest surface forms first so "very positive" is not read as "positive" and
    "not equivalent" is not read as "equivalent"; drop mentions that are negated ("not positive");
    one distinct label left -> that label; several -> the first one only when the answer starts
    with it, otherwise the answer is ambiguous (e.g. it echoes the label list) and parses to None."""

    labels: tuple[str, ...]
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def build(cls, labels: list[str], synonyms: dict[str, list[str]] | None = None) -> LabelParser:
        syn = synonyms or {}
        return cls(tuple(labels), tuple((label, tuple(syn.get(label, ()))) for label in labels))

    def _forms(self) -> list[tuple[str, str]]:
        forms = {normalize(label): label for label in self.labels}
        for label, extra in self.synonyms:
            for form in extra:
                forms.setdefault(normalize(form), label)
        return sorted(forms.items(), key=lambda item: -len(item[0]))

    def parse(self, text: str) -> str | None:
        if not text or not text.strip():
            return None
        cues = list(_ANSWER_CUE.finditer(text))
        if cues:
            tail = text[cues[-1].end():]
            found = self._scan(normalize(tail))
            if found is not None:
                return found
        return self._scan(normalize(text))

    def _scan(self, text: str) -> str | None:
        taken = [False] * len(text)
        mentions: list[tuple[int, int, str]] = []
        for form, label in self._forms():
            for m in re.finditer(rf"(?<![a-z0-9]){re.escape(form)}(?![a-z0-9])", text):
                if any(taken[m.start():m.end()]):
                    continue
                for i in range(m.start(), m.end()):
                    taken[i] = True
                if _NEGATION.search(text[: m.start()]):
                    continue
                mentions.append((m.start(), m.end(), label))
        distinct = {label for *_, label in mentions}
        if len(distinct) == 1:
            return distinct.pop()
        if len(distinct) > 1:
            mentions.sort()
            (first_pos, first_end, first), (second_pos, _, _) = mentions[0], mentions[1]
            listed = re.fullmatch(r"\s*(?:,|/|or|,\s*or|and)\s*", text[first_end:second_pos])
            if first_pos == 0 and not listed:
                return first
        return None
