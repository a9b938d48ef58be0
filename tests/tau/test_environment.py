import json
from hashlib import sha256

import pytest

from dlmpo.errors import UserError
from dlmpo.tau.domain import load_domain
from dlmpo.tau.environment import Environment
from dlmpo.tau.replay import replay
from dlmpo.tau.reward import GoldHashes, score


def to_hashable(item):
    if isinstance(item, dict):
        return tuple((key, to_hashable(value)) for key, value in sorted(item.items()))
    if isinstance(item, list):
        return tuple(to_hashable(element) for element in item)
    return item


def upstream_hash(db):
    """Upstream's reference: sha256 of the repr of the key-sorted, tuple-ised database (~0.4 s on airline)."""
    return sha256(str(to_hashable(db)).encode("utf-8")).hexdigest()


def pristine_intact(domain) -> bool:
    """The records every environment shares are still the database on disk."""
    return all(json.dumps(domain.pristine[p.stem], sort_keys=True) == json.dumps(json.loads(p.read_text()), sort_keys=True)
               for p in (domain.root / "db").glob("*.json"))


def test_every_schema_tool_is_implemented(airline, retail):
    assert len(airline.tool_schemas) == 14 and len(retail.tool_schemas) == 16
    for domain in (airline, retail):
        assert {s["function"]["name"] for s in domain.tool_schemas} == set(domain.tools)


def test_replay_reproduces_every_recorded_reward_and_tool_output(airline, data_dir):
    report = replay(data_dir / "tau" / "trajectories" / "gpt-4o-airline-trials01.json", airline)
    s = report.summary()
    assert s["episodes"] == 100 and s["reward_match"] == 100
    assert s["tool_outputs"] == 572
    # the only differences are get_user_details outputs recorded before `province` became `state`
    assert s["tool_output_match"] + s["tool_output_renamed_field_only"] == s["tool_outputs"]
    assert s["tool_output_renamed_field_only"] == 59
    assert s["mean_reward"] == 0.43
    assert pristine_intact(airline)


@pytest.mark.parametrize("name", ["airline", "retail"])
def test_gold_actions_score_one_on_every_task_and_never_touch_shared_records(name, request):
    domain = request.getfixturevalue(name)
    gold = GoldHashes(domain)
    n = 0
    for tasks in domain.tasks.values():
        for task in tasks:
            env = Environment(domain)
            for action in task.actions:
                env.execute(action.name, action.kwargs)
            reward = score(task, env.hash(), gold(task), ["I can confirm: " + " ".join(task.outputs)])
            assert reward.reward == 1.0, task.id
            n += 1
    assert n == {"airline": 50, "retail": 635}[name]
    assert pristine_intact(domain)  # copy-on-write held


def test_do_nothing_agent_scores(airline, retail):
    """Stated in docs/tau.md: an agent that changes nothing and says nothing."""
    def do_nothing(domain, split):
        gold, start = GoldHashes(domain), Environment(domain).hash()
        tasks = domain.tasks[split]
        return sum(score(t, start, gold(t), []).reward for t in tasks) / len(tasks)

    assert do_nothing(airline, "test") == 0.38
    assert round(do_nothing(retail, "test"), 4) == 0.0609


def test_table_hash_agrees_with_upstream_hash_on_changes(airline):
    a, b = Environment(airline), Environment(airline)
    assert a.hash() == b.hash()
    a.execute("send_certificate", {"user_id": "mia_li_3668", "amount": 100})
    b.execute("send_certificate", {"user_id": "mia_li_3668", "amount": 100.0})  # 100 vs 100.0: upstream differs too
    assert (a.hash() == b.hash()) == (upstream_hash(a.db) == upstream_hash(b.db)) is False
    c = Environment(airline)
    c.execute("send_certificate", {"user_id": "mia_li_3668", "amount": 100})
    assert c.hash() == a.hash()


def test_malformed_calls_become_tool_errors(airline):
    env = Environment(airline)
    assert env.execute("get_user_details", '{"user_id": "mia_li_3668"').startswith("Error: the arguments are not valid JSON")
    assert env.execute("get_user_details", "[1, 2]") == "Error: the arguments must be a JSON object"
    assert "missing 1 required positional argument" in env.execute("get_user_details", "{}")
    assert "unexpected keyword argument" in env.execute("get_user_details", {"user_id": "x", "colour": "red"})
    assert env.execute("fly_me_to_the_moon", {}) == "Unknown action fly_me_to_the_moon"
    out = env.execute("book_reservation", {"user_id": "mia_li_3668", "origin": "JFK", "destination": "SEA",
                                           "flight_type": "one_way", "cabin": "economy", "flights": "HAT136",
                                           "passengers": [], "payment_methods": [], "total_baggages": 0,
                                           "nonfree_baggages": 0, "insurance": "no"})
    assert out.startswith("Error:")
    assert env.execute("calculate", {"expression": "__import__('os')"}) == "Error: invalid characters in expression"
    assert env.execute("calculate", {"expression": "(2 + 3) * 4 / 3"}) == "6.67"
    assert env.execute("calculate", {"expression": "1 / 0"}) == "Error: division by zero"


def test_missing_domain_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="dlmpo data fetch tau"):
        load_domain("airline", tmp_path)
    with pytest.raises(UserError, match="Unknown τ-bench domain"):
        load_domain("telecom", tmp_path)
