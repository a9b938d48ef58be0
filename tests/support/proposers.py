"""Proposers for tests: fixed prompts, to put known candidates in the loop."""

from dlmpo.dlm import ContextItem
from dlmpo.optimizer.proposers import Proposal


class ListProposer:
    """A proposer that returns fixed prompts: lets a test put a known-bad candidate in the loop."""

    name = "list"

    def __init__(self, prompts):
        self.prompts = prompts

    def prompt_token_limit(self):
        return None

    async def propose(self, incumbent, context, k, round_index, *, avoid=frozenset()):
        assert all(isinstance(c, ContextItem) for c in context) and context
        return [Proposal(p, "fixed", p) for p in self.prompts[:k]]
