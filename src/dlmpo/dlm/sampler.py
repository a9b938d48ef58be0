"""Masked-diffusion sampling: denoise the masked positions of a token sequence in T steps.

Only masked positions ever change. Each step runs the model once (one NFE), scores every still-
masked position, and reveals some of them:

- how many: `origin` reveals each mask with probability 1 - s/t (Dream's original rule); the
  other rules reveal an even share of the remaining masks per step (LLaDA's schedule), and with
  `threshold` also every position whose token probability exceeds it (at least one per step);
- which: `maskgit_plus` (highest top-1 probability), `topk_margin` (top-1 minus top-2),
  `entropy` (lowest entropy), `random`; `alg_temp` > 0 samples the order from a softmax over
  those confidences instead of taking the top ones;
- what: argmax at temperature 0, otherwise sampling with temperature / top-p / top-k.

`block_length` decodes the masked positions semi-autoregressively, left to right in blocks.
`kv_refresh=k` reuses the K/V of the positions outside the current block and recomputes them
every k steps (and at each block start); with k=1 every step is a full forward, identical to the
plain sampler."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from dlmpo.dlm.base import DiffusionLM
from dlmpo.errors import UserError

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy", "random")


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 32
    alg: str = "entropy"
    alg_temp: float = 0.0
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    block_length: int | None = None
    threshold: float | None = None
    kv_refresh: int | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.alg not in ALGS:
            raise UserError(f"Unknown remasking rule '{self.alg}': use one of {', '.join(ALGS)}.")
        if self.steps < 1:
            raise UserError("steps must be at least 1.")
        if self.temperature < 0 or self.alg_temp < 0:
            raise UserError("temperature and alg_temp must be >= 0.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UserError("top_p must be in (0, 1].")
        if self.top_k is not None and self.top_k < 1:
            raise UserError("top_k must be at least 1.")
        if self.block_length is not None and self.block_length < 1:
            raise UserError("block_length must be at least 1.")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise UserError("threshold must be in (0, 1].")
        if self.kv_refresh is not None and self.kv_refresh < 1:
            raise UserError("kv_refresh must be at least 1.")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SampleResult:
    tokens: torch.Tensor  # (B, L), every mask filled
    nfe: int  # model forward passes
    full_forwards: int
    masks: int  # masked positions per row
    seconds: float

    @property
    def tokens_per_forward(self) -> float:
        return self.masks / self.nfe if self.nfe else 0.0


def _nucleus(logits: torch.Tensor, top_p: float, shortlist: int = 512) -> torch.Tensor:
    """Top-p filtering, exact. The nucleus is looked for among the `shortlist` most likely tokens
    first; only rows whose shortlist holds less than `top_p` of the mass pay for a full sort."""
    k = min(shortlist, logits.shape[-1])
    vals, idx = logits.topk(k, dim=-1)
    lse = logits.logsumexp(-1, keepdim=True)
    p_sorted = (vals - lse).exp()
    cum = p_sorted.cumsum(-1)
    out = torch.full_like(logits, float("-inf"))
    out.scatter_(-1, idx, vals.masked_fill(cum - p_sorted > top_p, float("-inf")))
    wide = cum[..., -1] < top_p
    if bool(wide.any()):
        rows = logits[wide]
        sorted_logits, order = torch.sort(rows, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        kept = sorted_logits.masked_fill(probs.cumsum(-1) - probs > top_p, float("-inf"))
        out[wide] = torch.full_like(rows, float("-inf")).scatter(-1, order, kept)
    return out


def _filter(logits: torch.Tensor, top_p: float | None, top_k: int | None) -> torch.Tensor:
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        logits = _nucleus(logits, top_p)
    return logits


def _choose_tokens(logits: torch.Tensor, cfg: SamplerConfig, gen: torch.Generator):
    """For (N, V) logits: the chosen tokens, the probability of each, and the ranking confidence
    of the reveal rule. Sampling uses the Gumbel-max trick (same law as multinomial, faster)."""
    if cfg.temperature > 0:
        logits = logits / cfg.temperature
    logits = _filter(logits, cfg.top_p, cfg.top_k)
    probs = logits.softmax(-1)
    if cfg.temperature > 0:
        uniform = torch.rand(logits.shape, generator=gen, device=logits.device).clamp_(1e-20, 1.0)
        tokens = (logits - torch.log(-torch.log(uniform))).argmax(-1)
    else:
        tokens = probs.argmax(-1)
    chosen_p = probs.gather(-1, tokens[..., None]).squeeze(-1)
    if cfg.alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        confidence = top2[..., 0] - top2[..., 1]
    elif cfg.alg == "entropy":
        confidence = (probs * torch.log(probs.clamp_min(1e-12))).sum(-1)  # negative entropy
    elif cfg.alg == "random":
        confidence = torch.rand(chosen_p.shape, generator=gen, device=chosen_p.device)
    else:  # maskgit_plus, and origin (which does not rank)
        confidence = chosen_p
    return tokens, chosen_p, confidence


def _even_share(remaining: int, steps_left: int) -> int:
    return math.ceil(remaining / steps_left) if steps_left > 0 else remaining


def _steps_per_block(total_steps: int, blocks: int) -> list[int]:
    base, extra = divmod(total_steps, blocks)
    return [base + (1 if i < extra else 0) for i in range(blocks)]


class Sampler:
    def __init__(self, model: DiffusionLM, config: SamplerConfig):
        config.validate()
        if config.kv_refresh is not None and not model.supports_kv_reuse:
            raise UserError(f"{model.name} does not support K/V reuse: drop kv_refresh.")
        self.model = model
        self.cfg = config

    def sample(self, input_ids: torch.Tensor) -> SampleResult:
        """Fill every mask token in `input_ids` (B, L). Rows must hold equal numbers of masks."""
        model, cfg = self.model, self.cfg
        start = time.perf_counter()
        x = input_ids.clone().to(model.device)
        is_mask = x == model.mask_token_id
        counts = is_mask.sum(1)
        if counts.numel() == 0 or int(counts.max()) == 0:
            raise UserError("Nothing to infill: the input holds no mask token.")
        if bool((counts != counts[0]).any()):
            raise UserError("Every candidate in a batch must hold the same number of masks.")
        n_masks = int(counts[0])
        # per row, the masked positions in order; blocks are consecutive chunks of them
        positions = torch.stack([row.nonzero().squeeze(1) for row in is_mask])  # (B, n)
        block = cfg.block_length or n_masks
        n_blocks = math.ceil(n_masks / block)
        if cfg.steps < n_blocks:
            raise UserError(f"steps ({cfg.steps}) must be at least the number of blocks ({n_blocks}).")
        gen = torch.Generator(device=x.device).manual_seed(cfg.seed)
        vocab_limit = min(model.vocab_size, len(model.tokenizer))  # padded rows are not tokens
        nfe = full = 0
        for bi, block_steps in enumerate(_steps_per_block(cfg.steps, n_blocks)):
            cols = slice(bi * block, min((bi + 1) * block, n_masks))
            block_pos = positions[:, cols]  # (B, m)
            kv_context = active = None
            for step in range(block_steps):
                still = x.gather(1, block_pos) == model.mask_token_id  # (B, m)
                if not bool(still.any()):
                    break
                # the raw rows that predict the block's positions (one to the left for Dream)
                rows = (block_pos - 1).clamp_min(0) if model.shift else block_pos
                use_cache = cfg.kv_refresh is not None and step % cfg.kv_refresh != 0
                if use_cache and kv_context is not None:
                    raw = model.raw_logits_partial(x, active, kv_context, rows)
                elif cfg.kv_refresh is not None:
                    raw, kv = model.raw_logits_with_kv(x, rows)
                    active = self._active_positions(block_pos)
                    context_idx = self._complement(active, x.shape[1])
                    kv_context = [(k[:, :, context_idx], v[:, :, context_idx]) for k, v in kv]
                    full += 1
                else:
                    raw = model.raw_logits(x, rows)
                    full += 1
                nfe += 1
                # score only the positions still masked
                flat = raw[..., :vocab_limit][still]
                flat[:, model.mask_token_id] = float("-inf")  # a mask is never an answer
                tok, p, conf = _choose_tokens(flat, cfg, gen)
                current = x.gather(1, block_pos)
                tokens = current.clone()
                tokens[still] = tok
                chosen_p = torch.zeros(still.shape, device=x.device)
                chosen_p[still] = p.float()
                confidence = torch.full(still.shape, float("-inf"), device=x.device)
                confidence[still] = conf.float()
                reveal = self._reveal(still, chosen_p, confidence, block_steps - step, step, block_steps, gen)
                x.scatter_(1, block_pos, torch.where(reveal, tokens, current))
        assert not bool((x == model.mask_token_id).any()), "sampler left a mask unfilled"
        return SampleResult(x, nfe, full, n_masks, time.perf_counter() - start)

    def _active_positions(self, block_pos: torch.Tensor) -> torch.Tensor:
        """Positions recomputed on cached steps: the block, plus the position before each masked
        one for shifted models (its logits predict the mask). One index set for the whole batch."""
        idx = block_pos.flatten()
        if self.model.shift:
            idx = torch.cat([idx, (idx - 1).clamp_min(0)])
        return torch.unique(idx).sort().values

    @staticmethod
    def _complement(active: torch.Tensor, length: int) -> torch.Tensor:
        keep = torch.ones(length, dtype=torch.bool, device=active.device)
        keep[active] = False
        return keep.nonzero().squeeze(1)

    def _reveal(self, still, chosen_p, confidence, steps_left, step, block_steps, gen) -> torch.Tensor:
        cfg = self.cfg
        if cfg.alg == "origin":
            t = 1 - step / block_steps
            s = 1 - (step + 1) / block_steps
            p = 1 - s / t if steps_left > 1 else 1.0
            draw = torch.rand(still.shape, generator=gen, device=still.device) < p
            reveal = still & draw
            if cfg.threshold is not None:
                reveal |= still & (chosen_p >= cfg.threshold)
            return reveal
        conf = confidence.masked_fill(~still, torch.finfo(confidence.dtype).min)
        reveal = torch.zeros_like(still)
        for r in range(still.shape[0]):
            remaining = int(still[r].sum())
            if remaining == 0:
                continue
            k = _even_share(remaining, steps_left)
            if cfg.threshold is not None:
                k = max(k, int((still[r] & (chosen_p[r] >= cfg.threshold)).sum()))
            k = min(max(k, 1), remaining)
            if cfg.alg_temp > 0:
                weights = torch.softmax(conf[r].masked_fill(~still[r], float("-inf")) / cfg.alg_temp, -1)
                pick = torch.multinomial(weights, k, replacement=False, generator=gen)
            else:
                pick = torch.topk(conf[r], k).indices
            reveal[r, pick] = True
        return reveal
