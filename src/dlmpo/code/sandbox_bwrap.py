"""The isolating backend: bubblewrap (`bwrap`).

Each program runs in new PID, network, IPC, UTS and mount namespaces with a root made of
read-only binds of what the interpreter needs (/usr, /etc/ld.so.*, Python's prefixes), a new
/proc that shows only the sandbox, a minimal /dev, and a private size-capped tmpfs as /tmp (its
working directory and HOME, where program.py is bound read-only). No environment is passed
(`--clearenv`: PATH, LANG, HOME only), nothing of the parent's files, no network but an isolated
loopback. The tree dies with bwrap (`--die-with-parent`; the PID namespace's init is killed when
bwrap is, which kills every process in it, `setsid` and `nohup` ones included), and bwrap ends when
the program does, so background children never outlive a run.

Who runs it:
- as root, bwrap creates the namespaces and the program runs as a dedicated unprivileged host uid
  (one per concurrent run, no capabilities, no new privileges) set by `setpriv` inside the
  sandbox; that uid owns no files and its process count is the sandbox's alone;
- as another user, bwrap also makes a user namespace and the program runs as uid 65534 in it.

Limits: a cgroup per run (sandbox_cgroup) caps the whole tree's memory (tmpfs included) and
process count where one can be made (root); `prlimit` inside sets per-process limits in every case
(address space, CPU seconds, file size, no core files, and RLIMIT_NPROC, which counts per uid: per
sandbox as root, per user namespace otherwise); the tmpfs's size caps disk across processes; the
wall-clock timeout kills the tree."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

from dlmpo.code.sandbox_cgroup import open_group

UID_BASE = 1_900_000_000  # far above any account; one uid per concurrent run of this process
_slots = itertools.count()
_slot_lock = threading.Lock()
_busy: set[int] = set()
SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
CHECK = ["/bin/true"]


@lru_cache(maxsize=1)
def _interpreter_prefixes() -> tuple[str, ...]:
    """The folders the interpreter needs (its prefixes, bound read-only in place); fixed per process."""
    exe = os.path.realpath(sys.executable)
    needed = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), os.path.dirname(os.path.dirname(exe))}
    needed = {p for p in needed if p not in ("/", "/usr")
              and not any(p != q and p.startswith(q.rstrip("/") + "/") for q in needed)}
    return tuple(sorted(needed))


@lru_cache(maxsize=1)
def _probe() -> str | None:
    """None when bwrap can build a sandbox here, else why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    help_text = subprocess.run([bwrap, "--help"], capture_output=True, text=True).stdout
    if "--size" not in help_text:
        return "this bwrap is too old (0.7 or newer caps the sandbox's tmpfs with --size)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing"
    if shutil.which("prlimit") is None:
        return "prlimit (util-linux) is missing"
    probe = subprocess.run(_command(bwrap, UID_BASE, 2, 256, 1, 1, 16, program=None) + CHECK,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here ({probe.stderr.strip()[:200] or probe.returncode})"
    return None


def _command(bwrap: str, uid: int | None, cpu_s: int, memory_mb: int, file_mb: int, disk_mb: int,
             processes: int, program: str | None) -> list[str]:
    root = os.geteuid() == 0
    prefixes = _interpreter_prefixes()
    cmd = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
           "--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
    if root:  # root makes the namespaces itself; setpriv (inside) drops to the run's own uid
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    for name, value in SANDBOX_ENV.items():
        cmd += ["--setenv", name, value]
    cmd += ["--perms", "0755", "--dir", "/etc", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), f"/{name}"]
    for name in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives"):
        if os.path.exists(name):
            cmd += ["--ro-bind", name, name]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "01777", "--size", str(disk_mb * 2**20), "--tmpfs", "/tmp",
            "--perms", "01777", "--size", str(disk_mb * 2**20), "--tmpfs", "/dev/shm"]
    # Python's prefixes after the tmpfs: a virtual environment under /tmp (CI's, many users') must
    # not be hidden by the sandbox's own /tmp
    parents = {str(q) for prefix in prefixes for q in Path(prefix).parents if str(q) not in ("/", "/tmp")}
    for parent in sorted(parents):  # made by bwrap on its root; 0755 whatever the host's modes
        cmd += ["--perms", "0755", "--dir", parent]
    for prefix in prefixes:
        cmd += ["--ro-bind", prefix, prefix]
    if program is not None:
        cmd += ["--ro-bind", program, "/tmp/program.py"]
    cmd += ["--chdir", "/tmp", "--"]
    if root:
        cmd += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--"]
    cmd += [shutil.which("prlimit") or "/usr/bin/prlimit", f"--as={memory_mb * 2**20}", f"--cpu={cpu_s}:{cpu_s + 1}",
            f"--fsize={file_mb * 2**20}", "--core=0", f"--nproc={processes}", "--"]
    return cmd


def _take_uid() -> int:
    with _slot_lock:
        while True:
            slot = next(_slots) % 1000
            if slot not in _busy:
                _busy.add(slot)
                return UID_BASE + (os.getpid() % 100_000) * 1000 + slot


def _free_uid(uid: int) -> None:
    with _slot_lock:
        _busy.discard((uid - UID_BASE) % 1000)


def _kill_uid(uid: int) -> None:
    """Belt and braces, as root: SIGKILL any process still running as the run's uid."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            os.kill(int(entry.name), signal.SIGKILL)
                        break
        except (OSError, ValueError):
            pass


class BwrapBackend:
    name = "bwrap"
    isolating = True

    def unavailable(self) -> str | None:
        return _probe()

    def run(self, program: str, limits) -> tuple[int | None, int | None, str, str]:
        """(exit code or None, signal or None, stderr, note); exit code None means timed out."""
        bwrap = shutil.which("bwrap") or "bwrap"
        root = os.geteuid() == 0
        uid = _take_uid() if root else None
        group = open_group(limits.memory_mb * 2**20, limits.processes, limits.cpus) if root else None
        try:
            with tempfile.TemporaryDirectory(prefix="dlmpo-sandbox-") as folder:
                path = Path(folder) / "program.py"
                path.write_text(program, encoding="utf-8")
                os.chmod(folder, 0o711)
                os.chmod(path, 0o644)
                cpu = max(1, int(limits.timeout_s + 0.999))
                cmd = _command(bwrap, uid, cpu, limits.memory_mb, limits.file_mb, limits.disk_mb, limits.processes,
                               str(path))
                cmd += [sys.executable, "-I", "/tmp/program.py"]
                with open(Path(folder) / "stderr.txt", "w+b") as stderr:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                            env={"PATH": os.defpath}, cwd=folder, start_new_session=True,
                                            preexec_fn=group.join_fn() if group else None)
                    try:
                        code = proc.wait(timeout=limits.timeout_s)
                    except subprocess.TimeoutExpired:
                        code = None
                        proc.kill()  # bwrap's death kills the namespace's init, hence every process in it
                        proc.wait()
                    stderr.seek(0)
                    errors = stderr.read(64 * 1024).decode("utf-8", errors="replace")
            oom = group is not None and group.oom_killed()
        finally:
            if group is not None:
                group.close()
            if uid is not None:
                _kill_uid(uid)
                _free_uid(uid)
        if code is None:
            return None, None, errors, ""
        if code > 128:  # bwrap reports a child killed by signal N as 128 + N
            return code, code - 128, errors, "the sandbox's memory limit" if oom else ""
        return code, None, errors, ""
