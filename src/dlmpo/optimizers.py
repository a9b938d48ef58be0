"""Every optimizer `compare` can run, by name: our loop with each registered proposer, and the
peers that run through their own packages (GEPA, GEPA with the DLM as its proposer, MIPROv2). A new peer is one file in peers/ and
one line here; a new proposer registers in `optimizer.proposers.PROPOSERS` and appears here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from dlmpo.errors import UserError
from dlmpo.optimizer.registry import load


@dataclass(frozen=True)
class OptimizerEntry:
    name: str
    proposer: str = "dlm"  # the `proposer` setting of its runs
    run_path: str | None = None  # "module:function" of a peer, async (settings, out, on_event) -> OptimizeResult
    require_path: str | None = None  # "module:function" that says which package is missing, before any run
    dlm_peer: bool = False  # a peer that writes with the DLM instead of the optimizer model

    @property
    def writes_with_dlm(self) -> bool:
        """Whether its runs load the DLM (else the optimizer chat model writes their prompts)."""
        if self.run_path:
            return self.dlm_peer
        from dlmpo.optimizer.registry import PROPOSERS

        return not PROPOSERS[self.proposer].writer

    @property
    def run(self) -> Callable[..., Awaitable] | None:
        return load(self.run_path) if self.run_path else None

    @property
    def require(self) -> Callable[[], None] | None:
        return load(self.require_path) if self.require_path else None


PEERS = {
    "gepa": OptimizerEntry("gepa", run_path="dlmpo.peers.gepa_peer:run_gepa",
                           require_path="dlmpo.peers.gepa_peer:_require_gepa"),
    "gepa+dlm": OptimizerEntry("gepa+dlm", run_path="dlmpo.peers.gepa_peer:run_gepa_dlm",
                               require_path="dlmpo.peers.gepa_peer:_require_gepa", dlm_peer=True),
    "mipro": OptimizerEntry("mipro", run_path="dlmpo.peers.mipro_peer:run_mipro",
                            require_path="dlmpo.peers.mipro_peer:_require_dspy"),
}


def optimizers() -> dict[str, OptimizerEntry]:
    from dlmpo.optimizer.registry import PROPOSERS

    return {**{name: OptimizerEntry(name, proposer=name) for name in PROPOSERS}, **PEERS}


def optimizer_named(name: str) -> OptimizerEntry:
    known = optimizers()
    if name not in known:
        raise UserError(f"Unknown optimizer '{name}': use {', '.join(known)}.")
    return known[name]
