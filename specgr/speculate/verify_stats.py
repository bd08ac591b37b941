"""Why new items are (not) accepted: the verifier's score V of each row's TRUE target, in-sample vs unseen, by the
length of the target's longest in-sample SID prefix (specgr.sid.semantic_ids.SemanticIDs.prefix_len).

    table = target_score_table(model, sids, rows, device="cuda")
    table["unseen"]["prefix_len=2"]["paper"]["mean"]      # mean V under the paper's rule (3 digits for new items)
"""

from __future__ import annotations

import numpy as np
import torch

from specgr.speculate import steps


@torch.no_grad()
def target_score_table(model, sids, rows, device="cpu", batch_size: int = 1024) -> dict:
    """rows: anything with .history (R, H), .hist_len (R,), .target (R,). Returns {"in_sample"|"unseen":
    {"prefix_len=L": {"n", "paper": stats, "prefix_len": stats, "digits": [mean log p of digit 1..4]}}}, stats =
    mean and quantiles 10/50/90 of V."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    sids = sids.to(dev)
    V = {"paper": [], "prefix_len": []}
    digits = []
    for s in range(0, len(rows.target), batch_size):
        h = torch.as_tensor(np.asarray(rows.history[s:s + batch_size]), device=dev)
        hl = torch.as_tensor(np.asarray(rows.hist_len[s:s + batch_size]), device=dev)
        t = torch.as_tensor(np.asarray(rows.target[s:s + batch_size]), device=dev)[:, None]
        with steps.autocast(dev, True):
            _, _, state = steps.encode(model, sids, h, hl)
            for rule in V:
                V[rule].append(steps.verify(model, sids, state, t, rule, 1)[:, 0].float().cpu().numpy())
            from specgr.models.scoring import digit_logprobs

            digits.append(digit_logprobs(model, state, None, sids.tokens[t]).float()[:, 0].cpu().numpy())
    V = {k: np.concatenate(v) for k, v in V.items()}
    digits = np.concatenate(digits)
    target = np.asarray(rows.target)
    plen = sids.prefix_len.cpu().numpy()[target]
    out = {}
    for group, m in (("in_sample", target < sids.n_in_sample), ("unseen", target >= sids.n_in_sample)):
        out[group] = {}
        for L in sorted(set(plen[m].tolist())):
            sel = m & (plen == L)
            out[group][f"prefix_len={L}"] = {
                "n": int(sel.sum()),
                **{rule: _stats(V[rule][sel]) for rule in V},
                "digits": digits[sel].mean(0).round(4).tolist()}
    return out


def _stats(x: np.ndarray) -> dict:
    q = np.quantile(x, [0.1, 0.5, 0.9]) if len(x) else [float("nan")] * 3
    return {"mean": float(x.mean()) if len(x) else float("nan"), "q10": float(q[0]), "q50": float(q[1]),
            "q90": float(q[2])}
