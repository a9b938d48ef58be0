"""A run's call budget holds for every role together, counted by the server: target, judge and
writer all call one fake OpenAI-compatible server, and the run still ends with a result."""

import asyncio

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
