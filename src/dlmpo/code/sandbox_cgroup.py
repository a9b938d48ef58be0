"""One control group per sandboxed run, when this process may create one: the whole process tree's
memory (tmpfs pages included), process count and CPU share are then capped by the kernel, and every
process left in it is killed at the end. cgroup v2 (a `dlmpo-sandbox` group under the root, as root
on a systemd machine) or v1 (a child of this process's own memory/pids/cpu groups, as in many
containers). `open_group` returns None when neither can be written (no root, read-only /sys/fs/cgroup):
the caller then documents and falls back to per-process limits."""

from __future__ import annotations

import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_names = itertools.count()


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _own_paths() -> dict[str, str]:
    """controller ('' for v2) -> this process's group path, from /proc/self/cgroup."""
    paths = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@dataclass
class Group:
    """The directories of one run's group (one per v1 controller, or one v2 directory)."""

    dirs: list[Path]
    version: int
    caps: list[str] = field(default_factory=list)  # what is capped: memory, pids, cpu

    def join_fn(self):
        """A function for Popen's preexec_fn: moves the child into the group before it execs."""
        procs = [str(d / "cgroup.procs") for d in self.dirs]

        def join() -> None:
            for name in procs:
                fd = os.open(name, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)

        return join

    def pids(self) -> set[int]:
        found = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def oom_killed(self) -> bool:
        for d in self.dirs:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    for line in (d / name).read_text().splitlines():
                        word, _, count = line.partition(" ")
                        if word == key and int(count) > 0:
                            return True
                except (OSError, ValueError):
                    pass
            try:
                if int((d / "memory.failcnt").read_text()) > 0:
                    return True
            except (OSError, ValueError):
                pass
        return False

    def close(self) -> None:
        """Kill whatever is left in the group, then remove it."""
        if self.version == 2:
            _write(self.dirs[0] / "cgroup.kill", "1")
        for _ in range(200):
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.005)
        for d in self.dirs:
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


def _v2(name: str, memory: int, pids: int, cpus: float) -> Group | None:
    if not (ROOT / "cgroup.controllers").is_file():
        return None
    parent = ROOT / "dlmpo-sandbox"
    try:
        parent.mkdir(exist_ok=True)
    except OSError:
        return None
    wanted = {"memory", "pids", "cpu"}
    if not wanted <= set((parent / "cgroup.subtree_control").read_text().split()):
        available = set((ROOT / "cgroup.subtree_control").read_text().split())
        for c in wanted - available:
            _write(ROOT / "cgroup.subtree_control", f"+{c}")
        for c in wanted:
            _write(parent / "cgroup.subtree_control", f"+{c}")
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    if not {"memory", "pids"} <= enabled:
        return None
    group = parent / name
    try:
        group.mkdir()
    except OSError:
        return None
    caps = []
    if _write(group / "memory.max", str(memory)):
        caps.append("memory")
    _write(group / "memory.swap.max", "0")
    if _write(group / "pids.max", str(pids)):
        caps.append("pids")
    if "cpu" in enabled and _write(group / "cpu.max", f"{int(cpus * 100_000)} 100000"):
        caps.append("cpu")
    result = Group([group], 2, caps)
    if {"memory", "pids"} - set(caps):
        result.close()
        return None
    return result


def _v1(name: str, memory: int, pids: int, cpus: float) -> Group | None:
    own = _own_paths()
    made: list[Path] = []
    caps = []
    for controller in ("memory", "pids", "cpu"):
        mount = ROOT / controller
        if controller not in own or not (mount / "cgroup.procs").is_file():
            continue
        group = mount / own[controller].lstrip("/") / name
        try:
            group.mkdir()
        except OSError:
            continue
        made.append(group)
        if controller == "memory":
            if _write(group / "memory.limit_in_bytes", str(memory)):
                caps.append("memory")
            _write(group / "memory.memsw.limit_in_bytes", str(memory))  # no swapping past the cap, where kept
        elif controller == "pids":
            if _write(group / "pids.max", str(pids)):
                caps.append("pids")
        elif _write(group / "cpu.cfs_period_us", "100000") and \
                _write(group / "cpu.cfs_quota_us", str(int(cpus * 100_000))):
            caps.append("cpu")
    result = Group(made, 1, caps)
    if {"memory", "pids"} - set(caps):
        result.close()
        return None
    return result


def open_group(memory_bytes: int, pids: int, cpus: float = 1.0) -> Group | None:
    """A fresh group capping memory and process count (CPU share where the cpu controller is
    there), or None when no cgroup can be made here."""
    if os.geteuid() != 0:
        return None
    name = f"run-{os.getpid()}-{next(_names)}"
    try:
        return _v2(name, memory_bytes, pids, cpus) or _v1(name, memory_bytes, pids, cpus)
    except OSError:
        return None
