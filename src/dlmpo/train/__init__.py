"""Prompt-infilling SFT for DLMs: full-sequence joint masking vs response-only masking."""

from dlmpo.train.trainer import TrainConfig, Trainer, evaluate_masked

__all__ = ["TrainConfig", "Trainer", "evaluate_masked"]
