"""Typed exceptions. A `UserError` is a mistake the user can fix: the CLI prints its one sentence
and exits with code 2, never a traceback."""


class DlmpoError(Exception):
    """Base class of every error dlmpo raises on purpose."""


class UserError(DlmpoError):
    """Bad input: unknown task, bad model specifier, missing file, malformed row, ..."""


class DataError(UserError):
    """A data file is missing or malformed."""


class ModelSpecError(UserError):
    """A model specifier cannot be resolved."""


class TargetError(DlmpoError):
    """The target model failed after all retries (recorded as a scored failure, never fatal)."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class FatalTargetError(UserError):
    """The target cannot be used at all (unreachable server, bad API key): stop early, clearly."""


class RunsFailed(DlmpoError):
    """Runs of a grid failed for a reason other than the user's input (a worker died once too often):
    the CLI prints its one sentence and exits with code 1; the finished runs are kept."""


class BudgetExceeded(DlmpoError):
    """An attempt would take the run past its call, token or dollar budget (`lm.budget.Budget`)."""


class DlmpoWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints `warning: ...`)."""
