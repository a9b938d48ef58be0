"""One budget for every chat model of a run, checked before each attempt: never exceeded by any
role, failed attempts counted, and room kept for a reserved evaluation."""

import asyncio

import pytest

from dlmpo.errors import BudgetExceeded
from dlmpo.lm import ChatRequest, RetryPolicy, open_target
from dlmpo.lm.budget import Budget, Spend
from tests.support.fake_openai_server import FakeOpenAIServer

FAST_RETRY = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.02)


def req(text: str) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], max_tokens=8)


def models(server, tmp_path, *names):
    cache = tmp_path / "calls.sqlite"  # one run cache, as a run directory has
    return [open_target(f"{server.base_url}#{name}", cache_path=cache, retry=FAST_RETRY) for name in names]


async def close(*ms):
    for m in ms:
        await m.aclose()


def test_one_budget_caps_every_role(tmp_path):
    with FakeOpenAIServer() as server:
        target, judge = models(server, tmp_path, "target-model", "judge-model")
        budget = Budget([target, judge], max_calls=3, max_cost=None, max_tokens=None)

        async def go():
            await target.chat(req("a"))
            await judge.chat(req("b"))
            await target.chat(req("a"))  # cached: free
            await judge.chat(req("c"))
            with pytest.raises(BudgetExceeded, match="judge-model: call budget"):
                await judge.chat(req("d"))
            with pytest.raises(BudgetExceeded):
                await target.chat(req("e"))
            await close(target, judge)

        asyncio.run(go())
        assert len(server.requests) == 3 and budget.spend().calls == 3


def test_concurrent_calls_never_overshoot(tmp_path):
    with FakeOpenAIServer() as server:
        (target,) = models(server, tmp_path, "target-model")
        Budget([target], max_calls=5, max_cost=None, max_tokens=None)

        async def go():
            outcomes = await asyncio.gather(*(target.chat(req(f"q{i}")) for i in range(12)), return_exceptions=True)
            await close(target)
            return outcomes

        outcomes = asyncio.run(go())
        assert sum(isinstance(o, BudgetExceeded) for o in outcomes) == 7
        assert len(server.requests) == 5


def test_failed_attempts_are_paid_calls(tmp_path):
    with FakeOpenAIServer() as server:
        server.faults = ["500", "malformed"]
        (target,) = models(server, tmp_path, "target-model")
        budget = Budget([target], max_calls=3, max_cost=None, max_tokens=None)

        async def go():
            answer = await target.chat(req("a"))  # two failed attempts, then the answer
            with pytest.raises(BudgetExceeded):
                await target.chat(req("b"))
            await close(target)
            return answer

        assert asyncio.run(go()).text == "A"
        assert len(server.requests) == 3 and budget.spend().calls == 3


def test_the_reserve_is_kept_until_spent(tmp_path):
    with FakeOpenAIServer() as server:
        (target,) = models(server, tmp_path, "target-model")
        budget = Budget([target], max_calls=3, max_cost=None, max_tokens=None)
        budget.reserve = Spend(1, 0, 0, 0.0)

        async def go():
            await target.chat(req("a"))
            await target.chat(req("b"))
            with pytest.raises(BudgetExceeded, match="1 reserved"):
                await target.chat(req("c"))
            budget.spend_reserve()
            await target.chat(req("c"))
            await close(target)

        asyncio.run(go())
        assert len(server.requests) == 3


def test_one_token_guess_counts_tool_schemas():
    plain = ChatRequest(messages=[{"role": "system", "content": "x" * 300}, {"role": "user", "content": None}])
    tools = [{"type": "function", "function": {"name": "book", "parameters": {"type": "object", "properties": {}}}}]
    with_tools = ChatRequest(messages=plain.messages, tools=tools)
    assert plain.prompt_tokens_bound() == 300 // 3 + 8
    assert with_tools.prompt_tokens_bound() > plain.prompt_tokens_bound()


def test_a_call_cut_off_mid_flight_is_counted_as_paid(tmp_path):
    """A provider bills a request it received even when the caller died before the answer (kill -9):
    the attempt is written down before it is sent, and a later budget counts it."""
    from dlmpo.lm.cache import CallCache

    with FakeOpenAIServer(slow_seconds=1.0) as server:
        server.faults = ["slow"]
        (target,) = models(server, tmp_path, "target-model")

        async def cut_off():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(target.chat(req("a")), 0.3)
            await close(target)

        asyncio.run(cut_off())
        assert len(server.requests) == 1
        (again,) = models(server, tmp_path, "target-model")
        assert Budget([again], max_calls=5, max_cost=None, max_tokens=None).spend().calls == 1

        async def answered():  # an answered attempt is closed: counted once, as the answer
            await again.chat(req("b"))
            await close(again)

        asyncio.run(answered())
    assert CallCache(tmp_path / "calls.sqlite").totals(again.backend.model_id)[0] == 2


def test_identical_requests_paid_at_once_are_each_counted_by_a_later_budget(tmp_path):
    """Two identical requests in flight at once both reach the provider: the cache keeps the first
    answer, and a later process's budget (a resumed run's) counts both calls and their tokens."""
    from dlmpo.lm.cache import CallCache, paid_calls

    with FakeOpenAIServer() as server:
        (target,) = models(server, tmp_path, "target-model")
        budget = Budget([target], max_calls=None, max_cost=None, max_tokens=None)

        async def go():
            answers = await asyncio.gather(target.chat(req("same")), target.chat(req("same")))
            await close(target)
            return answers

        assert [a.text for a in asyncio.run(go())] == ["SAME", "SAME"]
        assert len(server.requests) == 2 and budget.spend().calls == 2
        (again,) = models(server, tmp_path, "target-model")
        assert Budget([again], max_calls=None, max_cost=None, max_tokens=None).spend() == budget.spend()
        assert again.cached(req("same")).text == "SAME"
    assert CallCache(tmp_path / "calls.sqlite").totals(again.backend.model_id) == (2, 2, 2)
    assert paid_calls(tmp_path / "calls.sqlite") == 2
