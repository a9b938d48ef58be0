"""The copy guard judges only what is copied from examples; the readability gate stops recitals."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlmpo.catalog import get_task
from dlmpo.optimizer import Optimizer, OptimizeSettings
from dlmpo.optimizer.guards import PromptGuard
from dlmpo.optimizer.readability import READABILITY_NLL, ReadabilityGate, changed_spans
from dlmpo.optimizer.strategies import HEADING
from dlmpo.report.render import write_report
from tests.support.proposers import ListProposer

ROOT = Path(__file__).resolve().parents[2]
SST2_SEED = "You are a sentiment classifier. Reply with exactly one word: positive or negative."
SST2 = ["negative", "positive"]
# the stage-1 guidance (must pass) and the SST-2 recitals (must fail) the gate is calibrated on
CALIBRATION = json.loads((ROOT / "benchmarks" / "readability_calibration.json").read_text())
GUIDANCE, RECITALS = CALIBRATION["guidance"], CALIBRATION["recitals"]


def appended(text, seed=SST2_SEED):
    return f"{seed}\n\n{HEADING}\n{text}"


def test_sst5_label_list_is_the_tasks_own_words_not_training_text(data_dir):
    task = get_task("sst5", data_dir)
    rows = task.examples("train")[:6]
    sources = [task.user_message(ex) for ex in rows]
    candidate = appended("Answer with one of: very negative, negative, neutral, positive or very positive.",
                         task.seed_prompt)
    guard = PromptGuard(max_chars=4000, copy_ngram=8)
    own = [task.seed_prompt, " ".join(task.labels), task.template]
    assert guard.reject_reason(candidate, task.seed_prompt, sources, own) is None
    copied = appended("Example: " + rows[0].inputs["sentence"], task.seed_prompt)
    assert "copies training text" in guard.reject_reason(copied, task.seed_prompt, sources, own)


def test_a_long_template_repeated_through_the_inputs_is_not_training_text(tmp_path):
    template = "Here is a customer support ticket from our enterprise help desk portal: {text}\nWhich team owns it?"
    rows = ["my invoice shows the wrong amount for march", "the export button crashes the desktop app"]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": r, "label": "billing"}) + "\n" for r in rows * 4))
    config = {"task": {"name": "tickets", "data": "t.jsonl", "input_fields": ["text"], "labels": ["billing", "bug"],
                       "seed_prompt": "Route the ticket.", "template": template}}
    (tmp_path / "t.json").write_text(json.dumps(config))
    task = get_task(str(tmp_path / "t.json"))
    sources = [task.user_message(ex) for ex in task.examples("train")]
    guard = PromptGuard(max_chars=4000, copy_ngram=8)
    candidate = "Route the ticket. Each input is a customer support ticket from our enterprise help desk portal."
    # without the task's own words, and with only one input, the template would count as copied
    assert "copies training text" in guard.reject_reason(candidate, "Route the ticket.", sources[:1])
    assert guard.reject_reason(candidate, "Route the ticket.", sources[:1], [task.template]) is None
    assert guard.reject_reason(candidate, "Route the ticket.", sources) is None  # shared by every input
    copied = "Route the ticket. For example: my invoice shows the wrong amount for march."
    assert "copies training text" in guard.reject_reason(copied, "Route the ticket.", sources, [task.template])


def test_naming_the_label_list_again_is_not_a_repeat(data_dir):
    task = get_task("sst5", data_dir)
    candidate = appended("Reply with exactly one of: very negative, negative, neutral, positive or very positive.",
                         task.seed_prompt)
    assert ReadabilityGate(list(task.labels), READABILITY_NLL).reject_reason(candidate, task.seed_prompt) is None


def test_changed_spans_cover_only_the_added_words():
    candidate = appended("Be brief.")
    spans = changed_spans(candidate, SST2_SEED)
    assert [candidate[s:e].strip() for s, e in spans] == ["Be brief."]  # the heading is the optimizer's


@pytest.mark.parametrize("text", GUIDANCE)
def test_stage1_guidance_passes_the_gate(text):
    assert ReadabilityGate(SST2, READABILITY_NLL).reject_reason(appended(text), SST2_SEED) is None


@pytest.mark.parametrize("text", RECITALS)
def test_recitals_fail_the_gate(text):
    assert ReadabilityGate(SST2, READABILITY_NLL).reject_reason(appended(text), SST2_SEED).startswith("unreadable")


@pytest.mark.parametrize("text,why", [
    ("Rep negative if the review is bad.", "cut off"),
    ("Answer positive, answer negative.", "contradicts itself"),
    ("If the review praises the film answer positive, otherwise answer negative.", None),
    ("The film is good good.", "repeated back to back"),
    ("The is negative: or negative: the reviewer says fails.", "article before a function word"),
    ("Do not repeat the question or add words. Do not repeat the question or explain.", "twice"),
])
def test_rules_without_perplexity(text, why):
    reason = ReadabilityGate(SST2, None).reject_reason(appended(text), SST2_SEED)
    assert (reason is None) if why is None else why in reason


def test_the_loop_rejects_unreadable_candidates_before_any_target_call(tmp_path, data_dir):
    settings = OptimizeSettings(task="sst2", target="embedded", dlm="tiny-random:dream", rounds=1, candidates=2,
                                train_size=6, val_size=8, test_size=8, batch_size=4, screen_batch=8, steps=8,
                                mask_tokens=8, seed=0, data_dir=str(data_dir))
    prompts = [appended(RECITALS[2]), appended(GUIDANCE[0])]
    result = asyncio.run(Optimizer(settings, tmp_path / "run", proposer=ListProposer(prompts)).run())
    bad, good = result.rounds[0].candidates
    assert bad.rejected.startswith("unreadable") and bad.screen_score is None
    assert good.rejected is None and good.screen_score is not None
    assert result.unreadable() == (1, 2)
    write_report(tmp_path / "run")
    assert "Readability gate: rejected 1 of 2 candidates (50%)" in (tmp_path / "run" / "report.md").read_text()

    off = settings.model_copy(update={"readability": False})  # what --no-readability sets
    result = asyncio.run(Optimizer(off, tmp_path / "off", proposer=ListProposer(prompts)).run())
    assert all(c.rejected is None and c.screen_score is not None for c in result.rounds[0].candidates)


def test_the_gate_can_be_switched_off_from_the_command_line():
    out = subprocess.run([sys.executable, "-m", "dlmpo.cli", "optimize", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "200"}).stdout
    assert "--no-readability" in out and "[default: 5.67]" in out
