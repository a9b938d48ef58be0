"""The runs of a grid as Ray tasks (`dlmpo compare|sweep --ray local|auto|ADDRESS`), the only module
that imports ray. Each run is one task with the resources its settings need
(`resources.run_resources`); it runs the same function as the sequential executor, in the folder
the command ran from, on the same run directory, so its budget and result are its own. A worker
that dies (killed, pre-empted, out of memory) has its task retried by Ray, and the retry resumes
from the run directory: finished rounds from events.jsonl, paid calls from calls.sqlite, never
paid twice. Worker output goes to Ray's logs, not to this terminal."""

from __future__ import annotations

import asyncio
import os

from dlmpo.errors import UserError
from dlmpo.scale.executors import Work
from dlmpo.scale.grid import GridRun
from dlmpo.scale.progress import GridProgress
from dlmpo.scale.resources import run_resources

RETRIES = 3  # a run whose worker died is started again this many times (Ray's own default)
POLL_SECONDS = 1.0
# what a run reads from its environment (API keys, data and cache folders), handed to a cluster's workers
FORWARDED_ENV = ("OPENAI_", "DLMPO_", "HF_")


def _require_ray():
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray, which is not installed: pip install 'dlmpo[ray]'.") from None
    return ray


def _run_in_worker(work: Work, run: GridRun, folder: str):
    """One run in a Ray worker, in the folder the command ran from (relative paths mean the same)."""
    try:
        os.chdir(folder)
    except OSError:
        raise UserError(f"A Ray node lacks the folder {folder} that the command ran from: run dlmpo from a "
                        "folder every node has (shared storage), so that run directories and paths are the same.") from None
    return asyncio.run(work(run))


class RayExecutor:
    def __init__(self, address: str | None):
        self.ray = _require_ray()
        self.address = address or "local"

    def _connect(self) -> bool:
        """Join the cluster (True when this call started Ray and should stop it again)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        kwargs = {"log_to_driver": False, "logging_level": "warning"}
        if self.address == "local":
            kwargs["include_dashboard"] = False
        else:  # workers started by `ray start` do not have this shell's environment
            env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
            kwargs["runtime_env"] = {"env_vars": env}
        try:
            ray.init(address=self.address, **kwargs)
        except ConnectionError as exc:
            raise UserError(f"Cannot reach a Ray cluster at '{self.address}' ({exc}): start one with `ray start "
                            "--head`, or use --ray local.") from None
        return True

    async def run_all(self, runs: list[tuple[int, GridRun]], work: Work, progress: GridProgress) -> None:
        ray = self.ray
        started = self._connect()
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            plans = [(index, run, run_resources(run, gpus)) for index, run in runs]  # every mistake before any task
            task = ray.remote(_run_in_worker)
            folder = os.getcwd()
            pending = {}
            for index, run, need in plans:
                options = {"num_cpus": need.cpus, "num_gpus": need.gpus, "max_retries": RETRIES}
                if need.memory:
                    options["memory"] = need.memory
                pending[task.options(**options).remote(work, run, folder)] = index
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0, fetch_local=False)
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        progress.finished(index, ray.get(ref))
                    except ray.exceptions.RayTaskError as exc:  # the run raised: its own exception
                        progress.failed(index, exc.cause if exc.cause is not None else exc)
                    except ray.exceptions.RayError as exc:  # its worker died more than RETRIES times
                        progress.failed(index, exc)
                if pending:
                    progress.refresh()
                    await asyncio.sleep(POLL_SECONDS)
        finally:
            if started:
                ray.shutdown()
