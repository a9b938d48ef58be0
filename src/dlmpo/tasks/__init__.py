"""Tasks: the protocol, examples, traces, and the file-backed kinds (built-in, custom). Finding a
task by name, τ-bench and code tasks included, is `dlmpo.catalog`'s job."""

from __future__ import annotations

from dlmpo.tasks.base import SPLITS, EpisodicTask, Example, Graded, SplitSet, Task, is_episodic
from dlmpo.tasks.traces import EvalResult, Trace

__all__ = ["SPLITS", "EpisodicTask", "EvalResult", "Example", "Graded", "SplitSet", "Task", "Trace", "is_episodic"]
