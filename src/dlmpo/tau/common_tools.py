"""Tools both τ-bench domains share: calculate, think, transfer_to_human_agents."""

from __future__ import annotations

import ast
import operator
from typing import Any

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _arith(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_arith(node.operand))
    raise ValueError("unsupported expression")


def calculate(db: dict[str, Any], expression: str) -> str:
    # upstream evaluates with Python's eval; an AST walk over + - * / gives the same numbers safely
    if not all(char in "0123456789+-*/(). " for char in expression):
        return "Error: invalid characters in expression"
    try:
        return str(round(float(_arith(ast.parse(expression, mode="eval"))), 2))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the agent as the tool's output
        return f"Error: {exc}"


def think(db: dict[str, Any], thought: str) -> str:
    return ""


def transfer_to_human_agents(db: dict[str, Any], summary: str) -> str:
    return "Transfer successful"


COMMON_TOOLS = {"calculate": calculate, "think": think, "transfer_to_human_agents": transfer_to_human_agents}
TERMINAL_TOOLS = frozenset({"transfer_to_human_agents"})
