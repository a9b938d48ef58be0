import json
import subprocess
import sys

from dlmpo.tau.domain import load_domain
from dlmpo.tau.fetch import PINNED_REF, UPSTREAM, fetch_tau, tasks_from_source, tool_schema_from_source
from tests.support.fake_openai_server import FakeOpenAIServer


def _as_upstream_tasks(tasks: list[dict]) -> str:
    """A tasks_*.py file in upstream's shape: Task(...) and Action(...) calls."""
    rows = []
    for t in tasks:
        actions = ", ".join(f"Action(name={a['name']!r}, kwargs={a['kwargs']!r})" for a in t["actions"])
        rows.append(f"    Task(\n        annotator={t.get('annotator', '')!r},\n        user_id={t['user_id']!r},\n"
                    f"        instruction={t['instruction']!r},\n        actions=[{actions}],\n        outputs={t['outputs']!r},\n    ),")
    return "from tau_bench.types import Action, Task\n\nTASKS = [\n" + "\n".join(rows) + "\n]\n"


def _as_upstream_tool(schema: dict) -> str:
    return ("from tau_bench.envs.tool import Tool\n\n\nclass T(Tool):\n    @staticmethod\n    def invoke(data, **kw):\n"
            "        return eval('1')\n\n    @staticmethod\n    def get_info():\n        return " + repr(schema) + "\n")


def test_converters_read_upstream_source_without_running_it():
    src = 'TASKS = [Task(user_id="u", instruction="i", actions=[Action(name="think", kwargs={"thought": "x"})], outputs=["1"])]'
    assert tasks_from_source(src) == [{"annotator": "", "user_id": "u", "instruction": "i",
                                       "actions": [{"name": "think", "kwargs": {"thought": "x"}}], "outputs": ["1"]}]
    assert tool_schema_from_source(_as_upstream_tool({"type": "function", "function": {"name": "n"}}))["function"]["name"] == "n"


def test_fetch_converts_an_upstream_tree(data_dir, tmp_path):
    """A stand-in for GitHub serves the shared data in upstream's form; the converted tree loads the same."""
    files = {}
    for domain in ("airline", "retail"):
        root = data_dir / "tau" / domain
        base = f"{UPSTREAM}/{PINNED_REF}/tau_bench/envs/{domain}"
        for table in (root / "db").glob("*.json"):
            files[f"{base}/data/{table.name}"] = table.read_text()
        files[f"{base}/wiki.md"] = (root / "policy.md").read_text()
        for schema in json.loads((root / "tools.json").read_text()):
            files[f"{base}/tools/{schema['function']['name']}.py"] = _as_upstream_tool(schema)
        for tasks in root.glob("tasks_*.json"):
            files[f"{base}/{tasks.stem}.py"] = _as_upstream_tasks(json.loads(tasks.read_text()))
    seen = []
    out = fetch_tau(tmp_path, download=files.__getitem__, on_file=seen.append)
    assert out == tmp_path / "tau" and len(seen) == len(files)
    for domain in ("airline", "retail"):
        ours, theirs = load_domain(domain, tmp_path), load_domain(domain, data_dir)
        assert ours.tasks == theirs.tasks and ours.policy == theirs.policy
        assert ours.tool_schemas == sorted(theirs.tool_schemas, key=lambda s: s["function"]["name"])
        assert ours.pristine == theirs.pristine


def test_optimize_on_tau_runs_end_to_end(data_dir, tmp_path):
    """The whole loop on τ-bench retail: episodes as traces, DLM proposals, selection, test."""
    with FakeOpenAIServer(answer=lambda body: "Could you give me your order id?") as server:
        proc = subprocess.run([sys.executable, "-m", "dlmpo", "optimize", "--task", "tau-retail", "--target",
                               f"{server.base_url}#agent", "--dlm", "tiny-random:dream", "--rounds", "1",
                               "--candidates", "1", "--steps", "4", "--mask-tokens", "8", "--train-size", "2",
                               "--val-size", "2", "--test-size", "2", "--batch-size", "2", "--screen-batch", "2",
                               "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), "--json"],
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["seed_prompt"].startswith("# Retail agent policy") and result["test"]["seed"] == 0.0
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    traces = next(e for e in events if e["type"] == "eval" and e["which"] == "traces")
    assert traces["n"] == 2
    (candidate,) = [e for e in events if e["type"] == "candidate"]
    assert candidate["prompt"].startswith("# Retail agent policy")  # the policy is the prompt being optimized
    feedback = next(e for e in events if e["type"] == "feedback")
    assert all(n.startswith("Failed") for n in feedback["notes"])
