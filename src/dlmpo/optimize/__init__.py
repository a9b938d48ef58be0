"""The optimization loop, proposers, mask strategies, feedback, budgets and stop rules."""

from dlmpo.optimize.loop import Optimizer
from dlmpo.optimize.result import OptimizeResult
from dlmpo.optimize.settings import DEFAULT_DLM, OptimizeSettings, load_settings

__all__ = ["DEFAULT_DLM", "OptimizeResult", "OptimizeSettings", "Optimizer", "load_settings"]
