"""Supervised fine-tuning of masked DLMs with joint or target-only masking, LoRA (peft) or full,
held-out evaluation, a wall-clock limit, and resume across sessions.

    out/
      train_config.json   the settings (a resumed run must match them)
      log.jsonl           train / eval / slice events: step, tokens seen, loss, accuracy, seconds
      checkpoint.pt       what resuming needs (`state.TrainState.checkpoint`), written atomically
      adapter.safetensors LoRA weights (+ the mask token's embedding row when it is trained), or
                          model.safetensors for full fine-tuning

A run with `time_limit` stops cleanly when the limit is reached, saves, and the same command
resumes it; `steps` may then be raised to continue a finished run."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch

from dlmpo.devices import check_device
from dlmpo.dlm import DiffusionLM, load_dlm
from dlmpo.dlm.adapter import MASK_ROW, add_lora, attention_kind, configure_for
from dlmpo.dlm.base import NativeDLM
from dlmpo.dlm.inference import bf16_is_native
from dlmpo.dlm.modeling import attention_pattern
from dlmpo.errors import UserError
from dlmpo.files import check_out_dir, load_torch, read_json, save_torch
from dlmpo.runs.rundir import EventLog, bind_config
from dlmpo.train.data import Encoded, collate, encode_rows, read_rows
from dlmpo.train.objective import MASKINGS, apply_masks, loss_rows, maskable, masked_loss
from dlmpo.train.state import CHECKPOINT_KEYS, MaskRow, TrainState, trainable_state

EVAL_ON = ("target", "context", "all")
VOLATILE = ("device", "eval_every", "save_every", "steps", "time_limit", "init_from")  # a resumed run may change them


@dataclass
class TrainConfig:
    dlm: str
    data: str
    out: str
    eval_data: str | None = None
    masking: str = "joint"
    span_fraction: float = 0.0
    attention: str = "full"  # full | block:B | anneal:N (causal opened over N steps)
    lora: bool = True
    lora_rank: int = 16
    lora_alpha: int = 32
    train_mask_row: bool = False
    steps: int = 200
    batch_size: int = 8
    lr: float = 2e-4
    warmup: int = 10
    max_length: int = 512
    eval_every: int = 50
    save_every: int = 100
    eval_ratio: float = 0.5
    eval_on: str = "target"
    bf16: bool = False
    seed: int = 0
    time_limit: float | None = None  # seconds of this invocation
    init_from: str | None = None  # adapter folder to start from when out/ holds no checkpoint
    device: str | None = None

    def validate(self) -> None:
        if self.masking not in MASKINGS:
            raise UserError(f"Unknown masking '{self.masking}': use joint or target.")
        if self.eval_on not in EVAL_ON:
            raise UserError(f"Unknown eval_on '{self.eval_on}': use target, context or all.")
        for name in ("steps", "batch_size", "max_length", "eval_every", "save_every", "lora_rank"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1.")
        if not 0 < self.eval_ratio <= 1:
            raise UserError("eval_ratio must be in (0, 1].")
        if not 0 <= self.span_fraction <= 1:
            raise UserError("span_fraction must be in [0, 1].")
        if self.time_limit is not None and self.time_limit <= 0:
            raise UserError("time_limit must be positive.")
        if not (math.isfinite(self.lr) and self.lr >= 0):  # 0 is allowed: the weights stay as they start
            raise UserError(f"lr must be a number of at least 0, not {self.lr}.")
        if self.warmup < 0:
            raise UserError("warmup must not be negative.")
        if self.lora_alpha < 1:
            raise UserError("lora_alpha must be at least 1.")
        attention_kind(self.attention)
        check_device(self.device)

    def identity(self) -> dict:
        return self.identity_in(asdict(self))

    @classmethod
    def identity_in(cls, record: dict) -> dict:
        """The settings that define a run's result, out of a train_config.json's record."""
        return {f.name: record.get(f.name) for f in fields(cls) if f.name not in VOLATILE}


# the command line's help of each setting (`dlmpo train --help` adds the defaults above)
HELP = {
    "dlm": "Base DLM specifier (smollm2:base, dream:, llada:, mlm:, tiny-random:).",
    "data": "JSONL rows: canvas {prompt, context?} or chat {messages} / {system?, user, assistant}.",
    "out": "Output directory (re-run the same command to resume).",
    "eval_data": "Held-out JSONL for loss and masked-token accuracy.",
    "masking": "joint (every token) or target (only the text the DLM writes).",
    "span_fraction": "Share of sequences masked as the optimizer masks: target spans only.",
    "attention": "full, block:B (block-causal) or anneal:N (causal opened over N steps).",
    "lora_rank": "LoRA rank (alpha is twice the rank).",
    "train_mask_row": "Also train the mask token's embedding row.",
    "steps": "Optimizer steps in all (raise it to continue a finished run).",
    "batch_size": "Sequences per step.",
    "lr": "Learning rate.",
    "warmup": "Warm-up steps.",
    "max_length": "Tokens per sequence (longer examples are dropped and counted).",
    "eval_every": "Evaluate every N steps.",
    "save_every": "Checkpoint every N steps.",
    "eval_ratio": "Share of tokens masked in the held-out evaluation (fixed seed).",
    "eval_on": "Held-out metric on target, context or all tokens.",
    "bf16": "bf16 autocast (faster on recent CPUs and GPUs).",
    "init_from": "Adapter folder to start from when --out holds no checkpoint.",
    "seed": "Random seed.",
    "device": "cpu, cuda, ...",
}

def inference_attention(spec: str) -> str:
    """The attention a trained model runs with: annealing ends at full attention."""
    kind, arg = attention_kind(spec)
    return f"block:{arg}" if kind == "block" else "full"


def step_pattern(spec: str, step: int, length: int, device, generator: torch.Generator):
    kind, arg = attention_kind(spec)
    if kind == "full":
        return None
    if kind == "block":
        return attention_pattern(f"block:{arg}", length, device)
    return attention_pattern("anneal", length, device, open_fraction=min(1.0, step / arg), generator=generator)


def forward(dlm: DiffusionLM, ids: torch.Tensor, real: torch.Tensor, rows: torch.Tensor, pattern=None) -> torch.Tensor:
    """Logits (B, M, V) at `rows` (B, M) only."""
    if isinstance(dlm, NativeDLM):
        return dlm.model(ids, attention_mask=real, pattern=pattern, rows=rows)[0]
    logits = dlm.model(input_ids=ids, attention_mask=real).logits
    return logits.gather(1, rows[..., None].expand(-1, -1, logits.shape[-1]))


def masked_step(dlm: DiffusionLM, ids, noisy, real, masked, t, allowed, pattern=None):
    """(weighted loss, mean CE, accuracy) of one masked batch."""
    rows, positions, valid = loss_rows(masked, dlm.shift)
    logits = forward(dlm, noisy, real, rows, pattern)
    return masked_loss(logits, ids.gather(1, positions), valid, t, allowed)


@torch.no_grad()
def evaluate_masked(dlm: DiffusionLM, examples: list[Encoded], *, on: str = "target", ratio: float = 0.5,
                    batch_size: int = 8, seed: int = 1234, attention: str = "full") -> dict[str, float]:
    """Loss and accuracy on tokens masked at a fixed ratio, with a fixed seed: comparable across
    models. `on` = target | context | all chooses which tokens may be masked. The model runs with
    the attention it will be used with."""
    was_training = dlm.model.training
    dlm.model.eval()
    gen = torch.Generator(device=dlm.device).manual_seed(seed)
    pad = dlm.tokenizer.pad_token_id if dlm.tokenizer.pad_token_id is not None else dlm.tokenizer.eos_token_id
    run_with = inference_attention(attention)
    total_ce = total_correct = total = 0.0
    for start in range(0, len(examples), batch_size):
        ids, target, real = (t.to(dlm.device) for t in collate(examples[start:start + batch_size], pad))
        allowed = maskable(target, real, "joint")
        if on == "target":
            allowed &= target
        elif on == "context":
            allowed &= ~target
        noisy, masked, t, allowed = apply_masks(ids, allowed, dlm.mask_token_id, gen, ratio=ratio)
        pattern = attention_pattern(run_with, ids.shape[1], dlm.device)
        _, ce, acc = masked_step(dlm, ids, noisy, real, masked, t, allowed, pattern)
        n = float(masked.sum())
        total_ce += float(ce) * n
        total_correct += float(acc) * n
        total += n
    dlm.model.train(was_training)
    return {"loss": total_ce / max(total, 1), "accuracy": total_correct / max(total, 1), "tokens": int(total)}


class Trainer:
    """A training run in four parts over one `TrainState`: set up (data, model, optimizer), resume
    (from the checkpoint, or from exported weights), step until `steps` or the time limit, finish
    (the slice's log line, the checkpoint, the exported weights)."""

    def __init__(self, cfg: TrainConfig, on_log: Callable[[dict], None] | None = None):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.on_log = on_log or (lambda e: None)
        self.log = EventLog(self.out / "log.jsonl")
        self.checkpoint_file = self.out / "checkpoint.pt"

    def run(self, progress=None) -> dict:
        """Train (or go on training) and return the summary; `progress(step, steps, last)` after each step."""
        began = time.perf_counter()
        state = self._setup()
        self._resume(state)
        self._log({"type": "data", "train": len(state.train), "train_dropped": state.dropped,
                   "held_out": len(state.held_out), "held_out_dropped": state.held_out_dropped,
                   "max_length": self.cfg.max_length})
        eval_before = self._logged_eval(0)
        if state.held_out and eval_before is None:
            eval_before = self._held_out_eval(state)
        stopped_by_time = self._train(state, began, progress)
        return self._finish(state, stopped_by_time, eval_before)

    def _setup(self) -> TrainState:
        cfg = self.cfg
        rows = read_rows(cfg.data)  # the data is checked before anything is written or loaded
        held_rows = read_rows(cfg.eval_data) if cfg.eval_data else []
        check_out_dir(self.out)
        bind_config(self.out / "train_config.json", asdict(cfg), TrainConfig.identity_in,
                    read=lambda path: read_json(path, "Training config"), what="training run")
        torch.manual_seed(cfg.seed)
        dlm = load_dlm(cfg.dlm, cfg.device)
        if cfg.bf16 and dlm.device.type == "cpu" and not bf16_is_native():
            self._log({"type": "warning", "text": "--bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated: "
                                                  "training steps run several times slower than in float32"})
        configure_for(dlm, cfg.attention)
        train, dropped = encode_rows(dlm, rows, cfg.max_length)
        if not train:
            raise UserError(f"No training example of {cfg.data} fits in {cfg.max_length} tokens.")
        held_out, held_out_dropped = encode_rows(dlm, held_rows, cfg.max_length) if cfg.eval_data else ([], 0)
        if cfg.lora:
            add_lora(dlm, cfg.lora_rank, cfg.lora_alpha)
        else:
            for p in dlm.model.parameters():
                p.requires_grad = True
        mask_row = MaskRow(dlm) if cfg.train_mask_row else None
        params = [p for p in dlm.model.parameters() if p.requires_grad] + ([mask_row.row] if mask_row else [])
        optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1)))
        gen = torch.Generator(device=dlm.device).manual_seed(cfg.seed)
        return TrainState(dlm, train, held_out, dropped, held_out_dropped, mask_row, optim, schedule, gen)

    def _resume(self, state: TrainState) -> None:
        if self.checkpoint_file.is_file():
            state.restore(load_torch(self.checkpoint_file, "Checkpoint", keys=CHECKPOINT_KEYS,
                                     map_location=state.dlm.device, weights_only=True))
            self._log({"type": "resume", "step": state.step, "tokens_seen": state.tokens_seen})
        elif self.cfg.init_from:
            self._init_from(state)
            self._log({"type": "init", "from": self.cfg.init_from, "step": state.step, "tokens_seen": state.tokens_seen})

    def _init_from(self, state: TrainState) -> None:
        """Start from exported weights (e.g. the shipped adapter) with a fresh optimizer: the step
        and token counts continue from the export, so the batches do too."""
        from safetensors.torch import load_file

        folder = Path(self.cfg.init_from)
        if not (folder / "adapter.safetensors").is_file():
            raise UserError(f"--init-from {folder} holds no adapter.safetensors.")
        try:
            weights = load_file(str(folder / "adapter.safetensors"))
        except Exception as exc:
            raise UserError(f"--init-from {folder / 'adapter.safetensors'} cannot be read ({type(exc).__name__}).") from None
        row = weights.pop(MASK_ROW, None)
        try:
            result = state.dlm.model.load_state_dict({k: v.to(state.dlm.device) for k, v in weights.items()}, strict=False)
        except RuntimeError:  # size mismatch
            raise UserError(f"--init-from {folder} was trained on another model or LoRA shape.") from None
        if result.unexpected_keys:
            raise UserError(f"--init-from {folder} was trained on another model or LoRA shape.")
        if state.mask_row is not None and row is not None:
            with torch.no_grad():
                state.mask_row.row.copy_(row)
        info = read_json(folder / "train_config.json", "Adapter config") if (folder / "train_config.json").is_file() else {}
        try:
            state.step, state.tokens_seen = int(info.get("step", 0)), int(info.get("tokens_seen", 0))
        except (TypeError, ValueError):
            raise UserError(f"--init-from {folder}: train_config.json's step and tokens_seen must be integers.") from None
        state.gen.manual_seed(self.cfg.seed * 1_000_003 + state.step)

    def _train(self, state: TrainState, began: float, progress) -> bool:
        """Steps until `steps`, evaluating and saving on their schedules. True when the time limit
        stopped it first: one more step and a held-out evaluation would not have fitted."""
        cfg = self.cfg
        state.dlm.model.train()
        state.slice_began, state.slice_step, state.slice_tokens = time.perf_counter(), state.step, state.tokens_seen
        step_seconds = 0.0
        while state.step < cfg.steps:
            if cfg.time_limit is not None and (
                    time.perf_counter() - began + step_seconds + state.eval_seconds > cfg.time_limit):
                return True
            step_began = time.perf_counter()
            self._step(state)
            if progress is not None:
                progress(state.step, cfg.steps, state.last)
            step_seconds = time.perf_counter() - step_began
            if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
                self._log_progress(state)
            if state.step % cfg.save_every == 0 or state.step == cfg.steps:
                save_torch(state.checkpoint(), self.checkpoint_file)
        return False

    def _step(self, state: TrainState) -> None:
        cfg, dlm = self.cfg, state.dlm
        batch = [state.train[i] for i in batch_indices(state.step, cfg.batch_size, state.lengths, cfg.seed)]
        ids, target, real = (t.to(dlm.device) for t in collate(batch, state.pad))
        allowed = maskable(target, real, cfg.masking)
        noisy, masked, t, allowed = apply_masks(ids, allowed, dlm.mask_token_id, state.gen, target=target,
                                                span_fraction=cfg.span_fraction)
        pattern = step_pattern(cfg.attention, state.step, ids.shape[1], dlm.device, state.gen)
        with torch.autocast(dlm.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss, ce, acc = masked_step(dlm, ids, noisy, real, masked, t, allowed, pattern)
        state.optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state.params, 1.0)
        state.optim.step()
        state.schedule.step()
        state.step += 1
        state.tokens_seen += int(real.sum())
        state.last = {"step": state.step, "loss": loss.item(), "masked_ce": ce.item(), "masked_acc": acc.item()}

    def _finish(self, state: TrainState, stopped_by_time: bool, eval_before: dict | None) -> dict:
        from safetensors.torch import save_file

        cfg = self.cfg
        if stopped_by_time and state.step > state.slice_step:
            if state.step % cfg.eval_every:  # each slice ends with its held-out metrics
                self._log_progress(state)
            save_torch(state.checkpoint(), self.checkpoint_file)
        seconds = time.perf_counter() - state.slice_began
        self._log({"type": "slice", "from_step": state.slice_step, "to_step": state.step,
                   "tokens": state.tokens_seen - state.slice_tokens, "tokens_seen": state.tokens_seen,
                   "seconds": round(seconds, 1), "stopped": "time limit" if stopped_by_time else "steps"})
        state.dlm.model.eval()
        weights = trainable_state(state.dlm, state.mask_row)
        finished = state.step >= cfg.steps
        summary = {"out": str(self.out), "steps": state.step, "finished": finished, "tokens_seen": state.tokens_seen,
                   "seconds": round(seconds, 2), "train": state.last, "eval_before": eval_before, "eval_after": None}
        if finished:
            save_file(weights, str(self.out / ("adapter.safetensors" if cfg.lora else "model.safetensors")))
            if state.held_out:
                summary["eval_after"] = self._logged_eval(state.step) or self._held_out_eval(state)
        summary["weights_mb"] = round(sum(v.numel() * v.element_size() for v in weights.values()) / 2**20, 3)
        return summary

    def _log_progress(self, state: TrainState) -> None:
        """The last step's training metrics, then the held-out ones when there is held-out data."""
        elapsed = time.perf_counter() - state.slice_began
        self._log({"type": "train", **state.last, "tokens_seen": state.tokens_seen,
                   "tokens_per_s": round((state.tokens_seen - state.slice_tokens) / max(elapsed, 1e-9), 1)})
        if state.held_out:
            self._held_out_eval(state)

    def _held_out_eval(self, state: TrainState) -> dict:
        began = time.perf_counter()
        metrics = evaluate_masked(state.dlm, state.held_out, on=self.cfg.eval_on, ratio=self.cfg.eval_ratio,
                                  attention=self.cfg.attention)
        state.eval_seconds = time.perf_counter() - began
        self._log({"type": "eval", "step": state.step, "tokens_seen": state.tokens_seen, **metrics})
        return metrics

    def _logged_eval(self, step: int) -> dict | None:
        """The held-out metrics an earlier slice logged at `step`, if any (the last of them)."""
        found = None
        for event in self.log.read():
            if event.get("type") == "eval" and event.get("step") == step:
                found = {k: event[k] for k in ("loss", "accuracy", "tokens")}
        return found

    def _log(self, event: dict) -> None:
        self.log.append(event)
        self.on_log(event)


def batch_indices(step: int, batch_size: int, lengths: list[int], seed: int, window: int = 16) -> list[int]:
    """The examples of a step. Each epoch is a seeded permutation, cut into windows of `window`
    batches; inside a window examples of similar length share a batch (less padding to compute)
    and the batches come in a seeded order. A resumed run sees the same batches as an
    uninterrupted one."""
    n = len(lengths)
    per_window = batch_size * window
    epoch_steps = -(-n // batch_size)
    epoch, local = divmod(step, epoch_steps)
    order = list(range(n))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    w, within = divmod(local, window)
    chunk = sorted(order[w * per_window:(w + 1) * per_window], key=lambda i: lengths[i])
    batches = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    random.Random(f"{seed}:{epoch}:{w}").shuffle(batches)
    batch = batches[within]
    if len(batch) < batch_size:  # the epoch's last, short batch is topped up from its start
        batch = batch + order[: batch_size - len(batch)]
    return batch
