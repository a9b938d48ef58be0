"""Word-level prompt diffs: which spans a run added and removed."""

from __future__ import annotations

import difflib
import html
import re


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s+|[^\s]+", text)


def diff_ops(old: str, new: str) -> list[tuple[str, str]]:
    """[(op, text)] with op in {'=', '+', '-'}."""
    a, b = _tokens(old), _tokens(new)
    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("=", "".join(a[i1:i2])))
        if tag in ("delete", "replace"):
            ops.append(("-", "".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            ops.append(("+", "".join(b[j1:j2])))
    return ops


def diff_markdown(old: str, new: str) -> str:
    out = []
    for op, text in diff_ops(old, new):
        if op == "=":
            out.append(text)
        elif text.strip():
            lead = text[: len(text) - len(text.lstrip())]
            trail = text[len(text.rstrip()):]
            out.append(f"{lead}[{op}{text.strip()}{op}]{trail}" if op == "+" else f"[{op}{text.strip()}{op}]")
    return "".join(out)


def diff_html(old: str, new: str) -> str:
    out = []
    for op, text in diff_ops(old, new):
        t = html.escape(text)
        out.append(t if op == "=" else f"<ins>{t}</ins>" if op == "+" else f"<del>{t}</del>")
    return "".join(out).replace("\n", "<br>")
