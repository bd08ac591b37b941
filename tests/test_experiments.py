"""experiments/run_tiger.py --promote: the reported TIGER is chosen on valid, never on test. experiments/replay_floor.py
reads back the results its tuning table holds."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import replay_floor  # noqa: E402
import run_tiger  # noqa: E402


def _run(results, stem, name, valid_r10, test_r10):
    d = results / "toy" / "experiments" / stem
    d.mkdir(parents=True, exist_ok=True)
    metrics = lambda r: {"recall@10": r, "ndcg@10": r / 2}  # noqa: E731
    (d / f"{name}.json").write_text(json.dumps({
        "spec": {"tiger": {"dropout": 0.1}}, "test": {g: metrics(test_r10) for g in ("overall", "in_sample", "unseen")},
        "test_rows": 10, "gpu_minutes": 1.0,
        "train": {"steps": 5, "gpu": "cpu", "best_full_valid": {"overall": metrics(valid_r10)}}}))


def test_promote_picks_the_best_run_on_valid_not_on_test(tmp_path):
    doc = {"dataset": "toy", "runs": {"a": {}, "b": {}, "c": {}}}
    _run(tmp_path, "spec", "a", valid_r10=0.08, test_r10=0.07)  # best on test
    _run(tmp_path, "spec", "b", valid_r10=0.09, test_r10=0.06)  # best on valid
    out = run_tiger.promote(doc, "spec", tmp_path)  # run c never finished: skipped
    written = json.loads((tmp_path / "toy" / "tiger.json").read_text())
    assert written == json.loads(json.dumps(out))
    assert written["source"].endswith("b.json") and written["overall"]["recall@10"] == 0.06
    assert written["valid"]["recall@10"] == 0.09


def test_promote_without_finished_runs_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="Fix"):
        run_tiger.promote({"dataset": "toy", "runs": {"a": {}}}, "spec", tmp_path)


def test_replay_reads_back_the_tuning_tables_results():
    from specgr.evaluate import flatten_result

    result = {g: {"recall@50": r, "ndcg@50": r / 2} for g, r in (("overall", 0.2), ("in_sample", 0.25),
                                                                   ("unseen", 0.05))}
    knobs = {"threshold": -2.6, "new_item_bonus": 3.0, "fusion_weight": 10.0, "draft_size": 50, "num_beams": 30}
    row = {"drafter": "aux", "variant": "fair", **flatten_result({**result, "method": "specgr-aux", "params": knobs},
                                                                  knobs=True)}
    other = {**row, "variant": "paper", "threshold": -1.0}
    got = replay_floor.table_results({"table": [row, other]}, "aux", "fair", list(knobs))
    assert list(got) == [tuple(float(v) for v in knobs.values())]
    assert {g: got[tuple(float(v) for v in knobs.values())][g] for g in result} == result
    with pytest.raises(SystemExit):
        replay_floor.main(["--help"])
