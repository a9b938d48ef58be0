"""Stage 1 and the prompt-tuning baseline: prompt vectors z found by gradient descent on the
code NLL through the frozen LM, and the problem clusters that give stage 1 a distribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dlmpo.ddpt.soft_prompt import SoftPromptSpace


@dataclass(frozen=True)
class EncodedProblem:
    """A training problem as token ids: the prompt, and the (truncated) canonical solution."""

    task_id: str
    prompt_ids: list[int]
    solution_ids: list[int]


def mean_code_nll(space: SoftPromptSpace, z: torch.Tensor, problems: list[EncodedProblem]) -> torch.Tensor:
    """Mean over problems of each solution's per-token NLL given [context + A z][instruction][prompt]."""
    prefix = space.prefix(z)
    losses = [space.lm.solution_nll(prefix, p.prompt_ids, p.solution_ids) / len(p.solution_ids) for p in problems]
    return torch.stack(losses).mean()


def optimise_z(space: SoftPromptSpace, problems: list[EncodedProblem], *, steps: int, batch_size: int, lr: float,
               seed: int, start: torch.Tensor | None = None, init_std: float = 0.1,
               on_step: Callable[[int, float], None] | None = None) -> tuple[torch.Tensor, list[float]]:
    """Adam on z alone from `start` (default 0, the manual prompt) plus seeded noise; each step a
    seeded minibatch of the problems. Returns z and the loss per step."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(space.z_dim, generator=generator) * init_std
    if start is not None:
        z = z + start
    z = z.to(space.projection.device).requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    losses = []
    for step in range(steps):
        batch = torch.randperm(len(problems), generator=generator)[:batch_size].tolist()
        optimiser.zero_grad()
        total = 0.0
        for i in batch:  # one backward per problem keeps memory at one sequence's activations
            loss = mean_code_nll(space, z, [problems[i]]) / len(batch)
            loss.backward()
            total += loss.item()
        optimiser.step()
        losses.append(total)
        if on_step is not None:
            on_step(step + 1, total)
    return z.detach().cpu(), losses


def kmeans(points: torch.Tensor, k: int, seed: int, iterations: int = 30) -> list[int]:
    """Cluster labels of the rows of `points`; k-means++ seeding from `seed`; no cluster is left empty."""
    k = min(k, len(points))
    generator = torch.Generator().manual_seed(seed)
    centres = [points[torch.randint(len(points), (1,), generator=generator).item()]]
    while len(centres) < k:
        d2 = torch.cdist(points, torch.stack(centres)).min(1).values ** 2
        centres.append(points[torch.multinomial(d2 / d2.sum(), 1, generator=generator).item()] if d2.sum() > 0
                       else points[len(centres)])
    centre = torch.stack(centres)
    labels = torch.zeros(len(points), dtype=torch.long)
    for _ in range(iterations):
        labels = torch.cdist(points, centre).argmin(1)
        for c in range(k):
            members = points[labels == c]
            if len(members):
                centre[c] = members.mean(0)
            else:  # an empty cluster takes the point farthest from its centre
                far = torch.cdist(points, centre).min(1).values.argmax()
                centre[c], labels[far] = points[far], c
    return labels.tolist()
