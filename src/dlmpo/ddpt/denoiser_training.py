"""Stage 2: the diffusion model of good prompt vectors.

Training pairs are (z* of a direction, pooled embedding of a problem of the cluster it was tuned
on). Phase one is the plain diffusion loss (an MLP: thousands of steps in seconds). Phase two adds
the code loss: a noised z* (any noise level) is denoised in one step to the estimate x0_hat, and
the NLL of the paired problem's solution under [context + A x0_hat * z_scale][instruction] is
backpropagated through the frozen LM into the denoiser, which pulls its estimates toward low code
loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dlmpo.ddpt.diffusion import Denoiser, DiffusionPrior, NoiseSchedule, diffusion_loss
from dlmpo.ddpt.directions import EncodedProblem, mean_code_nll
from dlmpo.ddpt.soft_prompt import SoftPromptSpace


@dataclass(frozen=True)
class DenoiserSettings:
    timesteps: int
    hidden: int
    steps: int
    code_steps: int
    code_batch: int
    code_weight: float
    cond_dropout: float
    lr: float
    batch_size: int = 64


def train_denoiser(space: SoftPromptSpace, directions: torch.Tensor, direction_cluster: list[int],
                   problems: list[EncodedProblem], problem_cluster: list[int], features: torch.Tensor,
                   settings: DenoiserSettings, seed: int,
                   on_step: Callable[[int, int, dict], None] | None = None) -> DiffusionPrior:
    """`directions` (M, z_dim) with their clusters; `features` (N, d_model) pooled problem embeddings."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the denoiser's initial weights
    z_scale = directions.std().item() or 1.0
    mean, std = features.mean(0), features.std(0, unbiased=False).clamp(min=1e-6)
    schedule = NoiseSchedule(settings.timesteps)
    prior = DiffusionPrior(Denoiser(directions.shape[1], features.shape[1], settings.hidden, timesteps=settings.timesteps),
                           schedule, z_scale, mean, std)
    pairs = torch.tensor([(j, i) for j, c in enumerate(direction_cluster) for i, pc in enumerate(problem_cluster) if pc == c])
    x0_all, cond_all = directions / z_scale, prior.condition(features)
    optimiser = torch.optim.Adam(prior.denoiser.parameters(), lr=settings.lr)
    total = settings.steps + settings.code_steps
    prior.denoiser.train()
    for step in range(1, total + 1):
        rows = pairs[torch.randint(len(pairs), (settings.batch_size,), generator=generator)]
        keep = torch.rand(len(rows), generator=generator) >= settings.cond_dropout
        loss = diffusion_loss(prior.denoiser, schedule, x0_all[rows[:, 0]], cond_all[rows[:, 1]], keep, generator)
        logged = {"diffusion": loss.item()}
        if step > settings.steps:
            code = _code_loss(prior, space, x0_all, cond_all, pairs, problems, settings, generator)
            loss = loss + settings.code_weight * code
            logged["code"] = code.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if on_step is not None:
            on_step(step, total, logged)
    prior.denoiser.eval()
    return prior


def _code_loss(prior: DiffusionPrior, space: SoftPromptSpace, x0_all: torch.Tensor, cond_all: torch.Tensor,
               pairs: torch.Tensor, problems: list[EncodedProblem], settings: DenoiserSettings,
               generator: torch.Generator) -> torch.Tensor:
    """Code NLL of one-step denoised estimates x0_hat of noised z*."""
    rows = pairs[torch.randint(len(pairs), (settings.code_batch,), generator=generator)]
    keep = torch.rand(len(rows), generator=generator) >= settings.cond_dropout
    t = torch.randint(1, prior.schedule.timesteps + 1, (len(rows),), generator=generator)
    noise = torch.randn(len(rows), x0_all.shape[1], generator=generator)
    x_t = prior.schedule.noised(x0_all[rows[:, 0]], t, noise)
    x0_hat = prior.denoiser(x_t, t, cond_all[rows[:, 1]], keep)
    losses = [mean_code_nll(space, x0_hat[b] * prior.z_scale, [problems[rows[b, 1].item()]]) for b in range(len(rows))]
    return torch.stack(losses).mean()
