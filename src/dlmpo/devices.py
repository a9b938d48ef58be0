"""Device names (--device), checked before a model loads: one sentence instead of torch's errors."""

from __future__ import annotations

from dlmpo.errors import UserError


def check_device(spec: str | None) -> str | None:
    """`spec` when this machine has that device (None: the default, cuda when available)."""
    if spec is None:
        return None
    import torch

    text = spec.strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"Unknown device '{spec}': use cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"Device '{spec}' needs CUDA, which this torch build or machine lacks: use cpu.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"Device '{spec}' does not exist: this machine has {count} CUDA device(s), "
                            f"cuda:0 to cuda:{count - 1}.")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"Device '{spec}' (Apple MPS) is not available here: use cpu.")
    elif device.type != "cpu":
        raise UserError(f"Device '{spec}' is not supported: use cpu, cuda, cuda:N or mps.")
    return text
