"""experiments/run_tiger.py --promote: the reported TIGER is chosen on valid, never on test. experiments/replay_floor.py
reads back the results its tuning table holds. experiments/rerank_ceiling.py: its metrics, features and learned rule.
experiments/ddp_scaling.py: speedups from the runs' own records."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import ddp_scaling  # noqa: E402
import replay_floor  # noqa: E402
import rerank_ceiling  # noqa: E402
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


def _drafts(items, target, n_in_sample, seed=0, signal=0.0):
    """Round-1 drafts as draft_and_score returns them; `signal` is added to the target's first-digit log-prob."""
    import torch

    from specgr.speculate.learned_rank import candidate_features

    rng = np.random.default_rng(seed)
    items, target = np.asarray(items), np.asarray(target)
    lp = rng.normal(size=(*items.shape, 4)).astype(np.float32)
    lp[..., 0] += signal * (items == target[:, None])
    ds = np.where(items >= 0, rng.normal(size=items.shape), -np.inf).astype(np.float32)
    it = torch.as_tensor(items)
    X = candidate_features(it, torch.as_tensor(ds), torch.as_tensor(lp), torch.where(it >= n_in_sample, 1, 4),
                           torch.full((int(items.max()) + 1,), 1), n_in_sample).numpy()
    return {"items": items, "target": target, "n_in_sample": n_in_sample, "ds": ds, "X": X,
            "v": np.where(items >= 0, X[..., 1], -np.inf)}


def test_rerank_scores_the_order_it_is_given():
    d = _drafts([[5, 3, 7, -1], [5, 3, 7, -1]], target=[3, 7], n_in_sample=6)
    r = rerank_ceiling.evaluate_order(d, np.array([[0.9, 0.5, 0.4, 9.0], [0.9, 0.5, 0.4, 9.0]]))  # pads never rank
    assert r["in_sample"]["ndcg@50"] == pytest.approx(1 / np.log2(3))  # item 3 second
    assert r["unseen"]["ndcg@50"] == pytest.approx(0.5)  # item 7 third
    r = rerank_ceiling.evaluate_order(d, np.array([[0.0, 1.0, 0.5, 0.0], [0.0, 0.5, 1.0, 0.0]]))
    assert r["overall"]["ndcg@50"] == 1.0 and r["overall"]["recall@50"] == 1.0


def test_rerank_learned_rule_finds_a_signal_the_drafter_lacks():
    rng = np.random.default_rng(1)
    items = np.stack([rng.permutation(1000)[:60] for _ in range(300)])
    target = items[np.arange(300), rng.integers(0, 60, 300)]
    d = _drafts(items, target, n_in_sample=1000, signal=3.0)  # the target's first digit is likelier
    learned = rerank_ceiling.evaluate_order(d, rerank_ceiling.cross_validated(d))
    drafter = rerank_ceiling.evaluate_order(d, d["ds"])  # the drafter is noise
    assert learned["overall"]["ndcg@50"] > 0.6 > drafter["overall"]["ndcg@50"] + 0.2


def test_rerank_refuses_lists_shorter_than_k():
    with pytest.raises(ValueError, match="Fix"):
        rerank_ceiling.main(["--bundle", "x", "--out", "y", "--delta", "10"])


def _ddp_run(root, name, rows_per_s, pp_steps_per_s, world):
    d = root / "devruns" / name / "toy"
    (d / "tiger").mkdir(parents=True)
    (d / "specgr_pp").mkdir()
    metrics = {"recall@50": 0.15, "ndcg@10": 0.04}
    (d / "tiger" / "tiger_train_info.json").write_text(json.dumps({
        "rows_per_s": rows_per_s, "train_s": 10.0, "val_s": 1.0, "wall_s": 11.0, "steps": 100, "cuda_graphs": True,
        "train_config": {"batch_size": 1024}, "world_size": world, "gpu": "toy", "lr": {"lr": 1e-3},
        "best": {"overall": metrics}, "best_full_valid": {"overall": metrics}}))
    stage = {"steps": 40, "epochs": 2, "train_time_s": 12.0, "val_time_s": 2.0,
             "train_only_steps_per_s": pp_steps_per_s, "world_size": world, "best_val": {"overall": metrics}}
    (d / "specgr_pp" / "stage.json").write_text(json.dumps({"info": {
        "n_train_rows": 1000, "config": {"emb_batch_size": 1024 // world}, "stage1": stage, "stage2": stage}}))


def test_ddp_scaling_reads_speedups_from_the_runs(tmp_path):
    _ddp_run(tmp_path, "g1s42", 100.0, 4.0, 1)
    _ddp_run(tmp_path, "g2s42", 150.0, 6.0, 2)  # g1s43 missing: reported as None, not invented
    _ddp_run(tmp_path, "g4s42", 200.0, 8.0, 4)
    res = tmp_path / "devresults" / "ddp"
    res.mkdir(parents=True)
    for n, rate in ((1, 10.0), (2, 18.0)):  # no 4-GPU inference: left out of the speedups
        (res / f"infer_specgr++_g{n}.json").write_text(json.dumps({
            "recs_per_s": rate, "n_rows": 7, "device": "toy", "world_size": n,
            "overall": {m: 0.1 for m in ddp_scaling.METRICS}}))
    out = ddp_scaling.main(["--root", str(tmp_path), "--dataset", "toy", "--json", str(tmp_path / "o.json")])
    assert out["scaling"]["tiger"] == {"1": 100.0, "2": 150.0, "4": 200.0, "speedup": {"2": 1.5, "4": 2.0},
                                       "efficiency": {"2": 0.75, "4": 0.5}}
    # SpecGR++ rows/s = train rows x epochs / training-only seconds (steps / steps per s): 1000 x 2 / 10 = 200
    assert out["scaling"]["specgr_pp_stage1"]["1"] == pytest.approx(200.0)
    assert out["scaling"]["specgr_pp_stage2"]["speedup"] == pytest.approx({"2": 1.5, "4": 2.0})
    assert out["runs"]["g1s43"]["tiger"] is None and out["gpu_models"] == ["toy"]
    infer = out["inference_specgr++"]
    assert "4" not in infer and infer["speedup"] == pytest.approx({"2": 1.8}) and infer["same_metrics"]
