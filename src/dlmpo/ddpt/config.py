"""Every knob of a DDPT run, validated once. The defaults fit SmolLM2-135M on HumanEval in about
half an hour on 2 CPU cores (docs/ddpt.md has the budget)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from dlmpo.errors import UserError

MANUAL_CONTEXT = "# You are an expert Python programmer.\n"
MANUAL_INSTRUCTION = "# Complete the function below with a correct, efficient implementation.\n"
METHODS = ("ddpt", "prompt-tuning")
SAMPLERS = ("ddim", "ddpm")


@dataclass(frozen=True)
class DDPTConfig:
    task: str = "humaneval"
    target: str = "embedded"
    method: str = "ddpt"  # ddpt | prompt-tuning (the baseline alone)
    seed: int = 0
    split_seed: int = 0
    # the prompt: the context is tuned, the instruction stays as written
    context: str = MANUAL_CONTEXT
    instruction: str = MANUAL_INSTRUCTION
    z_dim: int = 128
    # training data: problems longer than max_prompt_tokens are left out of training; solutions
    # are scored on their first max_solution_tokens tokens (test NLL uses whole solutions)
    train_limit: int | None = None
    test_limit: int | None = None
    max_prompt_tokens: int = 160
    max_solution_tokens: int = 48
    # stage 1: clusters x directions_per_cluster optimal z*, and the prompt-tuning baseline
    clusters: int = 4
    directions_per_cluster: int = 2
    direction_steps: int = 10
    prompt_tuning_steps: int = 30
    batch_size: int = 4
    lr: float = 0.1
    # stage 2: the denoiser
    timesteps: int = 100
    denoiser_hidden: int = 256
    denoiser_steps: int = 2000
    code_steps: int = 24
    code_batch: int = 2
    code_weight: float = 1.0
    cond_dropout: float = 0.25
    denoiser_lr: float = 1e-3
    # sampling and scoring
    sampler: str = "ddim"
    sample_steps: int = 20
    max_new_tokens: int = 128
    samples: int = 1  # > 1: sampled at `temperature`, pass@k for k <= samples
    temperature: float = 0.8
    timeout_s: float = 10.0
    memory_mb: int = 1024

    def validate(self) -> DDPTConfig:
        if self.method not in METHODS:
            raise UserError(f"Unknown method '{self.method}': use ddpt or prompt-tuning.")
        if self.sampler not in SAMPLERS:
            raise UserError(f"Unknown sampler '{self.sampler}': use ddim or ddpm.")
        positive = ("z_dim", "max_prompt_tokens", "max_solution_tokens", "clusters", "directions_per_cluster",
                    "direction_steps", "prompt_tuning_steps", "batch_size", "timesteps", "denoiser_hidden",
                    "code_batch", "sample_steps", "max_new_tokens", "samples", "memory_mb")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1.")
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1.")
        for name in ("denoiser_steps", "code_steps", "code_weight"):
            if getattr(self, name) < 0:
                raise UserError(f"{name.replace('_', '-')} must not be negative.")
        if self.timesteps < 2:
            raise UserError("timesteps must be at least 2.")
        if not 0 <= self.cond_dropout < 1:
            raise UserError("cond-dropout must be in [0, 1).")
        floats = ("lr", "denoiser_lr", "timeout_s", "code_weight", "cond_dropout", "temperature")
        for name in floats:
            if not math.isfinite(getattr(self, name)):
                raise UserError(f"{name.replace('_', '-')} must be a finite number.")
        if self.lr <= 0 or self.denoiser_lr <= 0 or self.timeout_s <= 0:
            raise UserError("lr, denoiser-lr and timeout-s must be positive.")
        if self.samples > 1 and self.temperature <= 0:
            raise UserError("samples > 1 needs a temperature above 0.")
        if not self.context.strip():
            raise UserError("The context must hold at least one token: it is what DDPT tunes.")
        return self

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> DDPTConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_run(cls, settings: object, source: str) -> DDPTConfig:
        """The settings saved in a run's config.json, checked (types and values)."""
        if not isinstance(settings, dict):
            raise UserError(f"{source} is damaged: its 'settings' are not an object.")
        defaults = cls()
        for f in fields(cls):
            value, default = settings.get(f.name, getattr(defaults, f.name)), getattr(defaults, f.name)
            kinds = (int, float) if isinstance(default, float) else int if default is None else type(default)
            if value is not None and (isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kinds)):
                raise UserError(f"{source} is damaged: '{f.name}' is {value!r}.")
        try:
            return cls.from_json(settings).validate()
        except UserError as exc:
            raise UserError(f"{source} is damaged: {exc}") from None


# the command line's help of each setting (`dlmpo ddpt train --help` adds the defaults above)
HELP = {
    'task': 'humaneval, mbpp, codealpaca, conala (hub), or a .jsonl of problems.',
    'target': 'A local causal LM: embedded or hf:<repo-or-path>.',
    'method': 'ddpt, or prompt-tuning (the plain baseline alone).',
    'seed': 'Seed of every random choice (same seed, same z, same outputs).',
    'split_seed': 'Seed of the train/val/test split.',
    'context': 'The context text: its embeddings are what gets tuned.',
    'instruction': 'The instruction text after the context (kept as written).',
    'z_dim': 'Dimension of the prompt vector z.',
    'max_prompt_tokens': 'Train problems with longer prompts are left out.',
    'max_solution_tokens': 'Training scores this many solution tokens.',
    'clusters': 'Stage 1: clusters of train problems.',
    'directions_per_cluster': 'Stage 1: z* per cluster (seeds).',
    'direction_steps': 'Stage 1: Adam steps per z*.',
    'prompt_tuning_steps': 'Baseline: Adam steps on one z.',
    'batch_size': 'Problems per step (stage 1 and the baseline).',
    'lr': 'Learning rate of z.',
    'timesteps': 'Diffusion timesteps T.',
    'denoiser_hidden': 'Width of the denoiser MLP.',
    'denoiser_steps': 'Stage 2: steps of the diffusion loss alone.',
    'code_steps': 'Stage 2: further steps with the code loss added.',
    'code_batch': 'Stage 2: problems per code-loss step.',
    'code_weight': 'Stage 2: weight of the code loss.',
    'cond_dropout': 'Stage 2: share of pairs trained without their condition.',
    'denoiser_lr': 'Stage 2: learning rate.',
    'sampler': 'ddim or ddpm.',
    'sample_steps': 'DDIM steps.',
    'max_new_tokens': 'Generation cap for pass@k.',
    'samples': 'Completions per problem: 1 greedy, more sampled (pass@k).',
    'temperature': 'Sampling temperature when samples > 1.',
    'timeout_s': 'Sandbox: seconds per program.',
    'memory_mb': 'Sandbox: address-space limit per program.',
    'train_limit': 'Use only the first N train problems.',
    'test_limit': 'Score only the first N test problems.',
}
