"""The optimization loop, proposers, mask strategies, feedback, budgets and stop rules."""

from dlmpo.optimizer.loop import Optimizer
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import DEFAULT_DLM, OptimizeSettings, load_settings

__all__ = ["DEFAULT_DLM", "OptimizeResult", "OptimizeSettings", "Optimizer", "load_settings"]
