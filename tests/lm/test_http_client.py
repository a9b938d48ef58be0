"""The managed client against a real HTTP server on 127.0.0.1 that injects faults."""

import asyncio
import time

import pytest

from dlmpo.errors import FatalTargetError
from dlmpo.lm import ChatRequest, RetryPolicy, open_target
from dlmpo.lm.pricing import PriceTable
from tests.support.fake_openai_server import FakeOpenAIServer

FAST_RETRY = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05)


def req(text="hello there", **kw):
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


def target(server, tmp_path, **kw):
    kw.setdefault("retry", FAST_RETRY)
    return open_target(f"{server.base_url}#gpt-4o-mini", cache_path=tmp_path / "c.sqlite", **kw)


def run(coro):
    return asyncio.run(coro)


def test_plain_call_usage_and_cost(tmp_path):
    with FakeOpenAIServer() as server:
        model = target(server, tmp_path)
        resp = run(model.chat(req("one two three")))
        assert resp.text == "ONE TWO THREE" and resp.error is None
        acc = model.accounting
        assert (acc.calls, acc.usage.prompt_tokens, acc.usage.completion_tokens) == (1, 3, 3)
        assert acc.cost_usd == pytest.approx((3 * 0.15 + 3 * 0.60) / 1e6)  # gpt-4o-mini list price
        assert server.requests[0]["model"] == "gpt-4o-mini"


def test_price_override(tmp_path):
    with FakeOpenAIServer() as server:
        model = target(server, tmp_path, prices=PriceTable({"gpt-4o-mini": (1000.0, 0.0)}))
        run(model.chat(req("a b")))
        assert model.accounting.cost_usd == pytest.approx(2 * 1000 / 1e6)


@pytest.mark.parametrize("fault", ["429", "500", "malformed", "slow"])
def test_transient_faults_are_retried(tmp_path, fault):
    with FakeOpenAIServer(slow_seconds=1.5) as server:
        model = target(server, tmp_path)
        model.backend.timeout = 0.5
        server.faults = [fault, fault]
        resp = run(model.chat(req("retry me")))
        assert resp.text == "RETRY ME" and resp.error is None
        assert model.accounting.retries == 2
        assert len(server.requests) == 3


def test_backoff_grows_and_honours_retry_after(tmp_path):
    policy = RetryPolicy(max_retries=3, base_delay=0.1, max_delay=10)
    delays = [policy.delay(a) for a in range(3)]
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.2 and 0.2 <= delays[2] <= 0.4
    assert policy.delay(0, retry_after=2.0) == 2.0
    with FakeOpenAIServer() as server:
        model = target(server, tmp_path, retry=RetryPolicy(max_retries=2, base_delay=0.2, max_delay=1))
        server.faults = ["500", "500"]
        run(model.chat(req("x")))
        gaps = [b - a for a, b in zip(server.times, server.times[1:])]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # 0.1-0.2 then 0.2-0.4


def test_exhausted_retries_become_a_recorded_failure(tmp_path):
    with FakeOpenAIServer() as server:
        model = target(server, tmp_path)
        server.faults = ["500"] * 10
        resp = run(model.chat(req("doomed")))
        assert resp.error and "500" in resp.error and resp.finish_reason == "error"
        assert model.accounting.failures == 1
        # the failure is not cached: a later call can succeed
        server.faults = []
        assert run(model.chat(req("doomed"))).text == "DOOMED"


def test_bad_key_is_fatal_with_one_sentence(tmp_path):
    with FakeOpenAIServer() as server:
        model = target(server, tmp_path)
        server.faults = ["401"]
        with pytest.raises(FatalTargetError, match="refused the API key"):
            run(model.chat(req()))


def test_unreachable_server_is_fatal(tmp_path):
    model = open_target("http://127.0.0.1:9/v1#m", cache_path=tmp_path / "c.sqlite", retry=FAST_RETRY)
    with pytest.raises(FatalTargetError, match="unreachable"):
        run(model.chat(req()))


def test_cache_hits_across_clients_and_sample_index(tmp_path):
    with FakeOpenAIServer() as server:
        first = target(server, tmp_path)
        run(first.chat(req("cache me")))
        second = target(server, tmp_path)  # a resumed run: new client, same cache file
        again = run(second.chat(req("cache me")))
        assert again.cached and again.text == "CACHE ME"
        assert (second.accounting.calls, second.accounting.cache_hits) == (0, 1)
        run(second.chat(req("cache me", sample_index=1)))  # a distinct sample is a new call
        assert second.accounting.calls == 1
        assert len(server.requests) == 2


def test_concurrency_bound(tmp_path):
    import threading

    active, peak = 0, 0
    lock = threading.Lock()

    def answer(body):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return "ok"

    with FakeOpenAIServer(answer=answer) as server:
        model = target(server, tmp_path, concurrency=3)

        async def many():
            return await asyncio.gather(*(model.chat(req(f"q{i}")) for i in range(12)))

        assert all(r.text == "ok" for r in run(many()))
        assert peak <= 3


def test_rpm_limit_spaces_requests(tmp_path):
    with FakeOpenAIServer() as server:
        model = target(server, tmp_path, rpm=600)  # 10/s, bucket starts full at 600

        model.limiter.requests._level = 0  # start empty to observe the refill rate

        async def many():
            await asyncio.gather(*(model.chat(req(f"r{i}")) for i in range(5)))

        start = time.monotonic()
        run(many())
        assert time.monotonic() - start >= 0.4  # 5 requests at 10/s


def test_cache_written_by_an_older_dlmpo_gains_the_usage_columns(tmp_path):
    import sqlite3

    from dlmpo.lm.cache import CallCache
    from dlmpo.lm.types import ChatResponse, Usage

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
    cache = CallCache(path)
    cache.put("k", "m", ChatResponse(text="hi", usage=Usage(3, 1)))
    assert cache.get("k").text == "hi" and cache.totals("m") == (1, 3, 1)
