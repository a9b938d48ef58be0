"""A finished (or partly finished) DDPT run directory as soft prompts to use: for `dlmpo eval
--soft-prompt RUN_DIR[#variant]` and `dlmpo ddpt sample`."""

from __future__ import annotations

from pathlib import Path

import torch

from dlmpo.code.problems import CodeProblem
from dlmpo.code.sandbox import SandboxLimits
from dlmpo.ddpt.conditions import condition_prefixes, pooled_features
from dlmpo.ddpt.config import DDPTConfig
from dlmpo.ddpt.run import load_prior, load_space
from dlmpo.ddpt.scoring import ConditionScore, GenerationSettings, progress_units, score_condition
from dlmpo.ddpt.whitebox import WhiteBoxLM
from dlmpo.errors import UserError
from dlmpo.files import load_torch
from dlmpo.runs.rundir import RunDir

VARIANTS = ("prompt_tuning", "ddpt", "ddpt_conditioned")


def parse_soft_prompt(spec: str) -> tuple[Path, str | None]:
    """RUN_DIR or RUN_DIR#variant."""
    path, _, variant = spec.partition("#")
    if variant and variant not in VARIANTS:
        raise UserError(f"Unknown soft-prompt variant '{variant}': use {', '.join(VARIANTS)}.")
    return Path(path), variant or None


class TrainedSoftPrompt:
    def __init__(self, run_dir: str | Path, device: str | None = None, allow_unisolated: bool = False):
        self.path = Path(run_dir)
        self.allow_unisolated = allow_unisolated
        config = self.path / "config.json"
        if not self.path.is_dir() or not config.exists() or not (self.path / "space.pt").exists():
            raise UserError(f"{self.path} holds no DDPT run: train one with `dlmpo ddpt train --out {self.path}`.")
        # every file is checked before the model loads
        self.cfg = DDPTConfig.from_run(RunDir(self.path).saved_config()["settings"], str(config))
        pt = self.path / "prompt_tuning.pt"
        self.prompt_tuning_z = load_torch(pt, "DDPT file", keys=("z",))["z"] if pt.is_file() else None
        prior = self.path / "denoiser.pt"
        self.prior = load_prior(prior) if prior.is_file() else None
        load_torch(self.path / "space.pt", "DDPT file", keys=("projection",))
        self.lm = WhiteBoxLM(self.cfg.target, device)
        self.space = load_space(self.lm, self.cfg, self.path)

    @property
    def variants(self) -> list[str]:
        return (["prompt_tuning"] if self.prompt_tuning_z is not None else []) + \
            (["ddpt", "ddpt_conditioned"] if self.prior is not None else [])

    def resolve(self, variant: str | None) -> str:
        """The variant asked for, else the run's most specific one."""
        if not self.variants:
            raise UserError(f"{self.path} has no trained soft prompt yet: re-run its `dlmpo ddpt train` to finish it.")
        chosen = variant or self.variants[-1]
        if chosen not in self.variants:
            raise UserError(f"{self.path} has no '{chosen}' soft prompt: it holds {', '.join(self.variants)}.")
        return chosen

    def prefixes(self, variant: str, problems: list[CodeProblem], seed: int) -> list[torch.Tensor | None]:
        return condition_prefixes(variant, self.space, problems, prompt_tuning_z=self.prompt_tuning_z, prior=self.prior,
                                  seed=seed, sampler=self.cfg.sampler, sample_steps=self.cfg.sample_steps)

    def sample(self, seed: int, problem: CodeProblem | None = None, *, method: str | None = None,
               steps: int | None = None) -> torch.Tensor:
        """One prompt vector z: a diffusion sample (conditioned on `problem` when given), or the
        prompt-tuning z of a run that has no diffusion prior."""
        if self.prior is None:
            self.resolve("prompt_tuning")
            return self.prompt_tuning_z
        features = pooled_features(self.lm, [problem]) if problem is not None else None
        return self.prior.sample(seed, features, method=method or self.cfg.sampler, steps=steps or self.cfg.sample_steps)[0]

    def score(self, variant: str, problems: list[CodeProblem], *, seed: int, max_new_tokens: int | None = None,
              on_progress=None) -> ConditionScore:
        cfg = self.cfg
        settings = GenerationSettings(max_new_tokens or cfg.max_new_tokens, cfg.samples, cfg.temperature, seed,
                                      SandboxLimits(cfg.timeout_s, cfg.memory_mb, allow_unisolated=self.allow_unisolated))
        return score_condition(self.lm, problems, self.prefixes(variant, problems, seed), settings, on_progress)

    def units(self, problems: list[CodeProblem]) -> int:
        return progress_units(problems, GenerationSettings(samples=self.cfg.samples))
