"""The whole pipeline end to end on the tiny fixture: every stage, resumability, the exported bundle."""

import json

import numpy as np
import pytest

from specgr.pipeline import load_pipeline_config, run_pipeline


@pytest.fixture(scope="module")
def tiny_run(tiny_pipeline):
    p, _ = tiny_pipeline
    root = p.run_dir.parent.parent
    kw = dict(data_root=p.data_root, run_root=root / "runs", results_root=root / "results", device="cpu",
              log=lambda *a: None)
    return p, kw, root


def test_pipeline_runs_every_stage(tiny_run):
    p, _, root = tiny_run
    for stage in ("sid", "tiger", "specgr_pp", "aux", "sasrec", "export", "tune", "evaluate"):
        assert (p.run_dir / stage / "stage.json").exists(), stage
    res = root / "results" / "tiny"
    for m in ("tiger", "tiger_nohist", "specgr++_paper", "specgr-aux_paper", "sasrec", "drafter-aux",
              "drafter-encoder", "specgr++_vnew_nohist", "specgr++_fair_nohist", "specgr-aux_paper_nohist"):
        r = json.loads((res / f"{m}.json").read_text())
        assert 0.0 <= r["overall"]["recall@50"] <= 1.0 and r["n_rows"] == len(p.ds.rows("test"))
    # plain TIGER never recommends an unseen item; SpecGR can
    assert json.loads((res / "tiger.json").read_text())["unseen_share_of_recs"] == 0.0
    tune = json.loads((res / "tune.json").read_text())
    assert tune["best"]["encoder"]["paper"]["threshold"] in (-1.6, -2.0, -3.0, -3.4)  # grid or one widening step
    assert {c["knob"] for c in tune["choices"]["aux"]["fair"]} >= {"new_item_bonus", "fusion_weight"}
    # the learned variant: its final ranking fitted on valid rows the tuning rows leave out, then tuned, then tested
    from specgr.speculate.learned_rank import FEATURES

    for d in ("encoder", "aux"):
        fit = tune["learned_fit"][d]
        assert list(fit["weights"]) == list(FEATURES) and fit["rows"] > 0 and fit["rows_with_target_drafted"] > 0
        assert fit["on_tuning_rows"] == (len(p.ds.rows("valid")) <= 32)  # tiny.yaml: tune.valid_rows 32
        assert tune["best"][d]["learned"]["final_weights"] == list(fit["weights"].values())
    learned = json.loads((res / "specgr-aux_learned_nohist.json").read_text())
    assert len(learned["params"]["final_weights"]) == len(FEATURES) and learned["params"]["variant"] == "learned"
    # the unseen floor: the best drafter-alone unseen R@50 on the tuning rows, times the ratio, recorded with whether
    # each chosen setting met it
    fl = tune["unseen_floor"]
    assert fl["value"] == pytest.approx(fl["ratio"] * max(fl["drafter_alone"].values())) and fl["ratio"] > 0
    assert set(fl["drafter_alone"]) >= {"encoder", "aux", "knn"}
    assert all(fl["met"][t] == (fl["chosen_unseen"][t] >= fl["value"]) for t in fl["met"])
    # the bundle carries, per drafter, the variant that scored best on valid among those meeting the floor
    from specgr.bundle import Bundle

    defaults = Bundle.load(p.run_dir / "export" / "bundle", ds=p.ds).specgr_defaults
    tag = {"encoder": "specgr++", "aux": "specgr-aux"}
    for d in ("encoder", "aux"):
        v = tune["best_variant"][d]
        assert tune["ranked_score"][d][v] == max(tune["ranked_score"][d].values())
        met = [x for x in tune["ranked_score"][d] if fl["met"][f"{tag[d]}_{x}"]]
        assert not met or v in met
        assert {k: defaults[d][k] for k in tune["best"][d][v] if k != "exclude_history"} == \
            {k: x for k, x in tune["best"][d][v].items() if k != "exclude_history"}
    # history exclusion is a protocol switch applied to every method: no list holds a history item
    assert json.loads((res / "tiger_nohist.json").read_text())["params"]["exclude_history"] is True
    vs = json.loads((res / "verifier_scores.json").read_text())
    assert set(vs) == {"tiger", "specgr++"} and "in_sample" in vs["tiger"]


def test_pipeline_is_resumable(tiny_run):
    p, kw, _ = tiny_run
    logs = []
    kw = {**kw, "log": logs.append}
    run_pipeline(load_pipeline_config("tiny"), stages=("sid", "tiger", "specgr_pp", "aux"), **kw)
    assert sum("skipped" in m for m in logs) == 4
    # a second full run re-runs nothing: the tune stage is not made stale by the tuned values the export records
    logs.clear()
    run_pipeline(load_pipeline_config("tiny"), stages=("sid", "tiger", "specgr_pp", "aux", "sasrec", "export", "tune",
                                                       "evaluate"), **kw)
    assert not [m for m in logs if " running " in m], logs
    # a changed config re-runs that stage (and only that one)
    logs.clear()
    run_pipeline(load_pipeline_config("tiny", ["aux_train.max_epochs=1"]), stages=("sid", "tiger", "aux"), **kw)
    assert any(m.startswith("[aux] running") for m in logs)
    assert any(m.startswith("[tiger] up to date") for m in logs)


def test_bundle_adds_a_new_item(tiny_run):
    from specgr.bundle import Bundle

    p, _, _ = tiny_run
    from specgr.data.processed import ProcessedDataset

    # a fresh dataset object: add_items must not touch the shared fixture's catalog; no drafter is built beforehand
    b = Bundle.load(p.run_dir / "export" / "bundle", ds=ProcessedDataset.load(p.ds.path))
    rows = p.ds.rows("test")
    n0 = b.ds.n_items
    # text encoder of the tiny fixture is not a real model: give the new item a neighbour's embedding
    new_id = b.add_items_from_embeddings(["a brand-new topic 1 product"], b.text_embeddings()[[1]])[0]
    assert new_id == n0 and b.sids.n_items == n0 + 1
    for name in ("encoder", "aux", "knn"):
        d = b.drafter(name)
        ids, _ = d.draft(rows.history[:2], rows.hist_len[:2], k=b.ds.n_items)
        assert (ids == new_id).any(), name  # retrievable, no retraining
    np.testing.assert_array_equal(b.sids.codes[:n0].numpy(), p.sids().codes[:n0].numpy())
    after = b.specgr("encoder").recommend(rows.history[:4], rows.hist_len[:4]).items
    assert after.shape[0] == 4
    # the learned variant's tuned config (its weights as tune.json's list) runs on the grown catalog too: the new item
    # has its own features (new flag, prefix length)
    import json

    learned = json.loads((p.results_root / p.ds_name / "tune.json").read_text())["best"]["aux"]["learned"]
    res = b.recommend(rows.history[:4], rows.hist_len[:4], drafter="aux", **learned)
    assert res.items.shape == (4, learned["top_k"]) and (res.items >= 0).all()


def test_bad_input_gets_clear_errors(tiny_run):
    import torch

    from specgr.bundle import Bundle
    from specgr.checkpoint import CheckpointMismatchError
    from specgr.recommenders import make_recommender, validate_history

    p, _, _ = tiny_run
    n = p.ds.n_items
    with pytest.raises(ValueError, match="empty history"):
        validate_history(torch.full((1, 20), -1), torch.tensor([0]), n)
    with pytest.raises(ValueError, match="unknown item ids"):
        validate_history(torch.tensor([[n + 5] + [-1] * 19]), torch.tensor([1]), n)
    validate_history(torch.tensor([[0, 1] + [-1] * 18]), torch.tensor([2]), n)  # fine
    with pytest.raises(ValueError, match="unknown method"):
        make_recommender(None, "nope")

    class Other:  # a dataset with another fingerprint
        fingerprint, name, path = "0000", "other", "elsewhere"

    with pytest.raises(CheckpointMismatchError, match="Fix"):
        Bundle.load(p.run_dir / "export" / "bundle", ds=Other())


def test_tiger_beam_width_is_reported_beside_the_official_one(tiny_pipeline, tmp_path):
    """eval.tiger_beams != 50 scores TIGER at that width as tiger.json and the official width-50 TIGER beside it."""
    import copy
    import json

    p, _ = tiny_pipeline
    q = copy.copy(p)
    q.cfg = copy.deepcopy(p.cfg)
    q.cfg.eval = {**q.cfg.eval, "tiger_beams": 64, "max_rows": 16, "diagnostics": False, "ablations": False}
    q.results_root = tmp_path
    record = p.run_dir / "evaluate" / "stage.json"
    kept = record.read_text()
    try:
        q.stage_evaluate({}, force=True)
    finally:  # the shared fixture's own record stays as it was
        record.write_text(kept)
    res = tmp_path / p.ds_name
    wide, official = (json.loads((res / f).read_text()) for f in ("tiger.json", "tiger_beam50.json"))
    assert wide["params"]["num_beams"] == 64 and official["params"]["num_beams"] == 50
    assert (res / "tiger_beam50_nohist.json").exists() and not (tmp_path / p.ds_name / "tiger_beam64.json").exists()


@pytest.mark.parametrize("bad", [10, 0, 50.5, True])
def test_tiger_beams_below_k_is_refused_with_the_fix(bad):
    with pytest.raises(ValueError, match="Fix: use a whole number >= 50"):
        load_pipeline_config("tiny", [f"eval.tiger_beams={bad}"]).eval_cfg()


def test_eval_by_length_gives_the_same_metrics(tiny_pipeline):
    """eval.by_length batches users by history length: the same lists on the CPU, and the evaluate stage's hash
    changes only when it is on."""
    import copy

    p, _ = tiny_pipeline
    cfg = load_pipeline_config("tiny", ["eval.by_length=true"])
    assert cfg.eval_cfg().by_length is True
    assert "by_length" not in p.cfg.eval_cfg().hashed() and cfg.eval_cfg().hashed()["by_length"] is True
    q = copy.copy(p)
    q.cfg = copy.deepcopy(p.cfg)
    q.cfg.eval = {**q.cfg.eval, "batch_size": 4, "by_length": True}
    for method in ("tiger", "specgr++"):
        plain, cut = p._eval(method, max_rows=24, quiet=True), q._eval(method, max_rows=24, quiet=True)
        assert plain["overall"] == cut["overall"] and plain["n_rows"] == cut["n_rows"] == 24
        assert (plain["by_length"], cut["by_length"]) == (False, True)


def test_export_of_new_tuned_values_needs_no_training_directories(tiny_run, tmp_path):
    """The export after `tune` only records new values: with the same weights it rewrites them in the bundle in place,
    so a run restored from its bundle alone (no tiger / specgr_pp / aux directories) can still tune and export."""
    import shutil

    import torch

    from specgr.checkpoint import load_checkpoint
    from specgr.pipeline import Pipeline

    p, kw, root = tiny_run
    runs = tmp_path / "runs"
    shutil.copytree(p.run_dir, runs / p.ds_name)
    q = Pipeline(p.cfg, data_root=p.data_root, run_root=runs, results_root=tmp_path / "results", device="cpu",
                 log=lambda *a: None)
    for n in ("sid", "tiger", "specgr_pp", "aux"):
        q.hashes[n] = json.loads((runs / p.ds_name / n / "stage.json").read_text())["hash"]
    q.stage_export(force=True)  # a bundle of these stages' weights (other tests retrain some stages of the fixture)
    for name in ("tiger", "specgr_pp", "aux"):  # keep the stage records, drop the weights
        for f in (runs / p.ds_name / name).iterdir():
            if f.name != "stage.json":
                shutil.rmtree(f) if f.is_dir() else f.unlink()
    before = load_checkpoint(runs / p.ds_name / "export" / "bundle", ds=q.ds)
    defaults = {"aux": {"threshold": -9.5, "draft_size": 7}}
    q.stage_export(specgr_defaults=defaults)
    info = json.loads((runs / p.ds_name / "export" / "stage.json").read_text())["info"]
    assert info.get("updated_in_place") is True
    after = load_checkpoint(runs / p.ds_name / "export" / "bundle", ds=q.ds)
    assert after["config"]["specgr_defaults"] == defaults
    for name in ("tiger", "specgr_pp"):  # the weights are the exported ones, untouched
        for k, v in before["state_dicts"][name].items():
            assert torch.equal(v, after["state_dicts"][name][k])
