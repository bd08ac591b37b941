"""How much can the verifier add to a drafter's list? Re-rank the drafter's top δ by rules over V and the drafter score.

    python experiments/rerank_ceiling.py --bundle RUN/export/bundle --data-root devdata/processed \
        --drafter aux --valid-rows 8192 --out results/amazon2014-beauty/experiments/release12_rerank

SpecGR_Aux "fair" at the threshold tuning picks on Beauty (accept every draft, δ >= K) returns round 1's drafts
re-ranked by its final score, so its list is one re-ranking of the drafter's top δ. This measures every such
re-ranking at once, on the pipeline's valid rows (its seeded subset) with history excluded:
- the drafter's own order, and V's (length rule prefix_len, min_len 1: the fair variant's);
- fixed rules: V + b*new + w*D (the loop's fusion), per-user z-scores z(V + b*new) + a*z(D), reciprocal-rank fusion;
- a learned rule: the listwise linear re-ranker of `specgr.speculate.learned_rank` (the loop's final_weights switch)
  on D, V, the new-item flag, each digit's log-probability and the new item's longest in-sample prefix, scored by
  5-fold cross-validation on valid;
- a perfect re-ranker (the target anywhere in the δ drafts).
Each family's best point on valid (recall@50 + ndcg@50) and the drafter are then scored on test once (--test), the
learned rule refitted on all valid rows. Writes <out>/rerank.json (metrics only; no item ids or texts).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

K = 50
OBJECTIVE = ("recall@50", "ndcg@50")


def draft_and_score(bundle, drafter: str, rows, delta: int, batch_size: int = 256) -> dict:
    """Round 1 of SpecGR for every row (`learned_rank.first_round`, history excluded, V by the fair variant's rule:
    prefix_len, min_len 1) as numpy: items (R, δ) (-1 pad), ds, v (R, δ) (-inf at pads), X (R, δ, F) the learned
    rule's features, target (R,)."""
    from specgr.speculate.learned_rank import FEATURES, first_round

    model, sids = bundle.verifier(drafter).eval(), bundle.sids.to(bundle.device)
    r = first_round(model, bundle.drafter(drafter), sids, rows, delta, "prefix_len", 1, exclude_history=True,
                    batch_size=batch_size)
    ok = r["items"] >= 0
    return {"items": r["items"].numpy(), "ds": r["drafter_score"].numpy(), "X": r["features"].numpy(),
            "v": r["features"][..., FEATURES.index("V")].masked_fill(~ok, -np.inf).numpy(),
            "target": np.asarray(rows.target), "n_in_sample": sids.n_in_sample}


def evaluate_order(d: dict, score: np.ndarray) -> dict:
    """Top-K of each row's drafts by `score` (R, δ) -> the evaluator's metrics (overall / in_sample / unseen)."""
    from specgr.metrics import summarize, topk_metrics

    score = np.where(d["items"] >= 0, score, -np.inf)
    top = np.take_along_axis(d["items"], np.argsort(-score, 1, kind="stable")[:, :K], 1)
    return summarize(topk_metrics(top, d["target"]), d["target"] >= d["n_in_sample"])


def objective(r: dict) -> float:
    return float(sum(r["overall"][k] for k in OBJECTIVE))


def _z(x: np.ndarray) -> np.ndarray:
    """Per-row z-score over the finite entries (pads stay -inf)."""
    f = np.isfinite(x)
    xm = np.where(f, x, np.nan)
    z = (xm - np.nanmean(xm, 1, keepdims=True)) / (np.nanstd(xm, 1, keepdims=True) + 1e-6)
    return np.where(f, z, -np.inf)


def _rank(x: np.ndarray) -> np.ndarray:
    """0-based descending rank of each column within its row (stable)."""
    order = np.argsort(-x, 1, kind="stable")
    r = np.empty_like(order)
    np.put_along_axis(r, order, np.broadcast_to(np.arange(x.shape[1]), x.shape), 1)
    return r


def fixed_rules(d: dict) -> dict:
    """{family: {point name: (R, δ) score}} of the fixed re-ranking rules."""
    new = (d["items"] >= d["n_in_sample"]).astype(np.float32)
    V, D = d["v"], d["ds"]
    fam = {"linear": {}, "zscore": {}, "rrf": {}}
    for b in (0.0, 1.0, 2.0, 4.0):
        vb = V + b * new
        for w in (0, 1, 3, 10, 30, 90, 270, 810):
            fam["linear"][f"b={b:g} w={w}"] = vb + w * D
        zv, zd = _z(vb), _z(D)
        for a in (0.25, 0.5, 1, 2, 4, 8):
            fam["zscore"][f"b={b:g} a={a:g}"] = zv + a * zd
        rv, rd = _rank(np.where(np.isfinite(vb), vb, -1e30)), _rank(D)
        for k in (10, 60):
            for a in (0.5, 1, 2, 4):
                fam["rrf"][f"b={b:g} k={k} a={a:g}"] = 1 / (k + rv) + a / (k + rd)
    return fam


def learned_score(X: np.ndarray, w) -> np.ndarray:
    from specgr.speculate import learned_rank

    return learned_rank.learned_score(w, torch.as_tensor(X)).numpy()


def fit(d: dict, rows=slice(None)):
    """The learned rule's weights (specgr.speculate.learned_rank.fit_listwise) fitted on d's `rows`."""
    from specgr.speculate.learned_rank import fit_listwise

    items = torch.as_tensor(d["items"][rows])
    return fit_listwise(torch.as_tensor(d["X"][rows]), items >= 0,
                        items == torch.as_tensor(d["target"][rows])[:, None])


def cross_validated(d: dict, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row scored by the listwise re-ranker fitted on the other folds."""
    fold = np.random.default_rng(seed).integers(0, folds, len(d["X"]))
    S = np.zeros(d["X"].shape[:2], np.float32)
    for f in range(folds):
        S[fold == f] = learned_score(d["X"][fold == f], fit(d, fold != f))
    return S


def brief(r: dict) -> dict:
    keys = ("recall@50", "ndcg@50")
    return {g: {k: r[g][k] for k in keys} for g in ("overall", "in_sample", "unseen")} | {"n_rows": r["n_rows"]}


def write(out: dict, path: Path, t0: float, device) -> None:
    from specgr.evaluate import write_json

    out["seconds"], out["device"] = time.time() - t0, str(device)
    write_json(out, path)


def main(argv=None):
    from specgr.bundle import Bundle
    from specgr.speculate.learned_rank import FEATURES
    from specgr.train.tiger import valid_rows_subset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--drafter", default="aux", choices=["encoder", "aux", "knn"])
    ap.add_argument("--delta", type=int, default=100, help="drafts re-ranked per row (δ >= K)")
    ap.add_argument("--valid-rows", type=int, default=8192, help="the pipeline's seeded valid subset")
    ap.add_argument("--test", action="store_true", help="score each family's valid-best rule on test once")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.delta < K:
        raise ValueError(f"--delta {a.delta} < K = {K}: the lists would be shorter than K. Fix: --delta >= {K}.")

    t0 = time.time()
    b = Bundle.load(a.bundle, data_root=a.data_root, device=a.device)
    valid = valid_rows_subset(b.ds, a.valid_rows, seed=0)  # the pipeline's tune rows (Pipeline.valid_subset)
    dv = draft_and_score(b, a.drafter, valid, a.delta)
    out = {"dataset": b.ds.name, "drafter": a.drafter, "delta": a.delta, "k": K, "objective": "+".join(OBJECTIVE),
           "valid": {}, "chosen": {}, "test": {}}
    out["valid"]["drafter"] = brief(evaluate_order(dv, dv["ds"]))
    out["valid"]["V"] = brief(evaluate_order(dv, dv["v"]))
    hit = (dv["items"] == dv["target"][:, None]).any(1)
    out["valid"]["perfect_reranker_recall@50"] = float(hit.mean())
    rules = fixed_rules(dv)
    for fam, pts in rules.items():
        res = {name: brief(evaluate_order(dv, s)) for name, s in pts.items()}
        best = max(res, key=lambda n: objective(res[n]))
        out["valid"][fam] = res
        out["chosen"][fam] = best
    out["valid"]["learned_cv"] = brief(evaluate_order(dv, cross_validated(dv)))
    w = fit(dv)
    out["learned_weights_per_unit"] = dict(zip(FEATURES, w))
    path = Path(a.out) / "rerank.json"
    write(out, path, t0, b.device)  # valid first: scoring test takes longer
    if a.test:
        dt = draft_and_score(b, a.drafter, b.ds.rows("test"), a.delta)
        out["test"]["drafter"] = brief(evaluate_order(dt, dt["ds"]))
        out["test"]["V"] = brief(evaluate_order(dt, dt["v"]))
        rules_t = fixed_rules(dt)
        for fam, best in out["chosen"].items():
            out["test"][f"{fam} ({best})"] = brief(evaluate_order(dt, rules_t[fam][best]))
        out["test"]["learned (fitted on valid)"] = brief(evaluate_order(dt, learned_score(dt["X"], w)))
    write(out, path, t0, b.device)
    v = out["valid"]
    print(f"valid: drafter {objective(v['drafter']):.4f}, learned (CV) {objective(v['learned_cv']):.4f}, "
          + ", ".join(f"{f} {objective(v[f][out['chosen'][f]]):.4f}" for f in rules)
          + f"; perfect re-ranker R@50 {v['perfect_reranker_recall@50']:.4f} -> {path}")


if __name__ == "__main__":
    main()
