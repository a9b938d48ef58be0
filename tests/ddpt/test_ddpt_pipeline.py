"""DDPT on a tiny random Llama: determinism under a seed, resume, sampling, soft prompts, refusals."""

import json

import pytest
import torch

from dlmpo.ddpt import DDPTConfig, ddpt_train
from dlmpo.ddpt.run import DDPTRun
from dlmpo.ddpt.trained import TrainedSoftPrompt, parse_soft_prompt
from dlmpo.ddpt.whitebox import WhiteBoxLM
from dlmpo.errors import UserError

CONDITIONS = ["none", "manual", "prompt_tuning", "ddpt", "ddpt_conditioned"]


def completions(run_dir):
    return {f.stem: [json.loads(line)["completions"][0]["text"] for line in f.read_text().splitlines()]
            for f in sorted((run_dir / "generations").glob("*.jsonl"))}


def test_same_seed_same_z_same_outputs(tmp_path, tiny_settings):
    a = ddpt_train(out=tmp_path / "a", **tiny_settings)
    b = ddpt_train(out=tmp_path / "b", **tiny_settings)
    assert list(a.test) == CONDITIONS and all(set(s) == {"nll", "pass@1"} for s in a.test.values())
    assert a.test == b.test
    for name in ("prompt_tuning.pt", "directions.pt", "denoiser.pt"):
        sa, sb = torch.load(tmp_path / "a" / name), torch.load(tmp_path / "b" / name)
        za = sa.get("z", None) if "denoiser" not in name else sa["weights"]
        zb = sb.get("z", None) if "denoiser" not in name else sb["weights"]
        if isinstance(za, dict):
            assert all(torch.equal(za[k], zb[k]) for k in za)
        elif isinstance(za, list):
            assert all(torch.equal(x, y) for x, y in zip(za, zb))
        else:
            assert torch.equal(za, zb)
    assert completions(tmp_path / "a") == completions(tmp_path / "b")
    trained_a, trained_b = TrainedSoftPrompt(tmp_path / "a"), TrainedSoftPrompt(tmp_path / "b")
    assert torch.equal(trained_a.sample(7), trained_b.sample(7))
    assert not torch.equal(trained_a.sample(7), trained_a.sample(8))
    assert torch.equal(trained_a.sample(7, method="ddpm"), trained_b.sample(7, method="ddpm"))


def test_a_different_seed_gives_other_directions(tmp_path, tiny_settings):
    ddpt_train(out=tmp_path / "a", **tiny_settings)
    ddpt_train(out=tmp_path / "b", **{**tiny_settings, "seed": 1})
    za, zb = torch.load(tmp_path / "a" / "prompt_tuning.pt")["z"], torch.load(tmp_path / "b" / "prompt_tuning.pt")["z"]
    assert not torch.equal(za, zb)


def test_resume_after_stage_one_equals_an_uninterrupted_run(tmp_path, tiny_settings):
    cfg = DDPTConfig(**tiny_settings)
    whole = DDPTRun(cfg, tmp_path / "whole").run()

    class Stop(Exception):
        pass

    def stop_after_stage_one(event):
        if event.get("stage") == "directions":
            raise Stop

    with pytest.raises(Stop):
        DDPTRun(cfg, tmp_path / "cut", on_event=stop_after_stage_one).run()
    directions = tmp_path / "cut" / "directions.pt"
    stamp = directions.stat().st_mtime_ns
    assert not (tmp_path / "cut" / "denoiser.pt").exists()
    seen = []
    resumed = DDPTRun(cfg, tmp_path / "cut", on_event=seen.append).run()
    assert seen[0] == {"type": "resume", "done": ["features", "prompt_tuning", "directions"], "tested": []}
    assert directions.stat().st_mtime_ns == stamp
    stages = [json.loads(line).get("stage") for line in (tmp_path / "cut" / "events.jsonl").read_text().splitlines()]
    assert stages.count("directions") == 1 and stages.count("prompt_tuning") == 1
    assert resumed.test == whole.test
    wa, wb = torch.load(tmp_path / "whole" / "denoiser.pt")["weights"], torch.load(directions.parent / "denoiser.pt")["weights"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert completions(tmp_path / "whole") == completions(tmp_path / "cut")


def test_other_settings_do_not_resume(tmp_path, tiny_settings):
    ddpt_train(out=tmp_path / "r", **{**tiny_settings, "method": "prompt-tuning"})
    with pytest.raises(UserError, match="other settings"):
        ddpt_train(out=tmp_path / "r", **{**tiny_settings, "method": "prompt-tuning", "z_dim": 8})


def test_prompt_tuning_run_is_a_soft_prompt(tmp_path, tiny_settings, problems_file):
    from dlmpo.code.problems import load_code_problems

    result = ddpt_train(out=tmp_path / "pt", **{**tiny_settings, "method": "prompt-tuning"})
    assert list(result.test) == ["none", "manual", "prompt_tuning"]
    trained = TrainedSoftPrompt(tmp_path / "pt")
    assert trained.variants == ["prompt_tuning"] and trained.resolve(None) == "prompt_tuning"
    with pytest.raises(UserError, match="no 'ddpt' soft prompt"):
        trained.resolve("ddpt")
    test = load_code_problems(str(problems_file)).test
    score = trained.score("prompt_tuning", test, seed=0)
    assert score.summary()["nll"] == result.test["prompt_tuning"]["nll"]


def test_manual_prompt_is_z_zero_and_words_read_back(tiny_target):
    from dlmpo.ddpt.interpret import interpret
    from dlmpo.ddpt.soft_prompt import SoftPromptSpace

    lm = WhiteBoxLM(tiny_target)
    space = SoftPromptSpace.create(lm, "# Be exact.\n", "# Complete it.\n", 8, seed=0)
    manual = lm.embed(lm.ids("# Be exact.\n# Complete it.\n"))
    assert torch.allclose(space.prefix(None), manual) and torch.allclose(space.prefix(torch.zeros(8)), manual)
    reading = interpret(space, torch.zeros(8), k=3)
    assert [r["token"] for r in reading] == [lm.tokenizer.decode([i]) for i in space.context_ids]
    assert all(r["nearest"][0] == r["token"] and r["shift"] == 0 for r in reading)


def test_batched_generation_equals_one_at_a_time(tiny_target, problems_file):
    from dlmpo.code.problems import read_jsonl_problems

    lm = WhiteBoxLM(tiny_target)
    problems = read_jsonl_problems(problems_file)[:3]
    prefix = lm.embed(lm.ids("# Write Python.\n"))
    prefixes, prompts = [prefix, None, prefix], [lm.ids(p.prompt) for p in problems]
    together = lm.generate(prefixes, prompts, max_new_tokens=5, stops=())
    alone = [lm.generate([pre], [ids], max_new_tokens=5, stops=())[0] for pre, ids in zip(prefixes, prompts)]
    assert together == alone


def test_api_targets_are_refused_in_one_sentence(tmp_path, tiny_settings):
    for target in ("openai:gpt-4o-mini", "http://127.0.0.1:8000/v1#m"):
        with pytest.raises(UserError, match="DDPT needs the model's weights") as info:
            DDPTRun(DDPTConfig(**{**tiny_settings, "target": target}), tmp_path / "x")
        assert str(info.value).count(". ") == 0 and "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()


def test_soft_prompt_spec_and_missing_run(tmp_path):
    assert parse_soft_prompt("runs/a#ddpt") == (tmp_path.__class__("runs/a"), "ddpt")
    with pytest.raises(UserError, match="Unknown soft-prompt variant"):
        parse_soft_prompt("runs/a#best")
    with pytest.raises(UserError, match="holds no DDPT run"):
        TrainedSoftPrompt(tmp_path)
