"""Controls that separate the data from the code (issue 13): a SASRec baseline on a split, and TIGER's constrained
beam search against the exact full-catalog likelihood ranking.

    python experiments/controls.py sasrec --data-root data/processed --dataset amazon2014-beauty-loo \
        --preset amazon2014-beauty-loo --runs runs --results results
    python experiments/controls.py beam-vs-exact --data-root data/processed --dataset amazon2018-game \
        --tiger runs/amazon2018-game/tiger --rows 1000 --results results
    python experiments/controls.py transition --data-root data/processed --dataset amazon2014-beauty-loo

`sasrec` trains SASRec with the preset's settings (the pipeline's sasrec stage) and scores the test split both ways
(history items allowed / excluded): <results>/<dataset>/sasrec_control.json. `beam-vs-exact` ranks the in-sample
catalog for each test row by (a) width-50 constrained beam search and (b) the exact sum of the 4 digit log-probs of
every item, and compares Recall/NDCG@{5,10,50}: <results>/<dataset>/beam_vs_exact.json. `transition` asks whether
valid and test differ in difficulty with no model at all: an item-to-item transition count model (last history item
-> target, counted on train; ties broken by popularity; history items excluded) scored by Recall@10 on valid and test,
the targets' train popularity, and the share of users whose valid and test targets fall on the same day:
<results>/<dataset>/transition_control.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def cmd_sasrec(a) -> dict:
    from specgr.evaluate import evaluate
    from specgr.pipeline import Pipeline, load_pipeline_config
    from specgr.recommenders import make_recommender

    p = Pipeline(load_pipeline_config(a.preset, a.set), data_root=a.data_root, run_root=a.runs,
                 results_root=a.results)
    p.stage_sasrec()
    d = p.sasrec()
    out = {}
    for name, excl in (("all", False), ("exclude_history", True)):
        fn = make_recommender(None, "sasrec", sasrec=d, exclude_history=excl)
        out[name] = evaluate(fn, p.ds.rows("test"), p.ds.n_in_sample, "sasrec", p.ds_name, "test", batch_size=1024,
                             device=p.device, progress=False, params={"exclude_history": excl})
        o = out[name]["overall"]
        print(f"SASRec {p.ds_name} ({name}): R@5 {o['recall@5']:.4f} N@5 {o['ndcg@5']:.4f} R@10 {o['recall@10']:.4f} "
              f"N@10 {o['ndcg@10']:.4f}")
    out["train"] = json.loads((p._stage_dir("sasrec") / "stage.json").read_text()).get("info", {})
    return out


@torch.no_grad()
def cmd_beam_vs_exact(a) -> dict:
    from specgr.data.processed import ProcessedDataset
    from specgr.metrics import DEFAULT_KS, summarize, topk_metrics
    from specgr.models.scoring import exhaustive_scores
    from specgr.models.tiger import load_tiger
    from specgr.speculate import TigerOnly, steps

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ds = ProcessedDataset.load(Path(a.data_root) / a.dataset)
    model, sids = load_tiger(a.tiger, ds=ds, device=dev)
    sids = sids.to(dev)
    rows = ds.rows("test")
    rows = rows.subset(np.arange(min(a.rows, len(rows))))
    beam = TigerOnly(model, sids, num_beams=50, device=dev)
    n_in = sids.n_in_sample
    ranked_b, ranked_e = [], []
    for s in range(0, len(rows.target), a.batch_size):
        h = torch.as_tensor(rows.history[s:s + a.batch_size], device=dev)
        hl = torch.as_tensor(rows.hist_len[s:s + a.batch_size], device=dev)
        ranked_b.append(beam.recommend(h, hl, k=50).items.cpu().numpy())
        with steps.autocast(dev, True):
            _, _, state = steps.encode(model, sids, h, hl)
            sc = exhaustive_scores(model, state, None, sids.tokens[:n_in], chunk=a.chunk)  # in-sample items only
        ranked_e.append(sc.float().topk(50, dim=1).indices.cpu().numpy())
    unseen = rows.target >= n_in
    out = {}
    for name, ranked in (("beam", ranked_b), ("exact", ranked_e)):
        out[name] = summarize(topk_metrics(np.concatenate(ranked), rows.target, DEFAULT_KS), unseen)
    out["relative_difference"] = {k: (out["beam"]["overall"][k] - out["exact"]["overall"][k]) /
                                  max(out["exact"]["overall"][k], 1e-12) for k in out["exact"]["overall"]}
    out["rows"] = len(rows.target)
    print("beam vs exact:", {k: f"{100 * v:+.1f}%" for k, v in out["relative_difference"].items()})
    return out


def cmd_transition(a) -> dict:
    import scipy.sparse as sp

    from specgr.data.processed import ProcessedDataset

    ds = ProcessedDataset.load(Path(a.data_root) / a.dataset)
    tr, N = ds.rows("train"), ds.n_items
    last = lambda r: r.history[np.arange(len(r.target)), r.hist_len - 1]  # noqa: E731
    M = sp.csr_matrix((np.ones(len(tr.target)), (last(tr), tr.target)), shape=(N, N))
    pop = np.bincount(tr.target, minlength=N).astype(float)
    out = {}
    for split in ("valid", "test"):
        r = ds.rows(split)
        hits = []
        for s in range(0, len(r.target), 2048):
            sc = M[last(r)[s:s + 2048]].toarray() + 1e-3 * pop[None]
            h = r.history[s:s + 2048]
            for j in range(h.shape[1]):  # history items excluded (-1 = padding)
                ok = h[:, j] >= 0
                sc[np.flatnonzero(ok), h[ok, j]] = -1.0
            top = np.argpartition(-sc, 10, axis=1)[:, :10]
            hits.append((top == r.target[s:s + 2048, None]).any(1))
        out[split] = {"recall@10": float(np.concatenate(hits).mean()),
                      "target_train_count_median": float(np.median(pop[r.target])),
                      "target_train_count_mean": float(pop[r.target].mean())}
    v, t = ds.rows("valid"), ds.rows("test")
    vts = dict(zip(v.user.tolist(), v.ts.tolist()))
    same = [vts[u] == ts for u, ts in zip(t.user.tolist(), t.ts.tolist()) if u in vts]
    out["share_of_users_valid_and_test_target_same_day"] = float(np.mean(same)) if same else float("nan")
    print({k: (round(x["recall@10"], 4) if isinstance(x, dict) else round(x, 3)) for k, x in out.items()})
    return out


def main(argv=None) -> int:
    from specgr.evaluate import write_json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("sasrec", "beam-vs-exact", "transition"):
        p = sub.add_parser(name)
        p.add_argument("--data-root", default="data/processed")
        p.add_argument("--dataset", required=True)
        p.add_argument("--results", default="results")
    sub.choices["sasrec"].add_argument("--preset", required=True)
    sub.choices["sasrec"].add_argument("--runs", default="runs")
    sub.choices["sasrec"].add_argument("--set", nargs="*", default=None, help="preset overrides section.key=value")
    for k, v in (("--tiger", None), ("--rows", 1000), ("--batch-size", 32), ("--chunk", 2048)):
        sub.choices["beam-vs-exact"].add_argument(k, type=type(v) if v is not None else str, default=v,
                                                  required=v is None)
    a = ap.parse_args(argv)
    res = {"sasrec": cmd_sasrec, "beam-vs-exact": cmd_beam_vs_exact, "transition": cmd_transition}[a.cmd](a)
    name = {"sasrec": "sasrec_control.json", "beam-vs-exact": "beam_vs_exact.json",
            "transition": "transition_control.json"}[a.cmd]
    out = Path(a.results) / a.dataset / name
    write_json(res, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
