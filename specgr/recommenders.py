"""Method name -> recommender callable for the shared evaluator (specgr.evaluate). One place, used by the CLI,
the pipeline, the notebooks and the app.

methods: tiger, specgr++, specgr-aux, specgr-knn, drafter-encoder, drafter-aux, drafter-knn, sasrec
"""

from __future__ import annotations

from dataclasses import replace

import torch

SPECGR_METHODS = {"specgr++": "encoder", "specgr-aux": "aux", "specgr-knn": "knn"}
DRAFTER_METHODS = {"drafter-encoder": "encoder", "drafter-aux": "aux", "drafter-knn": "knn"}
METHODS = ("tiger", *SPECGR_METHODS, *DRAFTER_METHODS, "sasrec")


def make_recommender(bundle, method: str, cfg=None, k: int = 50, num_beams: int = 50, sasrec=None,
                     exclude_history: bool = False):
    """-> fn(history (B,H), hist_len (B,)) -> (items (B,k), extras {name: (B,)}).

    cfg: a SpecGRConfig for the specgr-* methods (default: the bundle's tuned defaults for that drafter).
    sasrec: a trained SASRecDrafter for method "sasrec" (the baseline is not part of a bundle).
    exclude_history: the evaluation protocol that never recommends an item of the user's own history (targets never
    repeat in these splits), applied to every method alike: drafters and SASRec exclude the history from their
    search, SpecGR drafts and fills without it (SpecGRConfig.exclude_history), TIGER's beam keeps the best k of its
    k + H beams that are not in the history.
    """
    if method in SPECGR_METHODS:
        rec = bundle.specgr(SPECGR_METHODS[method], cfg)
        if rec.cfg.top_k != k or rec.cfg.exclude_history != exclude_history:
            rec.cfg = replace(rec.cfg, top_k=k, exclude_history=exclude_history)

        def fn(h, hl):
            r = rec.recommend(h, hl, k=k)
            drafted = r.n_drafted.clamp(min=1).float()
            return r.items, {"rounds": r.n_rounds, "accepted": r.n_accepted.clamp(max=k),
                             "acceptance_rate": r.n_accepted.float() / drafted, "drafted": r.n_drafted}
        fn.recommender = rec
        return fn
    if method == "tiger":
        def fn(h, hl):
            extra = h.shape[1] if exclude_history else 0
            items = fn.recommender.recommend(h, hl, k=k + extra).items
            return drop_history(items, h, k) if exclude_history else items
        fn.recommender = bundle.tiger_only(num_beams=num_beams)
        return fn
    if method in DRAFTER_METHODS or method == "sasrec":
        if method == "sasrec" and sasrec is None:
            raise ValueError("method 'sasrec' needs a trained SASRec (pass --sasrec RUN_DIR; the pipeline trains it)")
        d = sasrec if method == "sasrec" else bundle.drafter(DRAFTER_METHODS[method])
        return lambda h, hl: d.draft(h, hl, k, exclude=h if exclude_history else None)[0]
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def drop_history(items: torch.Tensor, history: torch.Tensor, k: int) -> torch.Tensor:
    """items (B, M) ranked ids, history (B, H) (-1 padded) -> (B, k): the best k items not in the history, in order
    (-1 padded when fewer remain)."""
    bad = (items < 0) | (items[:, :, None] == history.to(items.device)[:, None, :]).any(2)
    order = torch.sort(bad.to(torch.uint8), dim=1, stable=True).indices[:, :k]
    return items.gather(1, order).masked_fill(bad.gather(1, order), -1)


@torch.no_grad()
def validate_history(history, hist_len, n_items: int):
    """Clear errors for bad input before any model sees it (empty histories, unknown item ids)."""
    history = torch.as_tensor(history)
    hist_len = torch.as_tensor(hist_len)
    if (hist_len <= 0).any():
        raise ValueError("empty history: SpecGR needs at least one item the user interacted with")
    H = history.shape[1]
    real = torch.arange(H)[None] < hist_len[:, None]
    bad = real & ((history < 0) | (history >= n_items))
    if bad.any():
        ids = history[bad].unique()[:5].tolist()
        raise ValueError(f"unknown item ids {ids}: valid ids are 0..{n_items - 1} (add new items with "
                         "Bundle.add_item first)")
