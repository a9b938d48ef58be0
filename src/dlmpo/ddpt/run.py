"""A DDPT run: stages in a run directory, each written once and never redone on resume.

    config.json        the settings (a re-run must match them to resume)
    events.jsonl       stage ends, test scores
    space.pt           the random projection A and the prompt's token ids
    features.pt        pooled embeddings of the train and test problems (stage 0)
    directions.pt      stage 1: the optimal z* with their clusters, written after each one
    prompt_tuning.pt   the baseline: one z tuned on all train problems
    denoiser.pt        stage 2: the diffusion prior
    test.json          held-out scores, written after each condition
    generations/       every held-out completion with its sandbox status, per condition
    result.json        the final summary

Every stage draws from its own generator seeded by (seed, stage), so a run interrupted and
resumed ends with exactly the result of an uninterrupted one."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from dlmpo.code.problems import CodeProblem, load_code_problems
from dlmpo.code.sandbox import SandboxLimits, choose_backend
from dlmpo.ddpt.conditions import CONDITIONS, condition_prefixes
from dlmpo.ddpt.config import DDPTConfig
from dlmpo.ddpt.denoiser_training import DenoiserSettings, train_denoiser
from dlmpo.ddpt.diffusion import DiffusionPrior
from dlmpo.ddpt.directions import EncodedProblem, kmeans, optimise_z
from dlmpo.ddpt.scoring import GenerationSettings, progress_units, score_condition
from dlmpo.ddpt.soft_prompt import SoftPromptSpace
from dlmpo.ddpt.whitebox import WhiteBoxLM, require_white_box
from dlmpo.errors import UserError
from dlmpo.files import atomic_write, load_torch, read_json, save_torch
from dlmpo.runs.rundir import RunDir

STAGE_FILES = ("features", "prompt_tuning", "directions", "denoiser")
Progress = Callable[[str, int, int, str], None]  # (stage, completed, total, status)


def derive_seed(seed: int, *parts: Any) -> int:
    return int.from_bytes(hashlib.sha1(repr((seed, *parts)).encode()).digest()[:4], "big")


def write_json(obj: Any, path: Path) -> None:
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False))


def load_space(lm: WhiteBoxLM, cfg: DDPTConfig, run_dir: Path) -> SoftPromptSpace:
    path = Path(run_dir) / "space.pt"
    projection = load_torch(path, "DDPT file", keys=("projection",))["projection"]
    expected = (cfg.z_dim, lm.d_model)
    if not isinstance(projection, torch.Tensor) or projection.dim() != 2 or projection.shape[0] != cfg.z_dim:
        shape = tuple(projection.shape) if isinstance(projection, torch.Tensor) else type(projection).__name__
        raise UserError(f"DDPT file {path} is damaged: its projection has shape {shape}, the run's settings need "
                        f"({expected[0]}, {expected[1]}).")
    try:
        return SoftPromptSpace(lm, cfg.context, cfg.instruction, projection)
    except RuntimeError as exc:
        raise UserError(f"DDPT file {path} does not fit {cfg.target} ({str(exc).splitlines()[0]}).") from None


def load_prior(path: Path) -> DiffusionPrior:
    state = load_torch(path, "DDPT file")
    try:
        return DiffusionPrior.from_state(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(f"DDPT file {path} is damaged ({type(exc).__name__}): it is not a denoiser dlmpo wrote.") from None


def conditions_of(method: str) -> tuple[str, ...]:
    return CONDITIONS if method == "ddpt" else CONDITIONS[:3]


@dataclass
class DDPTResult:
    run_dir: str
    test: dict[str, dict]
    seconds: float
    train_problems: int
    test_problems: int

    def summary(self) -> dict:
        return {"run_dir": self.run_dir, "test": self.test, "seconds": round(self.seconds, 1),
                "train_problems": self.train_problems, "test_problems": self.test_problems}

    @classmethod
    def load(cls, run_dir: str | Path) -> DDPTResult:
        path = Path(run_dir) / "result.json"
        if not path.is_file():
            raise UserError(f"{run_dir} holds no finished DDPT run (no result.json).")
        data = read_json(path, "DDPT result")
        try:
            return cls(data["run_dir"], data["test"], data["seconds"], data["train_problems"], data["test_problems"])
        except KeyError as exc:
            raise UserError(f"{path} is damaged (it lacks {exc}): re-run `dlmpo ddpt train` to write it again.") from None


class DDPTRun:
    def __init__(self, cfg: DDPTConfig, run_dir: str | Path, *, device: str | None = None,
                 on_event: Callable[[dict], None] | None = None, on_progress: Progress | None = None,
                 allow_unisolated: bool = False):
        self.cfg = cfg.validate()
        require_white_box(cfg.target)  # before any data is read
        self.splits = load_code_problems(cfg.task, cfg.split_seed)
        self.limits = SandboxLimits(cfg.timeout_s, cfg.memory_mb, allow_unisolated=allow_unisolated)
        choose_backend(self.limits)  # no sandbox allowed here: an error now, not after training
        self.dir = RunDir(run_dir)
        self.path = self.dir.path
        self.device = device
        self.on_event = on_event or (lambda e: None)
        self.on_progress = on_progress or (lambda *a: None)

    @property
    def notes(self) -> list[str]:
        return self.splits.notes

    def _event(self, event: dict) -> None:
        self.dir.append(event)
        self.on_event(event)

    def run(self) -> DDPTResult:
        start = time.perf_counter()
        cfg = self.cfg
        lm = WhiteBoxLM(cfg.target, self.device)  # a model that cannot load leaves no config behind
        resuming = self.dir.bind_config(cfg.to_json(), cfg.to_json())
        if resuming:
            done = [name for name in STAGE_FILES if (self.path / f"{name}.pt").is_file()]
            tested = read_json(self.path / "test.json", "DDPT scores") if (self.path / "test.json").is_file() else {}
            self.on_event({"type": "resume", "done": done, "tested": list(tested)})
        if not (self.path / "space.pt").is_file():
            fresh = SoftPromptSpace.create(lm, cfg.context, cfg.instruction, cfg.z_dim, derive_seed(cfg.seed, "projection"))
            save_torch({"projection": fresh.projection.cpu(), "context_ids": fresh.context_ids,
                        "instruction_ids": fresh.instruction_ids}, self.path / "space.pt")
        space = load_space(lm, cfg, self.path)
        train, dropped = self._train_problems(lm)
        test = self.splits.test[: cfg.test_limit] if cfg.test_limit else self.splits.test
        if not train or not test:
            raise UserError(f"Task '{cfg.task}' leaves {len(train)} train and {len(test)} test problems: DDPT needs both "
                            "(raise --max-prompt-tokens, or use more problems).")
        if not resuming:
            self._event({"type": "data", "train": len(train), "dropped_long": dropped, "test": len(test)})
        features = self._features(lm, train, test)
        z_pt = self._prompt_tuning(space, train)
        prior = None
        if cfg.method == "ddpt":
            directions = self._directions(space, train, features["train"], z_pt)
            prior = self._denoiser(space, train, features["train"], directions)
        scores = self._evaluate(space, test, features["test"], z_pt, prior)
        result = DDPTResult(str(self.path), scores, time.perf_counter() - start, len(train), len(test))
        write_json(result.summary(), self.path / "result.json")
        return result

    def _train_problems(self, lm: WhiteBoxLM) -> tuple[list[EncodedProblem], int]:
        cfg, kept, dropped = self.cfg, [], 0
        for problem in self.splits.train:
            prompt_ids = lm.ids(problem.prompt)
            if len(prompt_ids) > cfg.max_prompt_tokens:
                dropped += 1
                continue
            kept.append(EncodedProblem(problem.task_id, prompt_ids, lm.ids(problem.canonical_solution)[: cfg.max_solution_tokens]))
        return (kept[: cfg.train_limit] if cfg.train_limit else kept), dropped

    def _stage_done(self, name: str, seconds: float, **extra: Any) -> None:
        self._event({"type": "stage", "stage": name, "seconds": round(seconds, 1), **extra})

    def _features(self, lm: WhiteBoxLM, train: list[EncodedProblem], test: list[CodeProblem]) -> dict:
        path = self.path / "features.pt"
        if path.is_file():
            return load_torch(path, "DDPT file", keys=("train", "test"))
        start, rows = time.perf_counter(), []
        total = len(train) + len(test)
        for i, ids in enumerate([p.prompt_ids for p in train] + [lm.ids(p.prompt) for p in test], 1):
            rows.append(lm.pooled(ids))
            self.on_progress("features", i, total, "")
        features = {"train": torch.stack(rows[: len(train)]), "test": torch.stack(rows[len(train):]),
                    "train_ids": [p.task_id for p in train], "test_ids": [p.task_id for p in test]}
        save_torch(features, path)
        self._stage_done("features", time.perf_counter() - start)
        return features

    def _prompt_tuning(self, space: SoftPromptSpace, train: list[EncodedProblem]) -> torch.Tensor:
        path, cfg = self.path / "prompt_tuning.pt", self.cfg
        if path.is_file():
            return load_torch(path, "DDPT file", keys=("z",))["z"]
        start = time.perf_counter()
        z, losses = optimise_z(space, train, steps=cfg.prompt_tuning_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                               seed=derive_seed(cfg.seed, "prompt_tuning"),
                               on_step=lambda s, loss: self.on_progress("prompt tuning", s, cfg.prompt_tuning_steps,
                                                                        f"nll {loss:.3f}"))
        save_torch({"z": z, "losses": losses}, path)
        self._stage_done("prompt_tuning", time.perf_counter() - start, first_loss=losses[0], last_loss=losses[-1])
        return z

    def _directions(self, space: SoftPromptSpace, train: list[EncodedProblem], features: torch.Tensor,
                    prompt_tuning_z: torch.Tensor) -> dict:
        """Stage 1: directions_per_cluster z* for each cluster of the train problems' embeddings,
        each refined from the prompt-tuning z with its own seeded noise and minibatches."""
        path, cfg = self.path / "directions.pt", self.cfg
        if path.is_file():
            state = load_torch(path, "DDPT file", keys=("z", "cluster", "losses", "labels"))
        else:
            normalised = (features - features.mean(0)) / features.std(0, unbiased=False).clamp(min=1e-6)
            labels = kmeans(normalised, cfg.clusters, derive_seed(cfg.seed, "clusters"))
            state = {"z": [], "cluster": [], "losses": [], "labels": labels}
        labels = state["labels"]
        plan = [c for c in sorted(set(labels)) for _ in range(cfg.directions_per_cluster)]
        if len(state["z"]) == len(plan):
            return state
        start = time.perf_counter()
        total = len(plan) * cfg.direction_steps
        for j in range(len(state["z"]), len(plan)):
            cluster = plan[j]
            members = [p for p, label in zip(train, labels) if label == cluster]
            z, losses = optimise_z(space, members, steps=cfg.direction_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                   seed=derive_seed(cfg.seed, "direction", j), start=prompt_tuning_z,
                                   on_step=lambda s, loss, j=j: self.on_progress(
                                       "stage 1: directions", j * cfg.direction_steps + s, total,
                                       f"z* {j + 1}/{len(plan)} nll {loss:.3f}"))
            state["z"].append(z)
            state["cluster"].append(cluster)
            state["losses"].append(losses)
            save_torch(state, path)
        self._stage_done("directions", time.perf_counter() - start, count=len(plan),
                         last_losses=[round(ls[-1], 4) for ls in state["losses"]])
        return state

    def _denoiser(self, space: SoftPromptSpace, train: list[EncodedProblem], features: torch.Tensor,
                  directions: dict) -> DiffusionPrior:
        path, cfg = self.path / "denoiser.pt", self.cfg
        if path.is_file():
            return load_prior(path)
        start, log = time.perf_counter(), []
        settings = DenoiserSettings(cfg.timesteps, cfg.denoiser_hidden, cfg.denoiser_steps, cfg.code_steps,
                                    cfg.code_batch, cfg.code_weight, cfg.cond_dropout, cfg.denoiser_lr)

        def tick(step: int, total: int, logged: dict) -> None:
            if "code" in logged or step % 100 == 0 or step == total:
                log.append({"step": step, **{k: round(v, 4) for k, v in logged.items()}})
                status = "  ".join(f"{k} {v:.3f}" for k, v in logged.items())
                self.on_progress("stage 2: denoiser", step, total, status)

        prior = train_denoiser(space, torch.stack(directions["z"]), directions["cluster"], train, directions["labels"],
                               features, settings, derive_seed(cfg.seed, "denoiser"), on_step=tick)
        save_torch({**prior.state(), "log": log}, path)
        self._stage_done("denoiser", time.perf_counter() - start, last=log[-1] if log else None)
        return prior

    def _evaluate(self, space: SoftPromptSpace, test: list[CodeProblem], features: torch.Tensor,
                  z_pt: torch.Tensor, prior: DiffusionPrior | None) -> dict[str, dict]:
        cfg, path = self.cfg, self.path / "test.json"
        scores = read_json(path, "DDPT scores") if path.is_file() else {}
        settings = GenerationSettings(cfg.max_new_tokens, cfg.samples, cfg.temperature, cfg.seed,
                                      self.limits)
        (self.path / "generations").mkdir(exist_ok=True)
        for name in conditions_of(cfg.method):
            if name in scores:
                continue
            start = time.perf_counter()
            prefixes = condition_prefixes(name, space, test, prompt_tuning_z=z_pt, prior=prior, features=features,
                                          seed=cfg.seed, sampler=cfg.sampler, sample_steps=cfg.sample_steps)
            total, done = progress_units(test, settings), 0

            def advance(n: int, name: str = name) -> None:
                nonlocal done
                done += n
                self.on_progress(f"test: {name}", done, total, "")

            score = score_condition(space.lm, test, prefixes, settings, on_progress=advance)
            with (self.path / "generations" / f"{name}.jsonl").open("w", encoding="utf-8") as f:
                for row in score.rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            scores[name] = score.summary()
            write_json(scores, path)
            self._event({"type": "test", "condition": name, **scores[name],
                         "seconds": round(time.perf_counter() - start, 1)})
        return {name: scores[name] for name in conditions_of(cfg.method)}
