"""How much can the verifier add to a drafter's list? Re-rank the drafter's top δ by rules over V and the drafter score.

    python experiments/rerank_ceiling.py --bundle RUN/export/bundle --data-root devdata/processed \
        --drafter aux --valid-rows 8192 --out results/amazon2014-beauty/experiments/release12_rerank

SpecGR_Aux "fair" at the threshold tuning picks on Beauty (accept every draft, δ >= K) returns round 1's drafts
re-ranked by its final score, so its list is one re-ranking of the drafter's top δ. This measures every such
re-ranking at once, on the pipeline's valid rows (its seeded subset) with history excluded:
- the drafter's own order, and V's (length rule prefix_len, min_len 1: the fair variant's);
- fixed rules: V + b*new + w*D (the loop's fusion), per-user z-scores z(V + b*new) + a*z(D), reciprocal-rank fusion;
- a learned rule: a listwise linear re-ranker (softmax over each user's δ drafts) on D, V, the new-item flag, each
  digit's log-probability and the new item's longest in-sample prefix, scored by 5-fold cross-validation on valid;
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


@torch.no_grad()
def draft_and_score(bundle, drafter: str, rows, delta: int, batch_size: int = 256) -> dict:
    """Round 1 of SpecGR for every row: the drafter's top δ (history excluded), its scores, each draft's digit
    log-probs and V. Returns numpy arrays items (R, δ) (-1 pad), ds, v (R, δ), lp (R, δ, 4), m (R, δ) (the digits V
    averages), plen (R, δ), target (R,)."""
    from specgr.models.scoring import candidate_lengths, digit_logprobs, length_normalized
    from specgr.speculate import steps

    model, sids, dr = bundle.verifier(drafter).eval(), bundle.sids.to(bundle.device), bundle.drafter(drafter)
    dev = bundle.device
    out = {k: [] for k in ("items", "ds", "v", "lp", "m")}
    for s in range(0, len(rows.target), batch_size):
        h = torch.as_tensor(np.asarray(rows.history[s:s + batch_size]), device=dev)
        hl = torch.as_tensor(np.asarray(rows.hist_len[s:s + batch_size]), device=dev)
        ids, ds = dr.draft(h, hl, delta, exclude=h)
        ids, ds = ids.to(dev), ds.to(dev).float()
        with steps.autocast(dev, True):
            enc, mask, _ = steps.encode(model, sids, h, hl)
            lp = digit_logprobs(model, enc, mask, sids.tokens[ids.clamp(min=0)]).float()
        m = candidate_lengths(ids.clamp(min=0), sids.n_in_sample, "prefix_len", sids.prefix_len, 1)
        v = length_normalized(lp, m)
        out["items"].append(ids.cpu()), out["ds"].append(ds.masked_fill(ids < 0, -np.inf).cpu())
        out["v"].append(v.masked_fill(ids < 0, -np.inf).cpu()), out["lp"].append(lp.cpu()), out["m"].append(m.cpu())
    r = {k: torch.cat(v).numpy() for k, v in out.items()}
    r["plen"] = sids.prefix_len.cpu().numpy()[r["items"].clip(0)]
    r["target"] = np.asarray(rows.target)
    r["n_in_sample"] = sids.n_in_sample
    return r


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


def features(d: dict) -> tuple[np.ndarray, list[str]]:
    """(R, δ, F) features of the learned rule, and their names. Digit log-probs count up to the m digits V reads
    (an unseen item's longest in-sample prefix, at least 1; all four for in-sample ones)."""
    ok = d["items"] >= 0
    new = (d["items"] >= d["n_in_sample"]) & ok
    dmax = np.where(ok, d["ds"], -np.inf).max(1, keepdims=True)
    f = {"drafter_score": np.where(ok, d["ds"] - dmax, 0.0), "V": np.where(ok, d["v"], 0.0), "new": new}
    read = np.arange(4) < d["m"][..., None]  # (R, δ, 4)
    for t in range(4):
        lp = np.where(ok & read[..., t], d["lp"][..., t], 0.0)
        f[f"logp_digit{t + 1}"] = np.where(new, 0.0, lp)
        f[f"logp_digit{t + 1}_new"] = np.where(new, lp, 0.0)
    for L in range(4):
        f[f"new_prefix_len{L}"] = new & (d["plen"] == L)
    return np.stack([np.asarray(v, np.float32) for v in f.values()], -1), list(f)


def fit_listwise(X: np.ndarray, items: np.ndarray, target: np.ndarray, l2: float = 1e-3):
    """Weights w (F,) of score = ((X - mu) / sd) @ w maximising the softmax likelihood of each row's target among its
    drafts (rows whose target was not drafted carry no signal and are skipped). Returns (w, mu, sd)."""
    hit = items == target[:, None]
    use = hit.any(1)
    Xt = torch.tensor(X[use])
    mu, sd = Xt.reshape(-1, X.shape[-1]).mean(0), Xt.reshape(-1, X.shape[-1]).std(0) + 1e-6
    Xs, y, ok = (Xt - mu) / sd, torch.tensor(hit[use].argmax(1)), torch.tensor(items[use] >= 0)
    w = torch.zeros(X.shape[-1], dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy((Xs @ w).masked_fill(~ok, -1e9), y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), mu, sd


def learned_score(X, w, mu, sd) -> np.ndarray:
    return (((torch.tensor(X) - mu) / sd) @ w).numpy()


def cross_validated(d: dict, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each row scored by the listwise re-ranker fitted on the other folds."""
    X, _ = features(d)
    fold = np.random.default_rng(seed).integers(0, folds, len(X))
    S = np.zeros(X.shape[:2], np.float32)
    for f in range(folds):
        w, mu, sd = fit_listwise(X[fold != f], d["items"][fold != f], d["target"][fold != f])
        S[fold == f] = learned_score(X[fold == f], w, mu, sd)
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
    X, names = features(dv)
    w, mu, sd = fit_listwise(X, dv["items"], dv["target"])
    out["learned_weights_per_unit"] = dict(zip(names, (w / sd).tolist()))
    path = Path(a.out) / "rerank.json"
    write(out, path, t0, b.device)  # valid first: scoring test takes longer
    if a.test:
        dt = draft_and_score(b, a.drafter, b.ds.rows("test"), a.delta)
        out["test"]["drafter"] = brief(evaluate_order(dt, dt["ds"]))
        out["test"]["V"] = brief(evaluate_order(dt, dt["v"]))
        rules_t = fixed_rules(dt)
        for fam, best in out["chosen"].items():
            out["test"][f"{fam} ({best})"] = brief(evaluate_order(dt, rules_t[fam][best]))
        out["test"]["learned (fitted on valid)"] = brief(evaluate_order(dt, learned_score(features(dt)[0], w, mu, sd)))
    write(out, path, t0, b.device)
    v = out["valid"]
    print(f"valid: drafter {objective(v['drafter']):.4f}, learned (CV) {objective(v['learned_cv']):.4f}, "
          + ", ".join(f"{f} {objective(v[f][out['chosen'][f]]):.4f}" for f in rules)
          + f"; perfect re-ranker R@50 {v['perfect_reranker_recall@50']:.4f} -> {path}")


if __name__ == "__main__":
    main()
