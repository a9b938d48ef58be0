"""A DDPM over prompt vectors z: cosine noise schedule, a timestep- and problem-conditioned MLP,
the diffusion loss, and DDPM (ancestral) and DDIM (deterministic) sampling.

The network predicts the clean vector x0 rather than the noise (as DALL-E 2's diffusion prior
does): with a few dozen training vectors in 64-256 dimensions, noise prediction left samples far
from every training vector, while x0 prediction recovers them; and x0_hat is what the code loss
needs, at every noise level, with no division by sqrt(alpha_bar). The same forward process and
the same DDPM/DDIM updates apply, with eps derived from x0_hat.

The model works on z / z_scale (unit scale). One network is both conditional and unconditional:
the condition is dropped at random during training and replaced by a learned null vector
(classifier-free-guidance style), so "no condition" is a condition it has learned."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dlmpo.ddpt.config import SAMPLERS


class NoiseSchedule:
    """Cosine schedule (Nichol & Dhariwal 2021); index t = 0 is clean data, t = T pure noise."""

    def __init__(self, timesteps: int, s: float = 0.008):
        steps = torch.arange(timesteps + 1, dtype=torch.float64)
        f = torch.cos((steps / timesteps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.timesteps = timesteps
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas]).float()
        self.alpha_bars = torch.cumprod(1 - self.betas, 0)

    def noised(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The forward process x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps."""
        a = self.alpha_bars[t].unsqueeze(-1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def noise_of(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The eps that takes x0 to x_t (what DDIM steps with)."""
        a = self.alpha_bars[t].unsqueeze(-1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def timestep_features(t: torch.Tensor, timesteps: int, dim: int = 64) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half) / half)
    angles = (t.float() / timesteps * 1000.0).unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], -1)


class Denoiser(nn.Module):
    """x0_hat(x_t, t, condition): residual MLP blocks over x_t + time + condition embeddings."""

    def __init__(self, z_dim: int, cond_dim: int, hidden: int = 256, blocks: int = 3, timesteps: int = 100):
        super().__init__()
        self.timesteps = timesteps
        self.input = nn.Linear(z_dim, hidden)
        self.time = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.cond = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.null_cond = nn.Parameter(torch.zeros(hidden))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(blocks))
        self.output = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, z_dim))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """`keep` (B,) says which rows see their condition; the others, or all when cond is None, see null."""
        c = self.null_cond.expand(len(x_t), -1)
        if cond is not None:
            used = self.cond(cond)
            c = used if keep is None else torch.where(keep.unsqueeze(-1), used, c)
        h = self.input(x_t) + self.time(timestep_features(t, self.timesteps)) + c
        for block in self.blocks:
            h = h + block(h)
        return self.output(h)


def diffusion_loss(denoiser: Denoiser, schedule: NoiseSchedule, x0: torch.Tensor, cond: torch.Tensor | None,
                   keep: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    t = torch.randint(1, schedule.timesteps + 1, (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    return nn.functional.mse_loss(denoiser(schedule.noised(x0, t, noise), t, cond, keep), x0)


@dataclass
class DiffusionPrior:
    """A trained denoiser with what turns its samples into prompt vectors z."""

    denoiser: Denoiser
    schedule: NoiseSchedule
    z_scale: float
    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def condition(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_std

    @torch.no_grad()
    def sample(self, seed: int, features: torch.Tensor | None = None, *, method: str = "ddim", steps: int = 20) -> torch.Tensor:
        """One z per row of `features` (problems' pooled embeddings), or one unconditional z; every
        row starts from the same seeded noise, so rows differ by their condition alone."""
        if method not in SAMPLERS:
            raise ValueError(f"unknown sampler {method!r}")
        self.denoiser.eval()
        generator = torch.Generator().manual_seed(seed)
        rows = 1 if features is None else len(features)
        z_dim = self.denoiser.output[-1].out_features
        cond = None if features is None else self.condition(features)
        x = torch.randn(1, z_dim, generator=generator).expand(rows, -1)
        if method == "ddpm":
            x = self._ddpm(x, cond, generator)
        else:
            x = self._ddim(x, cond, steps)
        return x * self.z_scale

    def _ddpm(self, x: torch.Tensor, cond: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        s = self.schedule
        for step in range(s.timesteps, 0, -1):
            x0 = self.denoiser(x, torch.full((len(x),), step), cond)
            a, a_prev, beta = s.alpha_bars[step], s.alpha_bars[step - 1], s.betas[step]
            mean = (a_prev.sqrt() * beta / (1 - a)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a)) * x
            if step > 1:
                variance = beta * (1 - a_prev) / (1 - a)
                mean = mean + variance.sqrt() * torch.randn(x.shape[1:], generator=generator)
            x = mean
        return x

    def _ddim(self, x: torch.Tensor, cond: torch.Tensor | None, steps: int) -> torch.Tensor:
        s = self.schedule
        ladder = torch.linspace(s.timesteps, 1, min(steps, s.timesteps)).round().long().unique_consecutive().tolist()
        for i, step in enumerate(ladder):
            t = torch.full((len(x),), step)
            x0 = self.denoiser(x, t, cond)
            eps = s.noise_of(x, t, x0)
            a_prev = s.alpha_bars[ladder[i + 1]] if i + 1 < len(ladder) else torch.tensor(1.0)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x

    def state(self) -> dict:
        d = self.denoiser
        return {"weights": d.state_dict(), "z_dim": d.output[-1].out_features, "cond_dim": d.cond[0].in_features,
                "hidden": d.input.out_features, "blocks": len(d.blocks), "timesteps": self.schedule.timesteps,
                "z_scale": self.z_scale, "feature_mean": self.feature_mean, "feature_std": self.feature_std}

    @classmethod
    def from_state(cls, state: dict) -> DiffusionPrior:
        denoiser = Denoiser(state["z_dim"], state["cond_dim"], state["hidden"], state["blocks"], state["timesteps"])
        denoiser.load_state_dict(state["weights"])
        return cls(denoiser.eval(), NoiseSchedule(state["timesteps"]), state["z_scale"], state["feature_mean"],
                   state["feature_std"])
