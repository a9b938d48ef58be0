"""The prompt DDPT tunes: [context embeddings + A z][instruction], as in Black-Box Tuning.

A is a fixed random matrix (z_dim x n_context * d_model) drawn once from the run's seed, with
entries N(0, sigma_e / sqrt(z_dim)), sigma_e the std of the word embeddings: a z of unit-scale
entries then moves each context embedding by about one embedding's scale. z = 0 is the manual
prompt exactly, so every tuned prompt starts from it."""

from __future__ import annotations

import torch

from dlmpo.ddpt.whitebox import WhiteBoxLM


def random_projection(z_dim: int, n_context: int, d_model: int, embedding_std: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(z_dim, n_context * d_model, generator=generator) * (embedding_std / z_dim**0.5)


class SoftPromptSpace:
    def __init__(self, lm: WhiteBoxLM, context: str, instruction: str, projection: torch.Tensor):
        self.lm = lm
        self.context_ids = lm.ids(context)
        self.instruction_ids = lm.ids(instruction)
        self.context = lm.embed(self.context_ids).detach()
        self.instruction = lm.embed(self.instruction_ids).detach()
        self.projection = projection.to(lm.device)
        if self.projection.shape[1] != len(self.context_ids) * lm.d_model:
            raise ValueError("the projection does not match the context's tokens and the model's width")

    @classmethod
    def create(cls, lm: WhiteBoxLM, context: str, instruction: str, z_dim: int, seed: int) -> SoftPromptSpace:
        std = lm.embeddings.weight.detach().float().std().item()
        return cls(lm, context, instruction, random_projection(z_dim, len(lm.ids(context)), lm.d_model, std, seed))

    @property
    def z_dim(self) -> int:
        return self.projection.shape[0]

    def delta(self, z: torch.Tensor) -> torch.Tensor:
        """A z, shaped like the context's embeddings."""
        return (z.to(self.projection.device) @ self.projection).view(len(self.context_ids), self.lm.d_model)

    def prefix(self, z: torch.Tensor | None) -> torch.Tensor:
        """[context + A z][instruction]; z = None is the manual prompt's text."""
        context = self.context if z is None else self.context + self.delta(z)
        return torch.cat([context, self.instruction])
