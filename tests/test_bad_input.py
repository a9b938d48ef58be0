"""No bad input loses work: every malformed input is ONE `error: ...` line on stderr and exit code 2
(never a traceback, never a hang), found before any work starts; the Python API raises the same
UserError. benchmarks/bad_input.py runs a longer list of such inputs."""

import json
import subprocess
import sys
import warnings

import pytest
import torch

from dlmpo.errors import DlmpoWarning, UserError

NOT_UTF8 = b"caf\xe9 au lait\t1\n"


def dlmpo(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "dlmpo", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def assert_one_sentence(proc, *fragments):
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("note:", "warning:"))]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


INFILL = ["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--steps", "2"]


# ------------------------------------------------------------------ files that are not UTF-8

def test_not_utf8_files_name_the_file_and_line(tmp_path, data_dir):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "dev.tsv").write_bytes(b"fine\t1\n" + NOT_UTF8)
    (tmp_path / "sst2" / "train.tsv").write_bytes(b"fine\t1\n")
    assert_one_sentence(dlmpo("eval", "--task", "sst2", "--data-dir", tmp_path, "--limit", "1"),
                        "dev.tsv, line 2: not UTF-8")
    ctx = tmp_path / "ctx.jsonl"
    ctx.write_bytes(b'{"user": "a", "output": "b"}\n{"user": "caf\xe9"}\n')
    assert_one_sentence(dlmpo(*INFILL, "--context", ctx), "ctx.jsonl, line 2: not UTF-8")
    cfg = tmp_path / "s.toml"
    cfg.write_bytes(b'seed_prompt = "caf\xe9"\n')
    assert_one_sentence(dlmpo("optimize", "--config", cfg, "--dry-run"), "s.toml, line 1: not UTF-8")
    traj = tmp_path / "t.json"
    traj.write_bytes(b'[{"traj": [], "n": "caf\xe9"}]')
    assert_one_sentence(dlmpo("tau", "replay", "--trajectories", traj, "--domain", "airline", "--data-dir", data_dir),
                        "t.json, line 1: not UTF-8")
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'{"prompt": "caf\xe9"}\n')
    assert_one_sentence(dlmpo("train", "--dlm", "tiny-random:dream", "--data", rows, "--out", tmp_path / "run"),
                        "rows.jsonl, line 1: not UTF-8")
    assert not (tmp_path / "run").exists()  # the data is checked before anything is written


def test_read_text_reports_line_and_column(tmp_path):
    from dlmpo.files import read_text

    path = tmp_path / "x.txt"
    path.write_bytes(b"ok\nab\xffc\n")
    with pytest.raises(UserError, match=r"x.txt, line 2: not UTF-8 text \(byte 0xff at column 3\)"):
        read_text(path)
    with pytest.raises(UserError, match="is a folder"):
        read_text(tmp_path)


# ------------------------------------------------------------------ limits: one meaning of 0, no hangs

@pytest.mark.parametrize("flag, value", [("--rpm", "-5"), ("--tpm", "-5"), ("--rpm", "0"), ("--tpm", "nan")])
def test_eval_rate_limits_fail_at_once(flag, value, data_dir):
    assert_one_sentence(dlmpo("eval", "--task", "sst2", "--data-dir", data_dir, flag, value, "--limit", "1", timeout=60),
                        f"{flag} (", "leave it out for no limit")


def test_optimize_rejects_a_zero_limit_as_eval_does(data_dir):
    proc = dlmpo("optimize", "--task", "sst2", "--data-dir", data_dir, "--set", "rpm=0", "--dry-run")
    assert_one_sentence(proc, "'rpm'")


def test_the_library_rejects_limits_that_allow_nothing():
    from dlmpo.lm.ratelimit import RateLimiter, check_limits

    for bad in (-5, 0, float("nan"), float("inf")):
        with pytest.raises(UserError):
            RateLimiter(rpm=bad)
        with pytest.raises(UserError):
            RateLimiter(tpm=bad)
    with pytest.raises(UserError):
        check_limits(concurrency=0)
    RateLimiter(rpm=None, tpm=None)


# ------------------------------------------------------------------ model specifiers

@pytest.mark.parametrize("spec, message", [
    ("http://#m", "names no server host"),
    ("http://127.0.0.1:notaport/v1#m", "bad server address"),
    ("http://127.0.0.1:99999/v1#m", "bad server address"),
    ("http://127.0.0.1:8000/v1#", "lacks the model name"),
])
def test_bad_server_specifiers_fail_before_any_work(spec, message, data_dir):
    from dlmpo.lm.spec import parse_target_spec

    with pytest.raises(UserError, match=message):
        parse_target_spec(spec)
    assert_one_sentence(dlmpo("eval", "--task", "sst2", "--data-dir", data_dir, "--target", spec, "--limit", "1"),
                        message)


def test_good_server_specifiers_still_parse():
    from dlmpo.lm.spec import parse_target_spec

    for spec in ("http://127.0.0.1:8000/v1#m", "https://api.example.com/v1#gpt", "http://[::1]:8000/v1#m",
                 "http://localhost/v1#Qwen2.5-7B-Instruct"):
        assert parse_target_spec(spec) == ("http", spec)


# ------------------------------------------------------------------ --out

def test_eval_out_that_is_a_file_fails_before_the_evaluation(tmp_path, data_dir):
    existing = tmp_path / "results"
    existing.write_text("keep me\n")
    proc = dlmpo("eval", "--task", "sst2", "--data-dir", data_dir, "--out", existing, "--limit", "1")
    assert_one_sentence(proc, "is a file")
    assert existing.read_text() == "keep me\n"


def test_out_helpers(tmp_path):
    from dlmpo.files import atomic_write, check_out_dir, check_out_file

    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(UserError, match="cannot be created"):
        check_out_dir(tmp_path / "f" / "sub")
    with pytest.raises(UserError, match="is a folder"):
        check_out_file(tmp_path)
    assert check_out_dir(tmp_path / "new" / "dir").is_dir()
    atomic_write(tmp_path / "s.json", "{}")
    assert (tmp_path / "s.json").read_text() == "{}" and not list(tmp_path.glob("*.tmp"))


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_staging(tmp_path):
    from dlmpo.files import atomic_path, atomic_write, save_torch

    atomic_write(tmp_path / "w.bin", b"\x00old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "w.bin") as staging:
        staging.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "folder") as staging:
        (staging / "sub").mkdir(parents=True)
        raise RuntimeError("killed mid-write")
    assert (tmp_path / "w.bin").read_bytes() == b"\x00old" and not (tmp_path / "folder").exists()
    save_torch({"step": 3}, tmp_path / "c.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "w.bin"]


# ------------------------------------------------------------------ a torn events.jsonl

def test_a_cut_last_event_is_kept_apart_and_the_next_event_is_not_lost(tmp_path):
    from dlmpo.runs.rundir import RunDir

    run = RunDir(tmp_path)
    run.append({"type": "first"})
    with run.events_file.open("ab") as f:
        f.write(b'{"type": "cut", "val')  # a kill mid-write
    with pytest.warns(DlmpoWarning, match="ended in a cut line"):
        run.append({"type": "after"})
    assert [e["type"] for e in run.events()] == ["first", "after"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean log is appended to without a word
        run.append({"type": "later"})
    assert [e["type"] for e in run.events()] == ["first", "after", "later"]
    assert run.events_file.read_text().count("\n") == 4


def test_the_cli_prints_the_warning_as_one_line(tmp_path):
    code = ("import warnings, sys; from dlmpo.printing import show_warning; warnings.showwarning = show_warning; "
            "from dlmpo.errors import DlmpoWarning; warnings.warn('events.jsonl ended in a cut line', DlmpoWarning)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip() == "warning: events.jsonl ended in a cut line"


# ------------------------------------------------------------------ run directories

def _sst2_opt(data_dir, out):
    return ["optimize", "--task", "sst2", "--data-dir", data_dir, "--dlm", "tiny-random:dream", "--rounds", "1",
            "--train-size", "2", "--val-size", "2", "--test-size", "2", "--out", out]


@pytest.mark.parametrize("config, message", [
    (b'{"identity": {"task": "ss', "not valid JSON"),
    (b"[1, 2]", "must hold an object"),
    (b'{"identity": "caf\xe9"}', "not UTF-8"),
    (b'{"identity": 1, "settings": 2}', "not a run config"),
])
def test_a_damaged_run_directory_is_one_sentence(tmp_path, data_dir, config, message):
    (tmp_path / "config.json").write_bytes(config)
    (tmp_path / "events.jsonl").write_text('{"type": "run_start"}\n')
    assert_one_sentence(dlmpo(*_sst2_opt(data_dir, tmp_path)), message)
    assert (tmp_path / "events.jsonl").read_text() == '{"type": "run_start"}\n'  # nothing lost


def _ddpt_run(path, config=None, space=None):
    from dlmpo.ddpt.config import DDPTConfig

    path.mkdir()
    cfg = DDPTConfig().to_json()
    good = json.dumps({"identity": cfg, "settings": cfg})
    (path / "config.json").write_text(good if config is None else config(good))
    if space is None:
        torch.save({"projection": torch.zeros(DDPTConfig().z_dim, 576)}, path / "space.pt")
    else:
        (path / "space.pt").write_bytes(space)
    return path


@pytest.mark.parametrize("config, space, message", [
    (lambda good: good[: len(good) // 2], None, "not valid JSON"),
    (lambda good: json.dumps({"identity": {}, "settings": {"z_dim": "big"}}), None, "'z_dim' is 'big'"),
    (lambda good: json.dumps({"identity": {}, "settings": [1]}), None, "not a run config"),
    (None, b"\x80\x02not a pickle", "space.pt cannot be read"),
])
def test_a_damaged_ddpt_run_is_one_sentence(tmp_path, config, space, message):
    run = _ddpt_run(tmp_path / "ddpt", config, space)
    assert_one_sentence(dlmpo("ddpt", "sample", run), message)


def test_a_ddpt_space_of_another_shape_is_one_sentence(tmp_path):
    from dlmpo.ddpt.config import DDPTConfig
    from dlmpo.ddpt.run import load_space

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"projection": torch.zeros(3, 4)}, run / "space.pt")
    with pytest.raises(UserError, match="projection has shape"):
        load_space(type("LM", (), {"d_model": 576})(), DDPTConfig(), run)
    torch.save({"other": 1}, run / "space.pt")
    with pytest.raises(UserError, match="lacks projection"):
        load_space(type("LM", (), {"d_model": 576})(), DDPTConfig(), run)


# ------------------------------------------------------------------ adapters

def _adapter(path, cfg, weights=None):
    from safetensors.torch import save_file

    path.mkdir()
    (path / "train_config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    save_file(weights or {"unused": torch.zeros(1)}, str(path / "adapter.safetensors"))
    return path


@pytest.mark.parametrize("cfg, message", [
    ([1, 2], "must hold an object"),
    ({"dlm": "tiny-random:dream", "lora_rank": -4}, "'lora_rank' must be a positive integer"),
    ({"dlm": "tiny-random:dream", "lora_rank": "8"}, "'lora_rank' must be a positive integer"),
    ({"dlm": "tiny-random:dream", "attention": "sideways"}, "Unknown attention"),
    ('{"lora": tr', "not valid JSON"),
])
def test_a_malformed_adapter_fails_before_the_model_loads(tmp_path, cfg, message):
    from dlmpo.dlm.adapter import read_adapter

    folder = _adapter(tmp_path / "a", cfg)
    with pytest.raises(UserError, match=message):
        read_adapter(folder)
    assert_one_sentence(dlmpo(*INFILL, "--adapter", folder), message)


def test_adapter_weights_of_another_shape_are_one_sentence(tmp_path):
    from dlmpo.dlm import load_dlm

    name = "model.layers.0.self_attn.q_proj.lora_A.default.weight"
    folder = _adapter(tmp_path / "a", {"dlm": "tiny-random:dream", "lora_rank": 4}, {name: torch.zeros(4, 3)})
    with pytest.raises(UserError, match="does not fit"):
        load_dlm("tiny-random:dream", "cpu", adapter=folder)
    with pytest.raises(UserError, match="is not a folder"):
        load_dlm("tiny-random:dream", "cpu", adapter=folder / "train_config.json")


# ------------------------------------------------------------------ devices

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_missing_cuda_device_is_one_sentence(data_dir):
    assert_one_sentence(dlmpo(*INFILL, "--device", "cuda:7"), "cuda:7")
    assert_one_sentence(dlmpo("optimize", "--task", "sst2", "--data-dir", data_dir, "--device", "cuda:7", "--dry-run"),
                        "cuda:7")


def test_unknown_devices():
    from dlmpo.devices import check_device

    assert check_device(None) is None and check_device("cpu") == "cpu"
    for bad in ("gpu", "", "xla", "cuda:-1"):
        with pytest.raises(UserError):
            check_device(bad)
    if torch.cuda.is_available():
        with pytest.raises(UserError, match="does not exist"):
            check_device(f"cuda:{torch.cuda.device_count()}")


# ------------------------------------------------------------------ one meaning of an empty prompt

def test_an_empty_prompt_is_no_system_prompt_in_every_command(tmp_path, data_dir):
    from dlmpo.cli import read_prompt
    from dlmpo.optimizer.session import RunSession
    from dlmpo.optimizer.settings import load_settings

    (tmp_path / "empty.txt").write_text("\n")
    assert read_prompt("", "default") == "" and read_prompt(str(tmp_path / "empty.txt"), "default") == ""
    assert read_prompt(None, "default") == "default"
    empty = load_settings(None, {"task": "sst2", "data_dir": str(data_dir), "seed_prompt": ""})
    assert RunSession(empty, tmp_path / "run").seed_prompt == ""
    default = load_settings(None, {"task": "sst2", "data_dir": str(data_dir)})
    assert RunSession(default, tmp_path / "run").seed_prompt.startswith("You are a sentiment classifier")


# ------------------------------------------------------------------ more malformed input, across commands

@pytest.mark.parametrize("args, fragment", [
    (["eval", "--limit", "0", "--task", "sst2"], "--limit"),
    (["eval", "--task", "sst2", "--rpm", "abc"], "--rpm"),
    (["eval", "--bogus"], "No such option"),
    (["nonsense"], "No such command"),
    (["optimize", "--set", "rounds", "--dry-run"], "key=value"),
    (["optimize", "--set", "rounds=many", "--dry-run"], "'rounds'"),
    (["optimize", "--max-cost", "nan", "--dry-run"], "'max_cost'"),
    (["train", "--dlm", "tiny-random:dream", "--data", "x.jsonl", "--out", "o", "--lr", "-1"], "lr must be"),
    (["ddpt", "train", "--lr", "nan"], "lr must be a finite number"),
    (["ddpt", "train", "--device", "cuda:7" if not torch.cuda.is_available() else "quantum"], "evice"),
    (["infill", "--dlm", "tiny-random:dream", "--text", "x [MASK:2]", "--device", "gpu"], "Unknown device 'gpu'"),
])
def test_usage_and_value_errors_are_one_sentence(tmp_path, args, fragment):
    assert_one_sentence(dlmpo(*args, cwd=tmp_path), fragment)


def test_train_out_naming_a_file_is_one_sentence(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"prompt": "Route the ticket."}\n')
    (tmp_path / "taken").write_text("a finished result")
    result = dlmpo("train", "--dlm", "tiny-random:dream", "--data", "rows.jsonl", "--out", "taken", cwd=tmp_path)
    assert_one_sentence(result, "is a file")
    assert (tmp_path / "taken").read_text() == "a finished result"


def test_files_of_the_wrong_kind(tmp_path, data_dir):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "opt.toml").write_text('optimize = "fast"\n')
    (tmp_path / "prices.json").write_text('{"gpt-4o-mini": [-1, 2]}')
    (tmp_path / "traj.json").write_text('[{"traj": "x", "task_id": "seven"}]')
    sst2 = ["--task", "sst2", "--data-dir", data_dir]
    assert_one_sentence(dlmpo("optimize", *sst2, "--config", tmp_path / "list.json", "--dry-run"), "must hold")
    assert_one_sentence(dlmpo("optimize", *sst2, "--config", tmp_path / "opt.toml", "--dry-run"), "[optimize]")
    assert_one_sentence(dlmpo("optimize", *sst2, "--config", tmp_path, "--dry-run"), "is a folder")
    assert_one_sentence(dlmpo("eval", *sst2, "--prices", tmp_path / "prices.json", "--limit", "1"), ">= 0")
    assert_one_sentence(dlmpo("eval", *sst2, "--prompt", tmp_path, "--limit", "1"), "is a folder")
    assert_one_sentence(dlmpo("tau", "replay", "--trajectories", tmp_path / "traj.json", "--domain", "airline",
                              "--data-dir", data_dir), "episode 0 is malformed")
