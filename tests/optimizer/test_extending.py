"""docs/extending.md's example proposer, registered by one line, runs through a small loop."""

import re
from pathlib import Path

from dlmpo import api
from dlmpo.optimizer import OptimizeSettings
from dlmpo.optimizer.registry import PROPOSERS, ProposerEntry
from dlmpo.optimizers import optimizer_named

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
SMALL = dict(task="sst2", target="embedded", dlm="tiny-random:dream", rounds=1, candidates=2, train_size=6,
             val_size=8, test_size=8, batch_size=4, screen_batch=8, steps=8, mask_tokens=8, seed=0)


def test_the_documented_proposer_runs_through_the_loop(tmp_path, monkeypatch, data_dir):
    example = re.search(r"```python\n# my_proposer.py\n(.*?)```", DOC.read_text(), re.S).group(1)
    (tmp_path / "my_proposer.py").write_text(example)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(PROPOSERS, "reminder", ProposerEntry("my_proposer:build"))  # the registry line
    assert optimizer_named("reminder").proposer == "reminder"
    settings = OptimizeSettings(**SMALL, proposer="reminder", data_dir=str(data_dir))
    result = api.run_optimizer(settings, tmp_path / "run")
    (record,) = result.rounds
    assert [c.strategy for c in record.candidates] == ["reminder", "reminder"]
    assert all("Reminder" in c.prompt for c in record.candidates)
    assert (tmp_path / "run" / "report.md").is_file()
