"""Masked-diffusion sampling: denoise the masked positions of a token sequence in T steps.

Only masked positions ever change. Each step scores every still-masked position with one model
forward (one NFE) and reveals some of them:

- how many: `origin` reveals each mask with probability 1 - s/t (Dream's original rule). The other
  rules follow `schedule`: `even` (the default) reveals an even share of the remaining masks per
  step; `dream` is Dream's count, int(n(1 - s/t)) on timesteps from 1 down to 1e-3; `mdlm` is
  LLaDA's as dllm's MDLM sampler computes it, round(n(1 - s/t)); `auto` is the model family's own
  (`dream` for Dream, `mdlm` for LLaDA and masked LMs). A step that would reveal nothing is skipped
  and costs no forward;
- which: `maskgit_plus` (highest top-1 probability), `topk_margin` (top-1 minus top-2),
  `entropy` (lowest entropy), `random`; `alg_temp` > 0 samples the order from a softmax over
  those confidences instead of taking the top ones;
- what: argmax at temperature 0, otherwise sampling with temperature, then top-p, then top-k;
- `threshold` (Fast-dLLM's parallel decoding) replaces count and rule: every masked position whose
  token probability is at least the threshold is revealed, and at least the most probable one.

`block_length` decodes the masked positions semi-autoregressively, left to right in blocks, each
with its share of the steps; the last step of a block reveals whatever is left in it.
`kv_reuse` (Fast-dLLM's dual cache) reuses the K/V of the positions outside the current block,
computed at the block's first step, on models that support it (natively loaded, full attention;
others compute every forward in full); the context then does not see the block's reveals, an
approximation measured in docs/benchmarks.md (on by default since issue 25: the embedded DLM's
held-out infills were as good, in a tenth of the time; `kv_reuse=False` for the exact path).
`kv_refresh=k` asks for reuse and recomputes that K/V every k steps; with k=1 every step is a
full forward, identical to the plain sampler. Rows that are still one canvas (the candidates of
a round, before their first reveal) are computed once in a full forward, and share its K/V.

Random draws (`noise`): with `per_row`, the default, every row of the batch draws from its own
generator on the CPU, seeded by (seed, row), so a candidate's draws depend neither on how many
candidates share its batch nor on the device. `reference` draws as Dream's reference code does,
call for call, from one generator on the model's device (token sampling through
`torch.multinomial` over the whole batch, the `origin` draw over the still-masked positions, the
`alg_temp` draw over whole rows), so a seeded run equals the reference's wherever both draw the
same numbers; the parity tests use it."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from dlmpo import sampling_defaults as defaults
from dlmpo.dlm.base import DiffusionLM
from dlmpo.errors import UserError

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy", "random")
SCHEDULES = ("even", "dream", "mdlm", "auto")
NOISES = ("per_row", "reference")
DREAM_EPS = 1e-3  # Dream's timesteps run from 1 down to eps


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = defaults.STEPS
    alg: str = defaults.ALG
    alg_temp: float = 0.0
    temperature: float = defaults.TEMPERATURE
    top_p: float | None = defaults.TOP_P
    top_k: int | None = None
    block_length: int | None = None
    threshold: float | None = None
    kv_refresh: int | None = None
    kv_reuse: bool = defaults.KV_REUSE
    seed: int = 0
    schedule: str = defaults.SCHEDULE
    noise: str = defaults.NOISE

    def validate(self) -> None:
        if self.alg not in ALGS:
            raise UserError(f"Unknown remasking rule '{self.alg}': use one of {', '.join(ALGS)}.")
        if self.schedule not in SCHEDULES:
            raise UserError(f"Unknown reveal schedule '{self.schedule}': use one of {', '.join(SCHEDULES)}.")
        if self.noise not in NOISES:
            raise UserError(f"Unknown noise '{self.noise}': use one of {', '.join(NOISES)}.")
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


SAMPLER_HELP = {  # the help of `dlmpo infill`'s sampler options
    "steps": "Denoising steps (NFE upper bound).",
    "alg": "Reveal rule: origin, maskgit_plus, topk_margin, entropy, random.",
    "alg_temp": "> 0 samples the reveal order.",
    "temperature": "Token sampling temperature (0 = argmax).",
    "top_p": "Nucleus sampling (1 = off).",
    "top_k": "Top-k sampling.",
    "block_length": "Semi-autoregressive blocks of this many masks.",
    "threshold": "Parallel decoding: reveal every token above this probability.",
    "kv_refresh": "Reuse context K/V, recomputed every k steps (default: at each block's start).",
    "kv_reuse": "Reuse the context's K/V between full forwards, where the DLM supports it.",
    "seed": "Random seed.",
    "schedule": "Tokens revealed per step: even, dream, mdlm, auto (the family's).",
}


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
    """Top-p, then top-k: Dream's order (the nucleus is taken from the full distribution)."""
    if top_p is not None and top_p < 1.0:
        logits = _nucleus(logits, top_p)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


class _BatchNoise:
    """Dream's draws: one generator on the model's device, each draw made over the whole batch."""

    def __init__(self, seed: int, rows: int, device: torch.device):
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def tokens(self, probs: torch.Tensor, counts: list[int]) -> torch.Tensor:
        return torch.multinomial(probs, 1, True, generator=self.gen).squeeze(-1)

    def uniform(self, counts: list[int], device: torch.device) -> torch.Tensor:
        return torch.rand(sum(counts), generator=self.gen, device=device)

    def positions(self, weights: torch.Tensor, k: int) -> torch.Tensor:
        return torch.multinomial(weights, k, generator=self.gen)


class _RowNoise:
    """One CPU generator per row, seeded by (seed, row): what row i draws does not depend on the
    other rows of the batch, nor on the device the model runs on."""

    def __init__(self, seed: int, rows: int, device: torch.device):
        self.gens = [torch.Generator().manual_seed((seed * 1_000_003 + row) % 2**63) for row in range(rows)]

    def tokens(self, probs: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """probs holds the rows' positions one row after the other, `counts` of them per row."""
        parts = [torch.multinomial(p.float().cpu(), 1, True, generator=g).squeeze(-1)
                 for p, g in zip(torch.split(probs, counts), self.gens) if len(p)]
        return torch.cat(parts).to(probs.device) if parts else torch.zeros(0, dtype=torch.long, device=probs.device)

    def uniform(self, counts: list[int], device: torch.device) -> torch.Tensor:
        return torch.cat([torch.rand(n, generator=g) for n, g in zip(counts, self.gens)]).to(device)

    def positions(self, weights: torch.Tensor, k: int) -> torch.Tensor:
        return torch.stack([torch.multinomial(w.float().cpu(), k, generator=g)
                            for w, g in zip(weights, self.gens)]).to(weights.device)


NOISE = {"per_row": _RowNoise, "reference": _BatchNoise}


def _choose_tokens(logits: torch.Tensor, counts: list[int], cfg: SamplerConfig, noise):
    """For (N, V) logits, `counts` positions per row one row after the other: the chosen tokens,
    the probability of each, and the ranking confidence of the reveal rule, computed as Dream's
    `sample_tokens` does."""
    if cfg.temperature > 0:
        logits = logits / cfg.temperature
    probs = _filter(logits, cfg.top_p, cfg.top_k).softmax(-1)
    if cfg.temperature > 0:
        # the draw torch.distributions.Categorical makes: multinomial over normalised rows
        tokens = noise.tokens(probs / probs.sum(-1, keepdim=True), counts)
        chosen_p = probs.gather(-1, tokens[:, None]).squeeze(-1)
    else:
        chosen_p, tokens = probs.max(-1)
    if cfg.alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        confidence = top2[..., 0] - top2[..., 1]
    elif cfg.alg == "entropy":
        confidence = (probs * torch.log(probs + 1e-10)).sum(-1)  # negative entropy
    elif cfg.alg == "random":
        confidence = noise.uniform(counts, chosen_p.device)
    else:  # maskgit_plus, and origin (which does not rank)
        confidence = chosen_p
    return tokens, chosen_p, confidence


def _dream_timesteps(steps: int) -> torch.Tensor:
    return torch.linspace(1, DREAM_EPS, steps + 1)


def _dream_count(remaining: int, step: int, steps: int) -> int:
    """Dream's generation_utils: int(n * (1 - s/t)), in float32 as there; all at the last step."""
    if step == steps - 1:
        return remaining
    ts = _dream_timesteps(steps)
    return int(torch.tensor(float(remaining)) * (1 - ts[step + 1] / ts[step]))


def _mdlm_count(remaining: int, step: int, steps: int) -> int:
    """dllm's get_num_transfer_tokens with its linear schedule: round(n * (1 - s/t)), half to
    even; s/t is computed in float32 there, which decides the ties, so it is here too."""
    t = torch.tensor((steps - step) / steps, dtype=torch.float32)
    s = torch.tensor((steps - step - 1) / steps, dtype=torch.float32)
    ratio = float((1 - (1 - s)) / (1 - (1 - t)))
    return min(round(remaining * (1 - ratio)), remaining)


def _even_count(remaining: int, step: int, steps: int) -> int:
    return math.ceil(remaining / (steps - step))


COUNTS = {"even": _even_count, "dream": _dream_count, "mdlm": _mdlm_count}


def _steps_per_block(total_steps: int, blocks: int) -> list[int]:
    base, extra = divmod(total_steps, blocks)
    return [base + (1 if i < extra else 0) for i in range(blocks)]


class _BlockCache:
    """Cached K/V of the positions outside the current block, for `kv_refresh`."""

    def __init__(self):
        self.context = None
        self.active: torch.Tensor | None = None


class Sampler:
    def __init__(self, model: DiffusionLM, config: SamplerConfig):
        config.validate()
        if config.kv_refresh is not None and not model.supports_kv_reuse:
            raise UserError(f"{model.name} does not support K/V reuse: drop kv_refresh.")
        self.model = model
        self.cfg = config
        self.reuse = (config.kv_reuse or config.kv_refresh is not None) and model.supports_kv_reuse
        schedule = config.schedule
        if schedule == "auto":
            schedule = "dream" if model.family == "dream" else "mdlm"
        self.count = COUNTS[schedule]
        self.nfe = self.full_forwards = 0

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
        noise = NOISE[cfg.noise](cfg.seed, x.shape[0], x.device)
        self.nfe = self.full_forwards = 0
        for bi, block_steps in enumerate(_steps_per_block(cfg.steps, n_blocks)):
            block_pos = positions[:, bi * block: min((bi + 1) * block, n_masks)]  # (B, m)
            cache = _BlockCache()
            for step in range(block_steps):
                still = x.gather(1, block_pos) == model.mask_token_id  # (B, m)
                if not bool(still.any()):
                    break
                if cfg.threshold is not None:
                    reveal, tokens = self._threshold_step(x, block_pos, still, step, block_steps, cache, noise)
                elif cfg.alg == "origin":
                    reveal, tokens = self._origin_step(x, block_pos, still, step, block_steps, cache, noise)
                else:
                    reveal, tokens = self._ranked_step(x, block_pos, still, step, block_steps, cache, noise)
                if reveal is not None:
                    x.scatter_(1, block_pos, torch.where(reveal, tokens, x.gather(1, block_pos)))
        assert not bool((x == model.mask_token_id).any()), "sampler left a mask unfilled"
        return SampleResult(x, self.nfe, self.full_forwards, n_masks, time.perf_counter() - start)

    # -- the three kinds of step; each returns (reveal (B, m), tokens (B, m)) or (None, None) ----

    def _ranked_step(self, x, block_pos, still, step, block_steps, cache, noise):
        """A scheduled number of positions per row, ranked by the rule's confidence. Rows hold
        equal numbers of masks and reveal equal numbers, so one count serves the batch."""
        remaining = int(still[0].sum())
        k = self.count(remaining, step, block_steps)
        if k == 0:
            return None, None
        tokens, _, confidence = self._predict(x, block_pos, still, step, cache, noise)
        if k >= remaining:
            return still, tokens
        if self.cfg.alg_temp > 0:
            return self._sample_positions(confidence, block_pos, x.shape[1], k, noise) & still, tokens
        return torch.zeros_like(still).scatter_(1, confidence.topk(k, dim=-1).indices, True), tokens

    def _origin_step(self, x, block_pos, still, step, block_steps, cache, noise):
        """Dream's `origin`: each mask is revealed with probability 1 - s/t, drawn before the
        forward (as one draw over the flattened masked positions, as Dream draws it); a step that
        reveals nothing needs no forward. Tokens are chosen for the revealed positions only."""
        ts = _dream_timesteps(block_steps)
        p = 1 - ts[step + 1] / ts[step] if step < block_steps - 1 else 1
        draw = noise.uniform(still.sum(1).tolist(), x.device) < p
        if not bool(draw.any()):
            return None, None
        reveal = torch.zeros_like(still)
        reveal[still] = draw
        raw = self._logits(x, block_pos, step, cache)
        tokens = x.gather(1, block_pos)
        tokens[reveal] = _choose_tokens(self._candidates(raw, reveal), reveal.sum(1).tolist(), self.cfg, noise)[0]
        return reveal, tokens

    def _threshold_step(self, x, block_pos, still, step, block_steps, cache, noise):
        """Fast-dLLM: every position whose token probability reaches the threshold, and at least
        the most probable one per row; the block's last step reveals the rest."""
        tokens, chosen_p, _ = self._predict(x, block_pos, still, step, cache, noise)
        if step == block_steps - 1:
            return still, tokens
        p = chosen_p.masked_fill(~still, -1.0)
        reveal = still & (p >= self.cfg.threshold)
        reveal.scatter_(1, p.argmax(1, keepdim=True), True)
        return reveal & still, tokens

    # -- helpers ---------------------------------------------------------------------------------

    def _predict(self, x, block_pos, still, step, cache, noise):
        """One forward; tokens, their probabilities and the rule's confidence at every still-masked
        block position (confidence is -inf elsewhere)."""
        raw = self._logits(x, block_pos, step, cache)
        tok, p, conf = _choose_tokens(self._candidates(raw, still), still.sum(1).tolist(), self.cfg, noise)
        tokens = x.gather(1, block_pos)
        tokens[still] = tok
        chosen_p = torch.zeros(still.shape, device=x.device)
        chosen_p[still] = p.float()
        confidence = torch.full(still.shape, float("-inf"), device=x.device)
        confidence[still] = conf.float()
        return tokens, chosen_p, confidence

    def _candidates(self, raw: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """The logits of the positions in `where`, flattened row by row, over real tokens only;
        a mask is never an answer."""
        vocab_limit = min(self.model.vocab_size, len(self.model.tokenizer))  # padded rows are not tokens
        flat = raw[..., :vocab_limit][where]
        flat[:, self.model.mask_token_id] = float("-inf")
        return flat

    def _sample_positions(self, confidence, block_pos, length, k, noise) -> torch.Tensor:
        """k block positions per row (as a (B, m) mask), drawn without replacement from
        softmax(confidence / alg_temp). The draw runs over whole canvas rows (-inf off the block)
        as Dream's does, so that a seeded draw picks the same positions as Dream's."""
        rows = torch.full((block_pos.shape[0], length), float("-inf"), device=confidence.device)
        rows.scatter_(1, block_pos, confidence)
        picked = noise.positions(torch.softmax(rows / self.cfg.alg_temp, -1), k)
        return torch.zeros_like(rows, dtype=torch.bool).scatter_(1, picked, True).gather(1, block_pos)

    def _logits(self, x, block_pos, step, cache: _BlockCache) -> torch.Tensor:
        """Raw logits at the rows that predict the block's positions (one to the left for a
        shifted model): one forward, full or over the block with cached K/V of the rest."""
        model, refresh = self.model, self.cfg.kv_refresh
        rows = (block_pos - 1).clamp_min(0) if model.shift else block_pos
        self.nfe += 1
        if self.reuse and cache.context is not None and (refresh is None or step % refresh != 0):
            return model.raw_logits_partial(x, cache.active, cache.context, rows)
        self.full_forwards += 1
        # the candidates of a round start as one canvas: compute it once for all of them
        batch = x.shape[0]
        shared = batch > 1 and bool((x == x[:1]).all())
        if shared:
            x, rows = x[:1], rows[:1]
        if not self.reuse:
            raw = model.raw_logits(x, rows)
            return raw.expand(batch, -1, -1) if shared else raw
        raw, kv = model.raw_logits_with_kv(x, rows)
        cache.active = self._active_positions(block_pos)
        context_idx = self._complement(cache.active, x.shape[1])
        cache.context = [(k[:, :, context_idx].expand(batch, -1, -1, -1), v[:, :, context_idx].expand(batch, -1, -1, -1))
                         for k, v in kv]
        return raw.expand(batch, -1, -1) if shared else raw

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
