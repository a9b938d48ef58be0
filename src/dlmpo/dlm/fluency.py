"""How much of a text is English words: the fluency measure of infilled spans.

A word counts when it, or its stem after a common inflection (-s, -es, -ed, -ing, -ly, ...), is in
the `english-words` lists (web2 and GCIDE, MIT; `pip install english-words`). Numbers and
punctuation are not words and are left out of the count."""

from __future__ import annotations

import re
from functools import lru_cache

from dlmpo.errors import UserError

_SUFFIXES = ("s", "es", "ed", "d", "ing", "ly", "er", "est", "ies", "ied")


@lru_cache(maxsize=1)
def _words() -> frozenset[str]:
    try:
        from english_words import get_english_words_set
    except ImportError:
        raise UserError("Measuring fluency needs the english-words package: `pip install english-words`.") from None
    return frozenset(get_english_words_set(["web2", "gcide"], lower=True, alpha=True))


def is_english_word(word: str) -> bool:
    words = _words()
    w = word.lower()
    if "'" in w:  # contractions: don't, it's, we'll
        w = w.split("'")[0]
        if w.endswith("n") and w[:-1] in words:
            return True
    if w in words or len(w) <= 1 and w in ("a", "i"):
        return True
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) > len(suffix) + 1:
            stem = w[: -len(suffix)]
            if stem in words or (suffix in ("ies", "ied") and stem + "y" in words) or stem + "e" in words:
                return True
    return False


def english_fraction(text: str) -> float:
    """The share of words in `text` that are English words (1.0 for a text with no words)."""
    tokens = re.findall(r"[A-Za-z]+(?:'[a-z]+)?", text)
    if not tokens:
        return 1.0
    return sum(is_english_word(t) for t in tokens) / len(tokens)
