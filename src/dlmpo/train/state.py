"""What a training run holds while it runs (`TrainState`), what of it is trained, and what
`checkpoint.pt` keeps of it: trainable weights, optimizer state (Adam moments in bf16 to keep the
file small), schedule, RNG state, step and tokens seen."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dlmpo.dlm import DiffusionLM
from dlmpo.dlm.adapter import MASK_ROW, input_embeddings
from dlmpo.train.data import Encoded

CHECKPOINT_KEYS = ("trainable", "optimizer", "schedule", "generator", "step", "tokens_seen")


class MaskRow(torch.nn.Module):
    """A trainable embedding for the mask token alone, swapped in after the (frozen) embedding
    lookup: the rest of the vocabulary, and the tied output head, stay as they are."""

    def __init__(self, dlm: DiffusionLM):
        super().__init__()
        emb = input_embeddings(dlm)
        self.mask_id = dlm.mask_token_id
        self.row = torch.nn.Parameter(emb.weight[self.mask_id].detach().clone().float())
        self.handle = emb.register_forward_hook(self._swap)
        self._ids: torch.Tensor | None = None
        self.pre = emb.register_forward_pre_hook(self._remember)

    def _remember(self, module, args):
        self._ids = args[0]

    def _swap(self, module, args, output):
        is_mask = (self._ids == self.mask_id)[..., None]
        return torch.where(is_mask, self.row.to(output.dtype), output)


def trainable_state(dlm: DiffusionLM, mask_row: MaskRow | None = None) -> dict[str, torch.Tensor]:
    state = {n: p.detach().cpu().contiguous() for n, p in dlm.model.named_parameters() if p.requires_grad}
    if mask_row is not None:
        state[MASK_ROW] = mask_row.row.detach().cpu().clone()
    return state


@dataclass
class TrainState:
    """A run's model and data, its optimizer, and where it stands."""

    dlm: DiffusionLM
    train: list[Encoded]
    held_out: list[Encoded]
    dropped: int  # training examples longer than max_length
    held_out_dropped: int
    mask_row: MaskRow | None
    optim: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    step: int = 0
    tokens_seen: int = 0
    last: dict = field(default_factory=dict)  # the last step's loss and accuracy
    eval_seconds: float = 0.0  # the last held-out evaluation's: a time-limited slice keeps room for one
    slice_began: float = 0.0  # where this invocation's training began: time, step, tokens seen
    slice_step: int = 0
    slice_tokens: int = 0
    lengths: list[int] = field(init=False)
    pad: int = field(init=False)

    def __post_init__(self):
        self.lengths = [len(e.input_ids) for e in self.train]
        tokenizer = self.dlm.tokenizer
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optim.param_groups for p in group["params"]]

    def checkpoint(self) -> dict:
        return {"trainable": trainable_state(self.dlm, self.mask_row), "optimizer": _compact_optimizer(self.optim.state_dict()),
                "schedule": self.schedule.state_dict(), "generator": self.gen.get_state(), "step": self.step,
                "tokens_seen": self.tokens_seen}

    def restore(self, saved: dict) -> None:
        """Put back a `checkpoint()` loaded onto the model's device."""
        weights = saved["trainable"]
        if self.mask_row is not None:
            with torch.no_grad():
                self.mask_row.row.copy_(weights.pop(MASK_ROW))
        self.dlm.model.load_state_dict({k: v.to(self.dlm.device) for k, v in weights.items()}, strict=False)
        self.optim.load_state_dict(_expand_optimizer(saved["optimizer"]))
        self.schedule.load_state_dict(saved["schedule"])
        self.gen.set_state(saved["generator"].cpu())  # map_location put it on the device
        self.step, self.tokens_seen = saved["step"], saved["tokens_seen"]


def _compact_optimizer(state: dict) -> dict:
    """Adam moments in bf16: a third of the checkpoint, at a precision the moments do not miss."""
    out = {"param_groups": state["param_groups"], "state": {}}
    for k, s in state["state"].items():
        out["state"][k] = {n: (v.to(torch.bfloat16) if n in ("exp_avg", "exp_avg_sq") else v) for n, v in s.items()}
    return out


def _expand_optimizer(state: dict) -> dict:
    return {"param_groups": state["param_groups"], "state": {
        k: {n: (v.float() if n in ("exp_avg", "exp_avg_sq") else v) for n, v in s.items()}
        for k, s in state["state"].items()}}
