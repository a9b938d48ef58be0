"""The masked-diffusion SFT objective.

`joint` (full-sequence joint masking): one ratio t ~ U(eps, 1) per sequence masks prompt and
response tokens alike; `response`: the conventional SFT, only response tokens may be masked.
Loss: cross-entropy on the masked tokens weighted by 1/t, divided by the number of maskable
tokens (the MDLM / LLaDA estimator). Shifted models (Dream) predict token i at position i-1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASKINGS = ("joint", "response")


def maskable(is_response: torch.Tensor, is_real: torch.Tensor, masking: str) -> torch.Tensor:
    allowed = is_real.clone() if masking == "joint" else is_response & is_real
    allowed[:, 0] = False  # the first token stays: Dream predicts position 1 from it
    return allowed


def apply_masks(input_ids, allowed, mask_id: int, generator: torch.Generator, eps: float = 1e-3,
                ratio: float | None = None):
    """Masked inputs, the boolean mask and the per-sequence ratio t."""
    b = input_ids.shape[0]
    if ratio is None:
        t = eps + (1 - eps) * torch.rand(b, generator=generator, device=input_ids.device)
    else:
        t = torch.full((b,), ratio, device=input_ids.device)
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    masked = (draw < t[:, None]) & allowed
    # at least one masked token per sequence that has any maskable token
    none = ~masked.any(1) & allowed.any(1)
    if bool(none.any()):
        first = allowed.float().argmax(1)
        masked[none, first[none]] = True
    return torch.where(masked, torch.full_like(input_ids, mask_id), input_ids), masked, t


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor, t: torch.Tensor,
                allowed: torch.Tensor, shift: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weighted loss, plain mean CE over masked tokens, accuracy over masked tokens)."""
    if shift:
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, L)
    ce_masked = ce * masked
    weighted = (ce_masked / t[:, None]).sum() / allowed.sum().clamp_min(1)
    n = masked.sum().clamp_min(1)
    plain = ce_masked.sum() / n
    acc = ((logits.argmax(-1) == targets) & masked).sum() / n
    return weighted, plain, acc
