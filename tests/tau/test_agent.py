import asyncio
import json
import subprocess
import sys

import pytest

from dlmpo.catalog import get_task
from dlmpo.lm import open_target
from dlmpo.lm.tool_prompt import parse_tool_calls, render_messages
from dlmpo.tau.agent import pass_hat_k, run_episode
from dlmpo.tau.reward import GoldHashes
from dlmpo.tau.users import STOP, LLMUser, ScriptedUser
from tests.support.fake_openai_server import FakeOpenAIServer


def dlmpo(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "dlmpo", *args], capture_output=True, text=True, timeout=timeout)


def gold_agent(domain, tasks, *, broken_first=False):
    """An OpenAI-compatible 'model' that performs the task's gold actions, then states its outputs."""
    by_opening = {}

    def opening(task):
        return asyncio.run(ScriptedUser().start(task, 0))

    for task in tasks:
        by_opening[opening(task)] = task

    def answer(body):
        msgs = body["messages"]
        if "tools" not in body:  # the user simulator: done after the agent's reply
            return STOP
        task = by_opening[next(m["content"] for m in msgs if m["role"] == "user")]
        done = sum(m["role"] == "tool" for m in msgs)
        plan = list(task.actions)
        if broken_first and done == 0:
            return {"role": "assistant", "content": None, "tool_calls": [{"id": "c0", "type": "function", "function": {
                "name": "get_user_details", "arguments": '{"user_id": '}}]}
        step = done - (1 if broken_first else 0)
        if step < len(plan):
            a = plan[step]
            return {"role": "assistant", "content": None, "tool_calls": [{"id": f"c{done}", "type": "function",
                    "function": {"name": a.name, "arguments": json.dumps(a.kwargs)}}]}
        return "Done. " + " ".join(task.outputs)

    return answer


@pytest.fixture(scope="module")
def airline_task(data_dir):
    return get_task("tau-airline", data_dir)


def test_gold_agent_episodes_over_http_score_one(airline_task, tmp_path):
    domain = airline_task.domain
    scenarios = domain.tasks["test"][:6]
    with FakeOpenAIServer(answer=gold_agent(domain, scenarios, broken_first=True)) as server:
        model = open_target(f"{server.base_url}#gold", cache_path=tmp_path / "c.sqlite")

        async def go():
            eps = [await run_episode(domain, t, model, ScriptedUser(), domain.policy, gold=GoldHashes(domain))
                   for t in scenarios]
            await model.aclose()
            return eps

        episodes = asyncio.run(go())
    for ep in episodes:
        assert ep.reward.reward == 1.0, (ep.task.id, ep.reward)
        assert ep.ended_by == "user stop"
        # the malformed call came back to the model as a tool error; the episode went on
        assert ep.steps[1].kind == "tool" and ep.steps[1].text.startswith("Error: the arguments are not valid JSON")
    first = server.requests[0]
    assert first["messages"][0] == {"role": "system", "content": domain.policy}
    assert {t["function"]["name"] for t in first["tools"]} == set(domain.tools)
    assert first["temperature"] == 0.0


def test_step_limit_and_transfer_end_episodes(airline_task, tmp_path):
    domain = airline_task.domain
    task = next(t for t in domain.tasks["test"] if t.actions)

    def lookups_forever(body):
        return {"role": "assistant", "content": None, "tool_calls": [{"id": "x", "type": "function", "function": {
            "name": "list_all_airports", "arguments": "{}"}}]}

    def transfer(body):
        return {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function", "function": {
            "name": "transfer_to_human_agents", "arguments": '{"summary": "help"}'}}]}

    for answer, ended, steps in ((lookups_forever, "step limit", 5), (transfer, "transfer", 1)):
        with FakeOpenAIServer(answer=answer) as server:
            model = open_target(f"{server.base_url}#m", use_cache=False)
            ep = asyncio.run(run_episode(domain, task, model, ScriptedUser(), domain.policy,
                                         gold=GoldHashes(domain), max_steps=5))
        assert ep.ended_by == ended and ep.agent_steps == steps and ep.reward.reward == 0.0


def test_a_user_simulator_failing_at_once_breaks_the_episode(airline_task, tmp_path):
    domain = airline_task.domain
    task = next(t for t in domain.tasks["test"] if not t.actions)  # doing nothing would score 1
    with FakeOpenAIServer() as server:
        server.faults += ["500"]
        model = open_target(f"{server.base_url}#u", use_cache=False)
        model.retry.max_retries = 0  # the simulated customer's first call fails for good

        async def go():
            try:
                return await run_episode(domain, task, model, LLMUser(model), domain.policy, gold=GoldHashes(domain))
            finally:
                await model.aclose()

        ep = asyncio.run(go())
    assert ep.ended_by == "user error" and ep.error and ep.agent_steps == 0
    assert ep.reward.database_ok and ep.reward.reward == 0.0


def test_pass_hat_k():
    runs = {"a": [True, True, False], "b": [True, True, True], "c": [False, False, False]}
    assert pass_hat_k(runs, 1) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert pass_hat_k(runs, 2) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert pass_hat_k(runs, 3) == pytest.approx(1 / 3)


def test_prompted_tool_calls_render_and_parse():
    tools = [{"type": "function", "function": {"name": "get_user_details", "description": "Get a user.",
                                               "parameters": {"properties": {"user_id": {"type": "string"}}}}}]
    msgs = render_messages([
        {"role": "system", "content": "Policy."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function", "function": {
            "name": "get_user_details", "arguments": '{"user_id": "u1"}'}}]},
        {"role": "tool", "tool_call_id": "1", "name": "get_user_details", "content": "{}"}], tools)
    assert msgs[0]["content"].startswith("Policy.") and "- get_user_details(user_id): Get a user." in msgs[0]["content"]
    assert msgs[2]["content"] == '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "u1"}}</tool_call>'
    assert msgs[3] == {"role": "user", "content": "<tool_response>\n{}\n</tool_response>"}
    text, calls = parse_tool_calls('Sure. <tool_call>{"name": "get_user_details", "arguments": {"user_id": "u1"}}</tool_call>')
    assert text == "Sure." and calls[0].name == "get_user_details" and json.loads(calls[0].arguments) == {"user_id": "u1"}
    _, broken = parse_tool_calls('<tool_call>{"name": "get_user_details", "arguments": {"user_id": ')
    assert broken[0].name == "get_user_details" and broken[0].arguments.startswith('{"name"')
    assert parse_tool_calls("no calls here") == ("no calls here", [])


def test_eval_tau_offline_with_embedded_target_and_scripted_user(data_dir, tmp_path):
    """The done-when: a real local model plays the agent (prompted tool calling), the scripted user the customer."""
    proc = dlmpo("eval", "--task", "tau-airline", "--split", "test", "--limit", "1", "--target", "embedded",
                 "--max-steps", "2", "--max-tokens", "24", "--data-dir", str(data_dir), "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["n"] == 1 and summary["task"] == "tau-airline" and set(summary["pass_hat_k"]) == {"1"}
    assert summary["usage"]["calls"] + summary["usage"]["cache_hits"] >= 1
    episode = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    assert episode["messages"][0]["role"] == "system" and episode["ended_by"] in ("user stop", "step limit", "transfer")
    trace = json.loads((tmp_path / "traces.jsonl").read_text().splitlines()[0])
    assert trace["user"].startswith("Customer goal:") and "steps" in trace["output"]


def test_eval_tau_trials_and_llm_user_over_http(data_dir, tmp_path):
    def answer(body):
        if "tools" in body:
            return "How can I help?"
        return STOP if len(body["messages"]) > 3 else "I want to cancel my trip."

    with FakeOpenAIServer(answer=answer) as server:
        proc = dlmpo("eval", "--task", "tau-retail", "--split", "val", "--limit", "3", "--target", f"{server.base_url}#agent",
                     "--user-model", f"{server.base_url}#customer", "--trials", "2", "--data-dir", str(data_dir),
                     "--no-cache", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["n"] == 6 and summary["trials"] == 2 and set(summary["pass_hat_k"]) == {"1", "2"}
    assert summary["user_usage"]["calls"] == 12  # opening + one reply per episode
    user_requests = [r for r in server.requests if "tools" not in r]
    # the simulated customer sees its hidden instruction; the agent never does
    instruction = get_task("tau-retail", data_dir).examples("val")[0].inputs["instruction"]
    assert any(instruction in r["messages"][0]["content"] for r in user_requests)
    assert not any(instruction in json.dumps(r["messages"]) for r in server.requests if "tools" in r)


def test_bad_user_model_and_misused_options_are_one_sentence(data_dir):
    for argv in (["eval", "--task", "sst2", "--trials", "2", "--data-dir", str(data_dir)],
                 ["eval", "--task", "tau-airline", "--user-model", "nonsense:x", "--data-dir", str(data_dir)]):
        proc = dlmpo(*argv)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("user", ["scripted", "model"])
def test_episodes_already_run_are_free_in_the_budget_check(data_dir, tmp_path, user):
    """A resumed run near its cap must not be refused for episodes whose calls are all cached."""
    def answer(body):
        if "tools" in body:
            return "How can I help?"
        return STOP if len(body["messages"]) > 3 else "I want to cancel my trip."

    task = get_task("tau-retail", data_dir)
    ran, fresh = task.examples("val")[:2], task.examples("val")[2]
    with FakeOpenAIServer(answer=answer) as server:
        agent = open_target(f"{server.base_url}#agent", cache_path=tmp_path / "c.sqlite")
        task.bind_user_model(None if user == "scripted" else agent)
        try:
            asyncio.run(task.run_examples(agent, task.seed_prompt, ran, max_tokens=64))
            paid = len(server.requests)
            for ex in ran:
                assert task.budget_requests(task.seed_prompt, ex, 64, agent=agent) == []
                assert len(task.budget_requests(task.seed_prompt, ex, 64)) > 0  # no cache given: counted
            assert len(task.budget_requests(task.seed_prompt, fresh, 64, agent=agent)) > 0
            assert len(task.budget_requests("another prompt", ran[0], 64, agent=agent)) > 0
            assert len(server.requests) == paid  # looking made no call
        finally:
            task.bind_user_model(None)
            asyncio.run(agent.aclose())
