"""The masked-diffusion SFT objective.

`joint` (full-sequence joint masking): one ratio t ~ U(eps, 1) per sequence masks target and
context tokens alike; `target`: the conventional SFT, only target tokens may be masked. With
`span_fraction` > 0 that share of sequences instead gets the optimizer's job: contiguous runs
covering a fraction t of the target, the context left whole.
Loss: cross-entropy on the masked tokens weighted by 1/t, divided by the number of maskable
tokens (the MDLM / LLaDA estimator). Shifted models (Dream) predict token i at position i-1, so
the logits of position i-1 are read for a masked token i."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASKINGS = ("joint", "target")


def maskable(is_target: torch.Tensor, is_real: torch.Tensor, masking: str) -> torch.Tensor:
    allowed = is_real.clone() if masking == "joint" else is_target & is_real
    allowed[:, 0] = False  # the first token stays: Dream predicts position 1 from it
    return allowed


def _span_mask(region: torch.Tensor, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """1 to 3 contiguous runs inside the True positions of `region` (L,), about `ratio` of them."""
    idx = region.nonzero().squeeze(1)
    out = torch.zeros_like(region)
    n = idx.numel()
    if n == 0:
        return out
    total = max(1, round(ratio * n))
    runs = int(torch.randint(1, 4, (1,), generator=generator, device=region.device))
    length = max(1, total // runs)
    for _ in range(runs):
        start = int(torch.randint(0, max(1, n - length + 1), (1,), generator=generator, device=region.device))
        out[idx[start:start + length]] = True
    return out


def apply_masks(input_ids, allowed, mask_id: int, generator: torch.Generator, eps: float = 1e-3,
                ratio: float | None = None, *, target: torch.Tensor | None = None, span_fraction: float = 0.0):
    """Masked inputs, the boolean mask, the per-sequence ratio t, and the positions the loss is
    normalised over (`allowed`, narrowed to the target for span sequences)."""
    b = input_ids.shape[0]
    device = input_ids.device
    if ratio is None:
        t = eps + (1 - eps) * torch.rand(b, generator=generator, device=device)
    else:
        t = torch.full((b,), ratio, device=device)
    draw = torch.rand(input_ids.shape, generator=generator, device=device)
    masked = (draw < t[:, None]) & allowed
    allowed = allowed.clone()
    if span_fraction > 0 and target is not None:
        spans = torch.rand(b, generator=generator, device=device) < span_fraction
        for i in spans.nonzero().squeeze(1).tolist():
            region = allowed[i] & target[i]
            if bool(region.any()):
                masked[i] = _span_mask(region, float(t[i]), generator)
                allowed[i] = region
    # at least one masked token per sequence that has any maskable token
    none = ~masked.any(1) & allowed.any(1)
    if bool(none.any()):
        first = allowed.float().argmax(1)
        masked[none, first[none]] = True
    return torch.where(masked, torch.full_like(input_ids, mask_id), input_ids), masked, t, allowed


def loss_rows(masked: torch.Tensor, shift: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the loss is read: for each sequence its masked positions, padded to the batch's
    largest count. Returns (rows whose logits predict them, the positions, valid) all (B, M).
    Computing logits only there spares the vocabulary projection on every other token."""
    counts = masked.sum(1)
    width = max(int(counts.max()), 1)
    order = torch.argsort((~masked).to(torch.int8), dim=1, stable=True)[:, :width]  # masked positions first
    valid = torch.arange(width, device=masked.device)[None] < counts[:, None]
    positions = torch.where(valid, order, torch.zeros_like(order))
    rows = (positions - 1).clamp_min(0) if shift else positions
    return rows, positions, valid


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, t: torch.Tensor,
                allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From logits (B, M, V) at the loss rows and their target tokens (B, M): (weighted loss,
    plain mean CE over masked tokens, accuracy over masked tokens)."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none") * valid  # (B, M)
    weighted = (ce / t[:, None]).sum() / allowed.sum().clamp_min(1)
    n = valid.sum().clamp_min(1)
    acc = ((logits.argmax(-1) == targets) & valid).sum() / n
    return weighted, ce.sum() / n, acc
