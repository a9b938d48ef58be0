"""A run's call budget holds for every role together, counted by the server: target, judge and
writer all call one fake OpenAI-compatible server, and the run still ends with a result."""

import asyncio
import json

import pytest

from dlmpo.optimizer import Optimizer, OptimizeSettings
from tests.support.fake_openai_server import FakeOpenAIServer


def _answer(body):
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    if "[BLANK" in body["messages"][-1]["content"]:
        return "Answer with one word.\nBe brief."  # the AR writer fills blanks line by line
    if "judge" in system.lower() or "feedback" in system.lower():
        return '{"feedback": "Look at the whole review."}'
    return "positive"


@pytest.mark.parametrize("max_calls", [35, 45, 55])
def test_no_role_spends_past_the_budget(tmp_path, data_dir, max_calls):
    with FakeOpenAIServer(answer=_answer) as server:
        url = server.base_url
        settings = OptimizeSettings(task="sst2", target=f"{url}#target", feedback="judge", judge=f"{url}#judge",
                                    proposer="ar", optimizer_model=f"{url}#writer", rounds=6, candidates=2,
                                    train_size=8, val_size=8, test_size=8, batch_size=4, screen_batch=4,
                                    mask_tokens=8, data_dir=str(data_dir), max_calls=max_calls, significance=1.0)
        result = asyncio.run(Optimizer(settings, tmp_path / "run").run())
    roles = {r["model"] for r in server.requests}
    assert roles == {"target", "judge", "writer"}
    assert len(server.requests) <= max_calls
    assert result.calls == len(server.requests)  # what the run counts is what the server saw
    assert result.stop_reason.startswith("budget")


def _tau_answer(body):
    """Every simulated customer opens alike, so episodes of different scenarios send the agent
    identical requests at once: each is paid, though the cache keeps one answer."""
    if body["model"] == "user":
        return "###STOP###" if len(body["messages"]) > 4 else "Please go ahead with what I asked."
    if body["model"] == "writer":
        return "Answer with one word.\nBe brief."
    return "I can help with that."


def test_a_resumed_tau_run_counts_identical_calls_paid_at_once(tmp_path, data_dir):
    """A resumed process (after a kill, or a rerun) reads the run's spend from its call cache: the
    identical requests sent at once by episodes running side by side count once each, as the
    server saw them (the cache once kept one row for them, and a resumed run counted fewer)."""
    with FakeOpenAIServer(answer=_tau_answer) as server:
        url = server.base_url
        settings = OptimizeSettings(task="tau-airline", target=f"{url}#target", user_model=f"{url}#user",
                                    proposer="ar", optimizer_model=f"{url}#writer", rounds=1, candidates=1,
                                    train_size=2, val_size=2, test_size=2, batch_size=2, screen_batch=2,
                                    mask_tokens=8, significance=1.0, readability_nll=None, data_dir=str(data_dir))
        first = asyncio.run(Optimizer(settings, tmp_path / "run").run())
        paid = len(server.requests)
        resumed = asyncio.run(Optimizer(settings, tmp_path / "run").run())
    sent = [json.dumps(r, sort_keys=True) for r in server.requests]
    assert len(set(sent)) < len(sent)  # some identical requests were paid more than once
    assert len(server.requests) == paid  # the resumed run paid nothing more
    assert first.calls == resumed.calls == paid
