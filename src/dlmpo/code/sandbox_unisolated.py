"""The unisolated backend: what dlmpo did before the bwrap sandbox, kept for machines with no
isolating backend (macOS, containers without namespaces) and only run when the user opts in
(`--allow-unisolated-code`, `SandboxLimits(allow_unisolated=True)`).

The program runs in `python -I` in its own temporary directory and process group, with limits the
child sets on itself before exec (address space, CPU seconds, file size, no core dumps), a
wall-clock timeout after which the group is killed, and a runner that replaces the socket
constructors with ones that raise. This does NOT isolate: the program runs as the caller's user,
can read the caller's files and /proc (its environment included), can reach the network through
`_socket`, subprocesses or ctypes, and its children can outlive the run (setsid)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
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


def _set_limits(limits):
    memory = limits.memory_mb * 2**20
    cpu = max(1, int(limits.timeout_s + 0.999))
    files = limits.file_mb * 2**20

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


class UnisolatedBackend:
    name = "unisolated"
    isolating = False

    def unavailable(self) -> str | None:
        return None

    def run(self, program: str, limits) -> tuple[int | None, int | None, str, str]:
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
                    code = None
            errors = (work / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        if code is None:
            return None, None, errors, ""
        return code, -code if code < 0 else None, errors, ""
