"""Run untrusted generated programs in a box: `run_program` picks a backend from `BACKENDS`.

- `bwrap` (sandbox_bwrap, isolating): new PID, network, IPC, mount (and, unless root, user)
  namespaces, an unprivileged uid, a read-only view of what Python needs, a private size-capped
  tmpfs, no environment; limits on the whole process tree; every descendant killed at the end.
- `unisolated` (sandbox_unisolated): a process group with rlimits and a socket patch, which does
  not isolate; it only runs when the caller opts in (`allow_unisolated=True`, the CLI's
  `--allow-unisolated-code`, or DLMPO_ALLOW_UNISOLATED_CODE=1).

With no isolating backend and no opt-in, generated code is never run: `UserError`. What a program
prints reaches grading feedback (and so traces) only as one short line with every value of this
process's environment longer than 6 characters replaced by `[redacted]`."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from dlmpo.code.sandbox_bwrap import BwrapBackend
from dlmpo.code.sandbox_unisolated import UnisolatedBackend
from dlmpo.errors import UserError

OPT_IN_FLAG = "--allow-unisolated-code"
OPT_IN_ENV = "DLMPO_ALLOW_UNISOLATED_CODE"
DETAIL_CHARS = 200


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock; the whole tree is killed at it
    memory_mb: int = 1024  # the whole tree where a cgroup can be made, else per process (address space)
    file_mb: int = 16  # largest file a process may write
    disk_mb: int = 64  # the private tmpfs, shared by every process of the run
    processes: int = 64  # processes and threads of the run
    cpus: float = 1.0  # CPU share of the tree, where the cgroup cpu controller is there
    allow_unisolated: bool = False  # run without isolation when no isolating backend exists
    backend: str = "auto"  # auto | bwrap | unisolated (the latter only with allow_unisolated)


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # passed | failed | timeout
    detail: str = ""


class SandboxBackend(Protocol):
    name: str
    isolating: bool

    def unavailable(self) -> str | None:
        """None when this backend can run programs here, else a short reason."""

    def run(self, program: str, limits: SandboxLimits) -> tuple[int | None, int | None, str, str]:
        """(exit code, or None when timed out; the killing signal or None; stderr; a note on the kill)."""


BACKENDS: dict[str, SandboxBackend] = {"bwrap": BwrapBackend(), "unisolated": UnisolatedBackend()}


def opted_in(limits: SandboxLimits) -> bool:
    return limits.allow_unisolated or os.environ.get(OPT_IN_ENV, "").strip().lower() in ("1", "true", "yes")


def choose_backend(limits: SandboxLimits | None = None) -> SandboxBackend:
    """The backend `run_program` uses for these limits; UserError when none may run code here."""
    limits = limits or SandboxLimits()
    if limits.backend not in ("auto", *BACKENDS):
        raise UserError(f"Unknown sandbox backend '{limits.backend}': use auto, {', '.join(BACKENDS)}.")
    names = [limits.backend] if limits.backend != "auto" else [n for n, b in BACKENDS.items() if b.isolating]
    reasons = []
    for name in names:
        backend = BACKENDS[name]
        if not backend.isolating and not opted_in(limits):
            raise UserError(f"The {name} sandbox does not isolate generated code: pass {OPT_IN_FLAG} to use it.")
        why = backend.unavailable()
        if why is None:
            return backend
        reasons.append(why)
    if limits.backend == "auto" and opted_in(limits):
        return BACKENDS["unisolated"]
    raise UserError(f"Refusing to run generated code without isolation ({'; '.join(reasons)}): install "
                    f"bubblewrap (apt-get install -y bubblewrap), or pass {OPT_IN_FLAG} to run it unisolated.")


def scrub(text: str) -> str:
    """`text` with every value of this process's environment longer than 6 characters redacted."""
    for value in sorted({v for v in os.environ.values() if len(v) > 6}, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return scrub(lines[-1])[:DETAIL_CHARS] if lines else ""


def run_program(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run one program with its tests; it passes when it exits 0 within the limits."""
    limits = limits or SandboxLimits()
    code, killed_by, errors, note = choose_backend(limits).run(program, limits)
    if code is None:
        return SandboxResult(False, "timeout", f"killed after {limits.timeout_s:g} s")
    if code == 0:
        return SandboxResult(True, "passed")
    if killed_by is not None:
        name = signal.Signals(killed_by).name if killed_by in signal.Signals._value2member_map_ else str(killed_by)
        return SandboxResult(False, "timeout" if killed_by == signal.SIGXCPU else "failed",
                             f"killed by {name}" + (f" ({note})" if note else ""))
    return SandboxResult(False, "failed", _last_line(errors))


def run_programs(programs: list[str], limits: SandboxLimits | None = None, workers: int = 2) -> list[SandboxResult]:
    """Several programs, `workers` processes at a time, results in order."""
    if programs:
        choose_backend(limits)  # refuse once, before any thread starts
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda p: run_program(p, limits), programs))
