"""The paper's grid on a local Ray cluster of this machine's CPUs: 2 tasks x 2 optimizers x 2 seeds,
the tiny-random DLM, a local OpenAI-compatible server that counts what it is asked. Every run's
result and the table equal the sequential grid's, even with a worker killed mid-run, and no call
is paid twice."""

import asyncio
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dlmpo import api
from dlmpo.optimizer.settings import OptimizeSettings
from tests.support.fake_openai_server import FakeOpenAIServer
from tests.support.grid import GRID, TINY, answer, comparable

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield
    ray.shutdown()


class WorkerKiller(threading.Thread):
    """SIGKILLs the Ray worker running `run_dir` once its first round has begun, at a moment when it
    has no paid call open: stop it, look in its cache, then kill it or let it go on."""

    def __init__(self, run_dir: Path):
        super().__init__(daemon=True)
        self.run_dir, self.killed, self.events_at_kill = run_dir, None, 0

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (self.run_dir / "result.json").exists():
            events = self._events()
            pid = self._holder() if events >= 4 else None  # run_start, two seed evals, round_start
            if pid is not None:
                os.kill(pid, signal.SIGSTOP)
                if self._open_attempts() == 0:
                    os.kill(pid, signal.SIGKILL)
                    self.killed, self.events_at_kill = pid, self._events()
                    return
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)

    def _events(self) -> int:
        path = self.run_dir / "events.jsonl"
        return len(path.read_text().splitlines()) if path.is_file() else 0

    def _holder(self) -> int | None:
        cache = str(self.run_dir / "calls.sqlite")
        for proc in psutil.process_iter():
            try:
                if proc.pid != os.getpid() and any(f.path == cache for f in proc.open_files()):
                    return proc.pid
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return None

    def _open_attempts(self) -> int:
        db = sqlite3.connect(f"file:{self.run_dir / 'calls.sqlite'}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute("SELECT COUNT(*) FROM open_attempts").fetchone()[0]
        finally:
            db.close()


def test_the_grid_on_ray_equals_the_sequential_grid_with_a_worker_killed(local_ray, data_dir, tmp_path):
    with FakeOpenAIServer(answer=answer) as server:
        base = OptimizeSettings(target=f"{server.base_url}#target", optimizer_model=f"{server.base_url}#writer",
                                data_dir=str(data_dir), **TINY)
        sequential = asyncio.run(api.compare(base, out=tmp_path / "seq", **GRID))
        asked_sequentially = sorted(json.dumps(r, sort_keys=True) for r in server.requests)
        server.requests.clear()

        killer = WorkerKiller(tmp_path / "ray" / "sst2" / "dlm-seed0")
        killer.start()
        statuses = []
        on_ray = asyncio.run(api.compare(base, out=tmp_path / "ray", ray="local", **GRID,
                                         on_progress=lambda what, done, total, status: statuses.append((done, status))))
        killer.join()
        asked_on_ray = sorted(json.dumps(r, sort_keys=True) for r in server.requests)
        server.requests.clear()
        again = asyncio.run(api.compare(base, out=tmp_path / "ray", ray="local", **GRID))
        assert not server.requests  # complete runs are read back, not run again

    assert killer.killed and killer.events_at_kill >= 4, "no worker was killed mid-run"
    killed_log = (tmp_path / "ray" / "sst2" / "dlm-seed0" / "events.jsonl").read_text().splitlines()
    starts = [e for e in map(json.loads, killed_log) if e["type"] == "run_start"]
    assert [e["resume"] for e in starts] == [False, True]  # Ray ran it again, and it resumed from its folder
    results = sorted((tmp_path / "seq").glob("*/*/result.json"))
    assert len(results) == 8
    for path in results:
        on_ray_path = tmp_path / "ray" / path.relative_to(tmp_path / "seq")
        assert comparable(json.loads(path.read_text())) == comparable(json.loads(on_ray_path.read_text())), path
    assert (tmp_path / "seq" / "compare.md").read_text() == (tmp_path / "ray" / "compare.md").read_text()
    assert per_task_without_seconds(sequential) == per_task_without_seconds(on_ray)
    assert again["per_task"] == on_ray["per_task"]
    # the killed run was resumed from its run directory: nothing asked twice, nothing left out
    assert asked_on_ray == asked_sequentially
    table = (tmp_path / "ray" / "compare.md").read_text().splitlines()
    assert table[0] == "| optimizer | sst2 | mrpc |" and table[2].startswith("| seed prompt | ")
    assert [line.split(" | ")[0] for line in table[3:5]] == ["| dlm", "| ar"]
    assert (tmp_path / "ray" / "compare.png").stat().st_size > 1000
    assert len(json.loads((tmp_path / "ray" / "compare.json").read_text())["runs"]) == 8
    done, status = statuses[-1]
    assert done == 8 and status.startswith(f"0 running, 0 failed; {len(asked_on_ray)} paid calls")


def per_task_without_seconds(summary: dict) -> dict:
    return {task: [{k: v for k, v in row.items() if k != "seconds"} for row in s["results"]]
            for task, s in summary["per_task"].items()}
