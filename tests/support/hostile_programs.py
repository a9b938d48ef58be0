"""Hostile programs graded through `CodeTask.grade`, one per escape the old sandbox allowed, and
the host-side checks that say whether each was blocked. Used by tests/code/test_sandbox_isolation.py
and benchmarks/sandbox.py (old backend vs new)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dlmpo.code.problems import CodeProblem, CodeSplits
from dlmpo.code.sandbox import SandboxLimits, choose_backend
from dlmpo.code.task import CodeTask

PROBLEM = CodeProblem("hostile/1", 'def add(a, b):\n    """Sum of a and b."""\n', "    return a + b\n",
                      "def check(candidate):\n    assert candidate(2, 3) == 5\n", "add")
SECRET = "sk-test-secret-0123456789"
ENV_NAME = "DLMPO_TEST_OPENAI_API_KEY"


class Arena:
    """What the attacks aim at: a listener on 127.0.0.1, a folder with a marker file, a process of
    the host to kill, a secret in the environment, and a token that marks the attacks' processes."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dlmpo-arena-"))
        self.marker = self.folder / "marker.txt"
        self.marker.write_text("host secret file")
        self.token = f"dlmpo-hostile-{uuid.uuid4().hex[:12]}"
        self.connections = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()
        self.victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        self._old_env = os.environ.get(ENV_NAME)
        os.environ[ENV_NAME] = SECRET

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def marked_processes(self) -> list[int]:
        """Host pids whose command line carries the token (processes an attack left behind)."""
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if self.token.encode() in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                        found.append(int(entry.name))
                except OSError:
                    pass
        return found

    def close(self) -> None:
        self._stop = True
        self.server.close()
        self.victim.kill()
        self.victim.wait()
        for pid in self.marked_processes():
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        if self._old_env is None:
            os.environ.pop(ENV_NAME, None)
        else:
            os.environ[ENV_NAME] = self._old_env


@dataclass
class Outcome:
    passed: bool
    feedback: str
    blocked: bool
    evidence: str


@dataclass
class Attack:
    name: str
    program: Callable[[Arena], str]  # module-level code run before `add` is defined
    verdict: Callable[[Arena, str, dict], tuple[bool, str]]  # (blocked, evidence) from feedback and before-state
    destructive: bool = False  # never run unisolated: as root it would kill every process of the machine


def answer(code: str) -> str:
    return f"```python\n{code}\ndef add(a, b):\n    return a + b\n```"


def grade(attack: Attack, arena: Arena, limits: SandboxLimits) -> Outcome:
    if attack.destructive and not choose_backend(limits).isolating:
        raise RuntimeError(f"'{attack.name}' only runs in an isolating sandbox: unisolated it kills host processes.")
    task = CodeTask("hostile", CodeSplits("hostile", [], [], [PROBLEM]), limits=limits)
    if arena.victim.poll() is not None:  # an earlier attack killed it (the unisolated backend)
        arena.victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    arena.token = f"dlmpo-hostile-{uuid.uuid4().hex[:12]}"  # fresh marks: no attack sees another's leftovers
    before = {"connections": arena.connections}
    graded = task.grade(task.examples("test")[0], answer(attack.program(arena)))
    time.sleep(0.3)  # let the listener count and stray processes show
    blocked, evidence = attack.verdict(arena, graded.feedback, before)
    return Outcome(graded.score == 1.0, graded.feedback, blocked, evidence)


def _says(word: str):
    def verdict(arena: Arena, feedback: str, before: dict) -> tuple[bool, str]:
        return word not in feedback, feedback[:160]
    return verdict


def _no_connection(arena: Arena, feedback: str, before: dict) -> tuple[bool, str]:
    made = arena.connections - before["connections"]
    return made == 0, f"{made} connection(s) reached the listener; {feedback[:100]}"


def _nothing_left(arena: Arena, feedback: str, before: dict) -> tuple[bool, str]:
    left = arena.marked_processes()
    return not left, f"{len(left)} process(es) left after grade; {feedback[:100]}"


def _victim_alive(arena: Arena, feedback: str, before: dict) -> tuple[bool, str]:
    alive = arena.victim.poll() is None
    return alive, f"host process {'alive' if alive else 'killed'}; {feedback[:100]}"


def _number_at_most(word: str, limit: int):
    def verdict(arena: Arena, feedback: str, before: dict) -> tuple[bool, str]:
        if word not in feedback:
            return True, feedback[:160]
        number = int(feedback.split(word, 1)[1].split()[0])
        return number <= limit, f"{word} {number} (cap {limit})"
    return verdict


def _connect(how: str) -> Callable[[Arena], str]:
    return lambda arena: how.replace("PORT", str(arena.port))


ATTACKS = [
    Attack("environment via /proc/<ppid>/environ", lambda a: f"""
import os
found, secret = set(), False
for pid in [os.getppid(), 1] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:
    if pid in (0, os.getpid()):
        continue
    try:
        data = open(f'/proc/{{pid}}/environ', 'rb').read()
    except OSError:
        continue
    secret = secret or {SECRET[:12]!r}.encode() in data
    found |= {{item.split(b'=')[0].decode(errors='replace') for item in data.split(b'\\0') if item}}
found -= {{'PATH', 'LANG', 'HOME', 'PWD'}}
if secret or found or {ENV_NAME!r} in os.environ:
    raise RuntimeError(f'LEAK key={{secret}} ' + ','.join(sorted(found))[:80])
""", _says("LEAK")),
    Attack("secret printed into feedback", lambda a: f"raise RuntimeError('LEAK ' + {SECRET!r})\n",
           lambda arena, feedback, before: (SECRET not in feedback, feedback[:160])),
    Attack("network: _socket.SocketType", _connect("""
import _socket
s = _socket.SocketType(_socket.AF_INET, _socket.SOCK_STREAM)
s.connect(('127.0.0.1', PORT))
"""), _no_connection),
    Attack("network: socket.socket.__mro__", _connect("""
import socket
base = [c for c in socket.socket.__mro__ if c.__module__ == '_socket'][0]
s = base(socket.AF_INET, socket.SOCK_STREAM)
s.connect(('127.0.0.1', PORT))
"""), _no_connection),
    Attack("network: importlib.reload(socket)", _connect("""
import importlib, socket, _socket
importlib.reload(_socket)
importlib.reload(socket)
socket.create_connection(('127.0.0.1', PORT)).close()
"""), _no_connection),
    Attack("network: subprocess curl", _connect("""
import subprocess
subprocess.run(['curl', '-s', '-m', '2', 'http://127.0.0.1:PORT/'])
"""), _no_connection),
    Attack("network: os.system bash /dev/tcp", _connect("""
import os
os.system("bash -c 'echo hi > /dev/tcp/127.0.0.1/PORT'")
"""), _no_connection),
    Attack("network: ctypes connect", _connect("""
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.socket(2, 1, 0)
addr = struct.pack('<HH4s8x', 2, __import__('socket').htons(PORT), bytes([127, 0, 0, 1]))
libc.connect(fd, addr, len(addr))
"""), _no_connection),
    Attack("files: read a file outside", lambda a: f"""
try:
    data = open({str(a.marker)!r}).read()
except OSError:
    data = ''
if 'host secret' in data:
    raise RuntimeError('ESCAPED read the marker')
""", _says("ESCAPED")),
    Attack("files: write next to it", lambda a: f"""
try:
    open({str(a.folder / a.token)!r}, 'w').write('x')
except OSError:
    pass
""", lambda arena, feedback, before: (not (arena.folder / arena.token).exists(),
                                      f"file written outside: {(arena.folder / arena.token).exists()}")),
    Attack("files: parent's run directory via /proc/<ppid>/cwd", lambda a: """
import os
try:
    names = os.listdir(f'/proc/{os.getppid()}/cwd')
except OSError:
    names = []
if any(n.startswith(('pyproject', 'src', 'stderr.txt', 'program.py')) for n in names if n != 'program.py'):
    raise RuntimeError('ESCAPED ' + ','.join(sorted(names))[:80])
""", _says("ESCAPED")),
    Attack("signals: kill a host process by pid, signal the parent", lambda a: f"""
import os, signal
os.system('kill -9 {a.victim.pid} 2>/dev/null')
try:
    os.kill({a.victim.pid}, signal.SIGKILL)
except OSError:
    pass
try:
    os.kill(os.getppid(), 0)  # signal 0: only asks whether the parent could be signalled
    if os.getppid() > 1:
        raise RuntimeError('ESCAPED may signal the parent')
except OSError:
    pass
""", lambda arena, feedback, before: (arena.victim.poll() is None and "ESCAPED" not in feedback,
                                      f"host process {'alive' if arena.victim.poll() is None else 'killed'}; "
                                      f"{feedback[:100]}")),
    Attack("signals: SIGTERM the parent, kill -9 -1", lambda a: """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGTERM)
except OSError:
    pass
os.kill(-1, signal.SIGKILL)
""", _victim_alive, destructive=True),
    Attack("children: background child of a passing program", lambda a: f"""
import subprocess, sys
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', {a.token!r}])
""", _nothing_left),
    Attack("children: setsid/nohup child past the timeout", lambda a: f"""
import os, time
os.system("setsid nohup python3 -c 'import time; time.sleep(120)' {a.token} >/dev/null 2>&1 &")
os.system("nohup python3 -c 'import time; time.sleep(120)' {a.token} >/dev/null 2>&1 &")
time.sleep(60)
""", _nothing_left),
    Attack("fork flood: 200 forks", lambda a: """
import os, time
made = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    made += 1
raise RuntimeError(f'FORKED {made} of 200')
""", _number_at_most("FORKED", 64)),
    Attack("memory: two children of 700 MB each (1 GB limit)", lambda a: """
import subprocess, sys
child = "b = b'x' * (700 * 2**20); import time; time.sleep(2)"
procs = [subprocess.Popen([sys.executable, '-c', child]) for _ in range(2)]
codes = [p.wait() for p in procs]
if codes == [0, 0]:
    raise RuntimeError('BOTH held 700 MB')
raise RuntimeError(f'capped {codes}')
""", _says("BOTH")),
    Attack("disk: two children writing 100 MB in all (64 MB tmpfs)", lambda a: """
import os, subprocess, sys
child = '''
import sys
n = 0
for i in range(5):
    try:
        with open(f'/tmp/fill-{sys.argv[1]}-{i}', 'wb') as f:
            for _ in range(10):
                f.write(b'x' * 2**20)
    except OSError:
        break
'''
procs = [subprocess.Popen([sys.executable, '-c', child, str(k)], cwd=os.getcwd()) for k in range(2)]
[p.wait() for p in procs]
total = sum(os.path.getsize(n) for n in os.listdir('.') if n.startswith('fill-'))
raise RuntimeError(f'WROTE {total // 2**20} MB')
""", _number_at_most("WROTE", 64)),
]
