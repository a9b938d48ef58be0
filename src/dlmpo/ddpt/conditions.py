"""The ways of prompting a held-out problem that a DDPT run compares, as prefixes per problem."""

from __future__ import annotations

import torch

from dlmpo.code.problems import CodeProblem
from dlmpo.ddpt.diffusion import DiffusionPrior
from dlmpo.ddpt.soft_prompt import SoftPromptSpace
from dlmpo.ddpt.whitebox import WhiteBoxLM

CONDITIONS = ("none", "manual", "prompt_tuning", "ddpt", "ddpt_conditioned")


def pooled_features(lm: WhiteBoxLM, problems: list[CodeProblem]) -> torch.Tensor:
    return torch.stack([lm.pooled(lm.ids(p.prompt)) for p in problems])


def condition_prefixes(name: str, space: SoftPromptSpace, problems: list[CodeProblem], *,
                       prompt_tuning_z: torch.Tensor | None = None, prior: DiffusionPrior | None = None,
                       features: torch.Tensor | None = None, seed: int = 0, sampler: str = "ddim",
                       sample_steps: int = 20) -> list[torch.Tensor | None]:
    """none: the problem alone; manual: the context and instruction as text; prompt_tuning: one
    learned z; ddpt: one unconditional sample; ddpt_conditioned: one sample per problem,
    conditioned on its pooled embedding (`features`, computed here when not given)."""
    if name == "none":
        return [None] * len(problems)
    if name == "manual":
        return [space.prefix(None)] * len(problems)
    if name == "prompt_tuning":
        assert prompt_tuning_z is not None
        return [space.prefix(prompt_tuning_z)] * len(problems)
    assert prior is not None and name in ("ddpt", "ddpt_conditioned")
    if name == "ddpt":
        return [space.prefix(prior.sample(seed, method=sampler, steps=sample_steps)[0])] * len(problems)
    if features is None:
        features = pooled_features(space.lm, problems)
    zs = prior.sample(seed, features, method=sampler, steps=sample_steps)
    return [space.prefix(z) for z in zs]
