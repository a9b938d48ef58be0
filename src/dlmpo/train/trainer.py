"""Supervised fine-tuning of masked DLMs with joint or response-only masking, LoRA (peft) or full,
with held-out evaluation, checkpoints and resume.

    out/
      train_config.json   the settings (a resumed run must match them)
      log.jsonl           one line per evaluation: step, loss, masked-token accuracy
      checkpoint/         trainable weights, optimizer state, step and RNG state (resume)
      adapter.safetensors LoRA weights (or model.safetensors for full fine-tuning)"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from dlmpo.dlm import DiffusionLM, load_dlm
from dlmpo.dlm.base import NativeDLM
from dlmpo.errors import UserError
from dlmpo.train.data import Encoded, collate, encode, read_chat_jsonl, response_end_id
from dlmpo.train.objective import MASKINGS, apply_masks, maskable, masked_loss

NATIVE_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    dlm: str
    data: str
    out: str
    eval_data: str | None = None
    masking: str = "joint"
    lora: bool = True
    lora_rank: int = 16
    lora_alpha: int = 32
    steps: int = 200
    batch_size: int = 8
    lr: float = 2e-4
    warmup: int = 10
    max_length: int = 512
    eval_every: int = 50
    save_every: int = 100
    eval_ratio: float = 0.5
    eval_on: str = "prompt"
    seed: int = 0
    device: str | None = None

    def validate(self) -> None:
        if self.masking not in MASKINGS:
            raise UserError(f"Unknown masking '{self.masking}': use joint or response.")
        if self.eval_on not in ("prompt", "response", "all"):
            raise UserError(f"Unknown eval_on '{self.eval_on}': use prompt, response or all.")
        for name in ("steps", "batch_size", "max_length", "eval_every", "save_every", "lora_rank"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1.")
        if not 0 < self.eval_ratio <= 1:
            raise UserError("eval_ratio must be in (0, 1].")

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("device", "eval_every", "save_every", "steps")}


def forward(dlm: DiffusionLM, ids: torch.Tensor) -> torch.Tensor:
    if isinstance(dlm, NativeDLM):
        return dlm.model(ids)[0]
    return dlm.model(input_ids=ids).logits


def lora_targets(dlm: DiffusionLM) -> list[str]:
    if isinstance(dlm, NativeDLM):
        return NATIVE_LORA_TARGETS
    names = {name.split(".")[-1] for name, mod in dlm.model.named_modules() if isinstance(mod, torch.nn.Linear)}
    return sorted(n for n in names if not any(h in n for h in ("decoder", "lm_head", "head", "classifier")))


def add_lora(dlm: DiffusionLM, rank: int, alpha: int) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=lora_targets(dlm))
    inject_adapter_in_model(config, dlm.model)
    for name, p in dlm.model.named_parameters():
        p.requires_grad = "lora_" in name


def trainable_state(dlm: DiffusionLM) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in dlm.model.named_parameters() if p.requires_grad}


def load_trained(dlm: DiffusionLM, out_dir: str | Path) -> DiffusionLM:
    """Put the weights a `dlmpo train` run wrote back onto a freshly loaded base DLM."""
    from safetensors.torch import load_file

    out_dir = Path(out_dir)
    cfg_file = out_dir / "train_config.json"
    if not cfg_file.is_file():
        raise UserError(f"{out_dir} holds no training run (no train_config.json).")
    cfg = json.loads(cfg_file.read_text())
    if cfg["lora"]:
        add_lora(dlm, cfg["lora_rank"], cfg["lora_alpha"])
        weights = load_file(str(out_dir / "adapter.safetensors"))
    else:
        weights = load_file(str(out_dir / "model.safetensors"))
    missing = dlm.model.load_state_dict({k: v.to(dlm.device) for k, v in weights.items()}, strict=False)
    if missing.unexpected_keys:
        raise UserError(f"{out_dir} was trained on another model: unexpected weights {missing.unexpected_keys[:3]}.")
    dlm.model.eval()
    return dlm


@torch.no_grad()
def evaluate_masked(dlm: DiffusionLM, examples: list[Encoded], *, on: str = "prompt", ratio: float = 0.5,
                    batch_size: int = 8, seed: int = 1234) -> dict[str, float]:
    """Loss and accuracy on tokens masked at a fixed ratio, with a fixed seed: comparable across
    models. `on` = prompt | response | all chooses which tokens may be masked."""
    was_training = dlm.model.training
    dlm.model.eval()
    gen = torch.Generator(device=dlm.device).manual_seed(seed)
    pad = dlm.tokenizer.pad_token_id if dlm.tokenizer.pad_token_id is not None else dlm.tokenizer.eos_token_id
    total_ce = total_correct = total = 0.0
    for start in range(0, len(examples), batch_size):
        ids, resp, real = (t.to(dlm.device) for t in collate(examples[start:start + batch_size], pad))
        allowed = maskable(resp, real, "joint")
        if on == "prompt":
            allowed &= ~resp
        elif on == "response":
            allowed &= resp
        noisy, masked, t = apply_masks(ids, allowed, dlm.mask_token_id, gen, ratio=ratio)
        _, ce, acc = masked_loss(forward(dlm, noisy), ids, masked, t, allowed, dlm.shift)
        n = float(masked.sum())
        total_ce += float(ce) * n
        total_correct += float(acc) * n
        total += n
    dlm.model.train(was_training)
    return {"loss": total_ce / max(total, 1), "accuracy": total_correct / max(total, 1), "tokens": int(total)}


class Trainer:
    def __init__(self, cfg: TrainConfig, on_log: Callable[[dict], None] | None = None):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.on_log = on_log or (lambda e: None)

    def _bind(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "train_config.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if {k: saved.get(k) for k in self.cfg.identity()} != self.cfg.identity():
                raise UserError(f"{self.out} holds a training run with other settings: use a new --out.")
        path.write_text(json.dumps(asdict(self.cfg), indent=2))

    def run(self, progress=None) -> dict:
        from safetensors.torch import load_file, save_file

        cfg = self.cfg
        self._bind()
        torch.manual_seed(cfg.seed)
        dlm = load_dlm(cfg.dlm, cfg.device)
        tok = dlm.tokenizer
        eos = response_end_id(tok)
        train = [encode(tok, m, cfg.max_length, eos) for m in read_chat_jsonl(cfg.data)]
        held_out = [encode(tok, m, cfg.max_length, eos) for m in read_chat_jsonl(cfg.eval_data)] if cfg.eval_data else []
        if cfg.lora:
            add_lora(dlm, cfg.lora_rank, cfg.lora_alpha)
        else:
            for p in dlm.model.parameters():
                p.requires_grad = True
        params = [p for p in dlm.model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1)))
        ckpt = self.out / "checkpoint"
        step = 0
        gen = torch.Generator(device=dlm.device).manual_seed(cfg.seed)
        if (ckpt / "state.json").is_file():  # resume
            state = json.loads((ckpt / "state.json").read_text())
            dlm.model.load_state_dict({k: v.to(dlm.device) for k, v in load_file(str(ckpt / "trainable.safetensors")).items()},
                                      strict=False)
            optim.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=dlm.device, weights_only=True))
            schedule.load_state_dict(state["schedule"])
            gen.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
            step = state["step"]
            self.on_log({"type": "resume", "step": step})
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        log = (self.out / "log.jsonl").open("a")
        first_eval = self._logged_eval(0)
        if held_out and first_eval is None:
            first_eval = evaluate_masked(dlm, held_out, on=cfg.eval_on, ratio=cfg.eval_ratio)
            self._log(log, {"type": "eval", "step": 0, **first_eval})
        dlm.model.train()
        start = time.perf_counter()
        last = {}
        while step < cfg.steps:
            batch = [train[i] for i in batch_indices(step, cfg.batch_size, len(train), cfg.seed)]
            ids, resp, real = (t.to(dlm.device) for t in collate(batch, pad))
            allowed = maskable(resp, real, cfg.masking)
            noisy, masked, t = apply_masks(ids, allowed, dlm.mask_token_id, gen)
            loss, ce, acc = masked_loss(forward(dlm, noisy), ids, masked, t, allowed, dlm.shift)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            schedule.step()
            step += 1
            last = {"step": step, "loss": loss.item(), "masked_ce": ce.item(), "masked_acc": acc.item()}
            if progress is not None:
                progress(step, cfg.steps, last)
            if held_out and (step % cfg.eval_every == 0 or step == cfg.steps):
                self._log(log, {"type": "eval", **{"step": step},
                                **evaluate_masked(dlm, held_out, on=cfg.eval_on, ratio=cfg.eval_ratio)})
                dlm.model.train()
            if step % cfg.save_every == 0 or step == cfg.steps:
                ckpt.mkdir(exist_ok=True)
                save_file(trainable_state(dlm), str(ckpt / "trainable.safetensors"))
                torch.save(optim.state_dict(), ckpt / "optimizer.pt")
                (ckpt / "state.json").write_text(json.dumps({
                    "step": step, "schedule": schedule.state_dict(), "generator": gen.get_state().tolist()}))
        dlm.model.eval()
        weights = trainable_state(dlm)
        save_file(weights, str(self.out / ("adapter.safetensors" if cfg.lora else "model.safetensors")))
        final = evaluate_masked(dlm, held_out, on=cfg.eval_on, ratio=cfg.eval_ratio) if held_out else None
        log.close()
        size_mb = sum(v.numel() * v.element_size() for v in weights.values()) / 2**20
        return {"out": str(self.out), "steps": step, "seconds": round(time.perf_counter() - start, 2),
                "train": last, "eval_before": first_eval, "eval_after": final, "weights_mb": round(size_mb, 3)}

    def _logged_eval(self, step: int) -> dict | None:
        path = self.out / "log.jsonl"
        if not path.is_file():
            return None
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("type") == "eval" and event.get("step") == step:
                return {k: event[k] for k in ("loss", "accuracy", "tokens")}
        return None

    def _log(self, f, event: dict) -> None:
        f.write(json.dumps(event) + "\n")
        f.flush()
        self.on_log(event)


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """The examples of a step: epochs are seeded permutations, so a resumed run sees the same
    batches as an uninterrupted one."""
    out = []
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, pos = divmod(k, n)
        order = list(range(n))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        out.append(order[pos])
    return out
