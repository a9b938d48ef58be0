"""Run files keep the keys earlier versions wrote (minibatch, incumbent_minibatch, dlm) while the
attributes say what they hold (screen_score, incumbent_screen_score, writer)."""

import json

from dlmpo.optimizer.events import parse_event
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.report.render import write_report

CANDIDATE = {"index": 0, "strategy": "append", "prompt": "Label it.", "masked": "Label [MASK:4]", "nfe": 4, "draws": 1,
             "dlm_seconds": 0.5, "rejected": None, "minibatch": 0.75, "wins": 2, "losses": 1, "val": None,
             "significance": None}
ROUND = {"round": 1, "incumbent_minibatch": 0.5, "candidates": [CANDIDATE], "accepted": False, "best_val": 0.6,
         "seconds": 1.0}
RESULT = {"run_dir": "run", "task": "sst2", "target": "embedded", "dlm": "ar:embedded", "seed_prompt": "Label.",
          "best_prompt": "Label.", "val": {"seed": 0.6, "best": 0.6}, "test": {"seed": 0.5, "best": 0.5},
          "rounds": [ROUND], "stop_reason": "rounds", "calls": 3, "usage": {"calls": 3}, "seconds": 2.0,
          "settings": {"task": "sst2"}, "warnings": []}


def test_a_result_json_of_earlier_versions_reads_and_is_written_back_alike(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps(RESULT))
    result = OptimizeResult.load(tmp_path)
    (record,) = result.rounds
    assert result.writer == "ar:embedded" and record.incumbent_screen_score == 0.5
    assert record.candidates[0].screen_score == 0.75
    assert result.to_json() == RESULT


def test_events_of_earlier_versions_read_for_resume_and_are_written_alike():
    scored = parse_event({"type": "candidate", "time": 1.0, "round": 1, **CANDIDATE})
    assert scored.candidate.screen_score == 0.75
    assert scored.to_json() == {"type": "candidate", "round": 1, **CANDIDATE}
    end = parse_event({"type": "round_end", "time": 2.0, "round": 1, "record": ROUND, "incumbent": "Label.",
                       "best_val": 0.6, "no_improve": 1, "spend": {}})
    assert end.record.incumbent_screen_score == 0.5 and end.to_json()["record"] == ROUND


def test_a_round_timing_round_trips_and_a_result_without_timings_reports_without_them(tmp_path):
    timed = {**ROUND, "timing": {"wall": 2.0, "phases": {"load": 0.5, "traces": 1.0}, "nfe": 8, "redraws": 1}}
    end = parse_event({"type": "round_end", "time": 2.0, "round": 1, "record": timed, "incumbent": "Label.",
                       "best_val": 0.6, "no_improve": 1, "spend": {}})
    assert end.record.timing.accounted == 1.5 and end.record.timing.share == 0.75
    assert end.to_json()["record"] == timed
    data = {**RESULT, "rounds": [timed], "timing": {"seed": 1.0, "test": 0.5}}
    assert OptimizeResult.from_json(json.loads(json.dumps(data))).to_json() == data

    (tmp_path / "result.json").write_text(json.dumps(RESULT))
    paths = write_report(tmp_path)
    assert "time_plot" not in paths and not (tmp_path / "round_times.png").exists()
    assert "## Time" not in paths["markdown"].read_text() and "<h2>Time</h2>" not in paths["html"].read_text()


def test_a_test_entry_with_intervals_round_trips_and_reports_them_while_older_ones_report_without(tmp_path):
    from dlmpo.printing import held_out_line

    # 242 and 260 of 436 rows right, +30/-12: Wilson, Wilson and Agresti-Min intervals
    test = {"seed": 0.555, "best": 0.5963, "wins": 30, "losses": 12, "p_value": 0.00396,
            "seed_interval": [0.5081, 0.601], "best_interval": [0.5496, 0.6413], "gain_interval": [0.012, 0.0702],
            "rows": 436, "stopped": "rows ran out"}
    data = {**RESULT, "test": test}
    assert OptimizeResult.from_json(json.loads(json.dumps(data))).to_json() == data
    (tmp_path / "result.json").write_text(json.dumps(data))
    paths = write_report(tmp_path)
    md = paths["markdown"].read_text()
    assert "| test (held out) | 0.5550 ± 0.047 | 0.5963 ± 0.047 | +0.0413 ± 0.029 |" in md
    assert "Test rows scored: 436 (rows ran out)" in md and "0.5550 ± 0.047" in paths["html"].read_text()
    assert held_out_line(test) == ("0.5550 ± 0.047 -> 0.5963 ± 0.047, gain +0.0413 ± 0.029 "
                                 "(+30/-12 of 436 rows, p=0.00396; rows ran out)")
    # an earlier version's entry: the scores as they were, with the paired counts when it has them
    assert held_out_line({"seed": 0.5, "best": 0.5}) == "0.5000 -> 0.5000"
    assert held_out_line({"seed": 0.5, "best": 0.6, "wins": 3, "losses": 1, "p_value": 0.3125}) == \
        "0.5000 -> 0.6000 (+3/-1 rows, p=0.312)"
    (tmp_path / "result.json").write_text(json.dumps(RESULT))
    assert "| test (held out) | 0.5000 | 0.5000 | +0.0000 |" in write_report(tmp_path)["markdown"].read_text()
