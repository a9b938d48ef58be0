"""What a grid run asks of a cluster, read from its settings, and the sentence a missing Ray gives
(tests/test_scale_ray.py runs the grid on a real local Ray cluster)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlmpo.errors import UserError
from dlmpo.lm.cache import CallCache, paid_calls
from dlmpo.lm.types import ChatResponse
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.scale.grid import GridRun
from dlmpo.scale.resources import RunResources, run_resources


def _run(optimizer="dlm", **settings) -> GridRun:
    return GridRun(OptimizeSettings(**settings), Path("unused"), optimizer, "sst2/x-seed0")


@pytest.fixture
def dream_folder(tmp_path) -> str:
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 1000)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"\0" * 500)
    return str(tmp_path)


def test_a_run_that_only_calls_servers_or_small_models_takes_one_cpu(dream_folder):
    assert run_resources(_run(dlm="tiny-random:dream"), cluster_gpus=8) == RunResources(cpus=1, gpus=0, memory=0)
    assert run_resources(_run(dlm="embedded", target="openai:gpt-4o-mini"), cluster_gpus=8) == RunResources()
    # the AR writer on a server loads no DLM, whatever --dlm says
    assert run_resources(_run("ar", dlm=f"dream:{dream_folder}", optimizer_model="openai:gpt-4o-mini",
                              target="openai:gpt-4o-mini"), cluster_gpus=8) == RunResources()


def test_a_large_local_model_takes_a_gpu_and_its_weights_memory(dream_folder):
    dream = _run(dlm=f"dream:{dream_folder}", target="openai:gpt-4o-mini")
    assert run_resources(dream, cluster_gpus=8) == RunResources(cpus=1, gpus=1, memory=1800)
    assert run_resources(dream, cluster_gpus=0) == RunResources(cpus=1, gpus=0, memory=1800)  # a CPU cluster
    on_cpu = _run(dlm=f"dream:{dream_folder}", target="openai:gpt-4o-mini", device="cpu")
    assert run_resources(on_cpu, cluster_gpus=8).gpus == 0
    hf_writer = _run("ar", optimizer_model=f"hf:{dream_folder}", target="openai:gpt-4o-mini")
    assert run_resources(hf_writer, cluster_gpus=1) == RunResources(cpus=1, gpus=1, memory=1800)
    gepa_dlm = _run("gepa+dlm", dlm="dream:some-org/not-downloaded-7b", target="openai:gpt-4o-mini")
    assert run_resources(gepa_dlm, cluster_gpus=1) == RunResources(cpus=1, gpus=1, memory=0)  # size unknown here


def test_asking_for_cuda_on_a_cluster_without_gpus_is_one_sentence(dream_folder):
    run = _run(dlm=f"dream:{dream_folder}")
    on_cuda = GridRun(run.settings.model_copy(update={"device": "cuda"}), run.run_dir, run.optimizer, run.name)
    with pytest.raises(UserError, match="has no GPU"):  # (settings check cuda on the machine that runs the command)
        run_resources(on_cuda, cluster_gpus=0)


def test_paid_calls_reads_a_run_cache_from_outside(tmp_path):
    assert paid_calls(tmp_path / "missing.sqlite") == 0
    cache = CallCache(tmp_path / "calls.sqlite")
    cache.put("k1", "m", ChatResponse(text="a"))
    cache.open_attempt("m", 10, 5)  # sent, never answered: paid all the same
    cache.record_failure("m", "500")
    assert paid_calls(tmp_path / "calls.sqlite") == 3
    cache.close()


def test_ray_missing_is_one_sentence_naming_the_extra(tmp_path, data_dir):
    blocker = tmp_path / "no_ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    for command in (["compare", "--task", "sst2", "--optimizers", "dlm", "--max-calls", "10"],
                    ["sweep", "--param", "steps", "--values", "2,4"]):
        proc = subprocess.run([sys.executable, "-m", "dlmpo", *command, "--ray", "local", "--data-dir", str(data_dir),
                               "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == "error: --ray needs Ray, which is not installed: pip install 'dlmpo[ray]'.\n"
    assert not (tmp_path / "out").exists()  # before any run


def test_a_grid_with_failed_runs_says_which_and_why(tmp_path):
    from dlmpo.errors import RunsFailed
    from dlmpo.scale.progress import GridProgress

    runs = [GridRun(OptimizeSettings(), tmp_path / f"r{i}", "dlm", f"sst2/dlm-seed{i}") for i in range(3)]
    statuses = []
    progress = GridProgress(runs, on_progress=lambda what, done, total, status: statuses.append((done, total, status)))
    progress.failed(1, RuntimeError("Traceback ...\nWorkerCrashedError: the worker died"))
    assert statuses[-1] == (0, 3, "0 running, 1 failed; 0 paid calls, $0.0000 in finished runs")
    with pytest.raises(RunsFailed, match=r"^1 of 3 runs failed \(sst2/dlm-seed1: WorkerCrashedError: the worker died\)"):
        progress.raise_failures()
    progress.failed(2, UserError("Unknown task 'x'."))  # a mistake in the input wins: its own sentence, exit 2
    with pytest.raises(UserError, match="Unknown task 'x'"):
        progress.raise_failures()
