"""Run untrusted generated programs in a separate, limited process.

Each program runs in `python -I` (isolated: no user site, no PYTHON* variables) in its own
temporary directory and process group, with limits the child sets on itself before exec
(address space, CPU seconds, file size, no core dumps), a wall-clock timeout after which the
whole group is killed, an empty proxy environment, and a runner that replaces the socket
constructors with ones that raise before the program's code runs. Nothing is ever executed in
the calling process."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# The child runs this, then the program (argv[1]) as __main__. Subclassing keeps `ssl` and other
# modules that subclass socket.socket importable; constructing one raises.
RUNNER = r"""
import socket, _socket, sys

def _refuse(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")

class _NoSocket(socket.socket):
    def __init__(self, *args, **kwargs):
        _refuse()

socket.socket = _socket.socket = _NoSocket
socket.create_connection = socket.getaddrinfo = socket.socketpair = socket.fromfd = _refuse
path = sys.argv[1]
sys.argv = [path]
with open(path, encoding="utf-8") as f:
    code = compile(f.read(), path, "exec")
del socket, _socket, f
exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
"""

NO_PROXY_ENV = {name: "" for name in ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy",
                                      "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "ALL_PROXY")}


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_mb: int = 16


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # passed | failed | timeout
    detail: str = ""


def _set_limits(limits: SandboxLimits):
    memory = limits.memory_mb * 2**20
    cpu = max(1, int(limits.timeout_s + 0.999))
    files = limits.file_mb * 2**20

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_program(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run one program with its tests; it passes when it exits 0 within the limits."""
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="dlmpo-sandbox-") as folder:
        work = Path(folder)
        (work / "program.py").write_text(program, encoding="utf-8")
        env = {"PATH": os.defpath, "LANG": "C.UTF-8", "HOME": folder, "TMPDIR": folder, "no_proxy": "*",
               "NO_PROXY": "*", **NO_PROXY_ENV}
        with open(work / "stderr.txt", "wb") as stderr:
            proc = subprocess.Popen([sys.executable, "-I", "-c", RUNNER, str(work / "program.py")], cwd=folder,
                                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                    preexec_fn=_set_limits(limits), start_new_session=True)
            try:
                code = proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return SandboxResult(False, "timeout", f"killed after {limits.timeout_s:g} s")
        errors = (work / "stderr.txt").read_text(encoding="utf-8", errors="replace")
    if code == 0:
        return SandboxResult(True, "passed")
    if code < 0:
        return SandboxResult(False, "timeout" if -code == signal.SIGXCPU else "failed",
                             f"killed by {signal.Signals(-code).name}")
    return SandboxResult(False, "failed", _last_line(errors))


def run_programs(programs: list[str], limits: SandboxLimits | None = None, workers: int = 2) -> list[SandboxResult]:
    """Several programs, `workers` processes at a time, results in order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda p: run_program(p, limits), programs))
