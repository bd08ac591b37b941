"""The learned final ranking (beyond the paper, docs/METHOD.md §9): score = w · features(item), fitted on valid.

The paper ranks the final list by V alone; the "fair" settings add w × drafter score. Both are one point of a linear
family over what the loop already knows of each item: the drafter's score D, V, whether the item is new, each digit's
log-probability (split in-sample / new, counting only the m digits V reads, so a new item is never charged for digits no
training item had) and the new item's longest in-sample prefix. `fit_listwise` picks w on valid by the softmax
likelihood of each user's target among its drafts (a listwise objective: only each user's own order matters).

Every score here is compared only within one user's list, so a per-user constant never changes a ranking: the weights
are "per unit" of the raw features, and D needs no per-user centring.
"""

from __future__ import annotations

import numpy as np
import torch

from specgr.models.scoring import candidate_lengths, digit_logprobs, length_normalized
from specgr.sid.semantic_ids import N_DIGITS

FEATURES = ("drafter_score", "V", "new",
            *(f"logp_digit{t}" for t in range(1, N_DIGITS + 1)),
            *(f"logp_digit{t}_new" for t in range(1, N_DIGITS + 1)),
            *(f"new_prefix_len{p}" for p in range(N_DIGITS)))


def candidate_features(items: torch.Tensor, drafter_score: torch.Tensor, lp: torch.Tensor, m: torch.Tensor,
                       prefix_len: torch.Tensor, n_in_sample: int) -> torch.Tensor:
    """items (..., R) ids (-1 pad), drafter_score (..., R), lp (..., R, 4) digit log-probs, m (..., R) the digits V
    averages (`candidate_lengths`), prefix_len (N,) of the catalog -> (..., R, len(FEATURES)) fp32, 0 at pads."""
    ok = items >= 0
    new = (items >= n_in_sample) & ok
    lp = lp.float()
    read = torch.arange(N_DIGITS, device=lp.device) < m[..., None]  # (..., R, 4): the digits V reads
    lp = torch.where(read & ok[..., None], lp, 0.0)
    plen = prefix_len.to(items.device)[items.clamp(min=0)]
    f = [torch.where(ok, drafter_score.float(), 0.0), torch.where(ok, length_normalized(lp, m.clamp(min=1)), 0.0),
         new.float()]
    f += [torch.where(new, 0.0, lp[..., t]) for t in range(N_DIGITS)]
    f += [torch.where(new, lp[..., t], 0.0) for t in range(N_DIGITS)]
    f += [(new & (plen == p)).float() for p in range(N_DIGITS)]
    return torch.stack(f, -1)


def learned_score(weights, feats: torch.Tensor) -> torch.Tensor:
    """weights (F,) per unit of each feature, feats (..., F) -> (...) fp32 scores."""
    return feats @ torch.as_tensor(weights, dtype=torch.float32, device=feats.device)


def fit_listwise(X: torch.Tensor, ok: torch.Tensor, hit: torch.Tensor, l2: float = 1e-3) -> tuple[float, ...]:
    """Weights (F,) per unit of the raw features, maximising the softmax likelihood of each row's target among its
    drafts. X (R, δ, F) features, ok (R, δ) real drafts, hit (R, δ) the draft is the row's target.

    Rows whose target was not drafted carry no signal and are skipped. Each feature is centred per row (the softmax
    ignores per-row shifts) and scaled to unit variance for the fit; the l2 penalty acts on those scaled weights.
    """
    use = hit.any(1)
    if not bool(use.any()):
        raise ValueError("no row has its target among its drafts: nothing to fit the learned final ranking on. "
                         "Fix: more fitting rows, or a larger fit draft size (tune.learned_fit_drafts).")
    X, ok, y = X[use].float(), ok[use], hit[use].float().argmax(1)
    okf = ok[..., None].float()
    Xc = (X - (X * okf).sum(1, keepdim=True) / okf.sum(1, keepdim=True).clamp(min=1)) * okf
    sd = (Xc.pow(2).sum((0, 1)) / okf.sum().clamp(min=1)).sqrt() + 1e-6
    Xs = Xc / sd
    w = torch.zeros(X.shape[-1], requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy((Xs @ w).masked_fill(~ok, -1e9), y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return tuple(float(x) for x in (w.detach() / sd))


@torch.no_grad()
def first_round(model, drafter, sids, rows, draft_size: int, length_rule: str, min_len: int,
                exclude_history: bool = True, batch_size: int = 256, autocast: bool = True) -> dict:
    """What round 1 of the loop sees for every row: the drafter's top δ (the history excluded with exclude_history),
    verified teacher-forced. rows: Rows (history, hist_len, target). Returns host tensors items (R, δ) (-1 pad),
    drafter_score (R, δ), lp (R, δ, 4), m (R, δ), features (R, δ, F), hit (R, δ) (draft == target)."""
    from specgr.speculate import steps

    dev = sids.tokens.device
    out = {k: [] for k in ("items", "drafter_score", "lp", "m", "features")}
    for s in range(0, len(rows.target), batch_size):
        h = torch.as_tensor(np.asarray(rows.history[s:s + batch_size]), device=dev).long()
        hl = torch.as_tensor(np.asarray(rows.hist_len[s:s + batch_size]), device=dev).long()
        ids, ds = drafter.draft(h, hl, draft_size, exclude=h if exclude_history else None)
        ids, ds = ids.to(dev), ds.to(dev).float()
        with steps.autocast(dev, autocast):
            enc, mask, _ = steps.encode(model, sids, h, hl)
            lp = digit_logprobs(model, enc, mask, sids.tokens[ids.clamp(min=0)]).float()
        m = candidate_lengths(ids.clamp(min=0), sids.n_in_sample, length_rule, sids.prefix_len, min_len)
        feats = candidate_features(ids, ds, lp, m, sids.prefix_len, sids.n_in_sample)
        for k, v in zip(out, (ids, ds.masked_fill(ids < 0, -np.inf), lp, m, feats)):
            out[k].append(v.cpu())
    r = {k: torch.cat(v) for k, v in out.items()}
    r["hit"] = r["items"] == torch.as_tensor(np.asarray(rows.target)).long()[:, None]
    return r


def fit_final_weights(model, drafter, sids, rows, draft_size: int, length_rule: str, min_len: int,
                      exclude_history: bool = True, batch_size: int = 256) -> tuple[tuple[float, ...], dict]:
    """Fit the learned final ranking on `rows` (valid rows) from round-1 drafts: (weights, record) where the record
    has the rows used, how many of them had their target drafted, and the weights by feature name."""
    d = first_round(model, drafter, sids, rows, draft_size, length_rule, min_len, exclude_history, batch_size)
    w = fit_listwise(d["features"], d["items"] >= 0, d["hit"])
    return w, {"rows": len(d["items"]), "rows_with_target_drafted": int(d["hit"].any(1).sum()),
               "draft_size": draft_size, "weights": dict(zip(FEATURES, w))}
