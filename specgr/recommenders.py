"""The front door for inference, used by the CLI, the pipeline, the notebooks and the app:

- `specgr_config`: the one place a SpecGRConfig is built (a bundle's tuned defaults, or a preset's, plus overrides);
- `validate_history`, `check_top_k`: bad input is a ValueError that names the fix, before any model sees it;
- `make_recommender`: method name -> recommender callable for the shared evaluator (specgr.evaluate).

methods: tiger, specgr++, specgr-aux, specgr-knn, drafter-encoder, drafter-aux, drafter-knn, sasrec
"""

from __future__ import annotations

from dataclasses import replace

import torch

SPECGR_METHODS = {"specgr++": "encoder", "specgr-aux": "aux", "specgr-knn": "knn"}
DRAFTER_METHODS = {"drafter-encoder": "encoder", "drafter-aux": "aux", "drafter-knn": "knn"}
METHODS = ("tiger", *SPECGR_METHODS, *DRAFTER_METHODS, "sasrec")
KNOBS = ("draft_size", "num_beams", "threshold", "top_k")  # δ, β, γ, K


def specgr_config(defaults: dict | None = None, drafter: str = "encoder", *, n_items: int | None = None,
                  vnew: bool = False, guided_redraft: bool | None = None, inductive: bool | None = None, **knobs):
    """A SpecGRConfig: `defaults` (a bundle's tuned values for `drafter`, or a preset's), then the `knobs` given
    (SpecGRConfig fields; None keeps the default), then the ablations (guided_redraft=False, inductive=False).

    vnew: the official v-new loop flags (SpecGRConfig.official_vnew) with the defaults' δ, β, γ, K and the knobs; the
    ablations still apply. Unknown fields, bad values and (with n_items) K larger than the catalog are ValueErrors
    naming the fix.
    """
    from specgr.config import from_dict
    from specgr.speculate import SpecGRConfig

    d = {**(defaults or {}), **{k: v for k, v in knobs.items() if v is not None}}
    if vnew:
        kind = "encoder" if drafter == "encoder" else "aux"  # prefix_len clamp: 3 for SpecGR++, 2 for the others
        unknown = sorted(set(d) - {f for f in SpecGRConfig.__dataclass_fields__})
        if unknown:
            raise ValueError(f"unknown SpecGRConfig keys {unknown}. Fix: use fields of specgr.speculate.SpecGRConfig.")
        cfg = SpecGRConfig.official_vnew(kind, **{k: d[k] for k in KNOBS if k in d})
    else:
        cfg = from_dict(SpecGRConfig, d)
    if guided_redraft is not None:
        cfg = cfg.replace(guided_redraft=guided_redraft)
    if inductive is not None:
        cfg = cfg.replace(inductive=inductive)
    if n_items is not None:
        check_top_k(cfg.top_k, n_items)
    return cfg


def check_top_k(k, n_items: int) -> int:
    """K must be a whole number in 1..n_items (a longer list than the catalog cannot be filled)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"K = {k!r} is not a list length. Fix: K must be a whole number >= 1.")
    if k > n_items:
        raise ValueError(f"K = {k} is more than the catalog's {n_items} items. Fix: ask for K <= {n_items}.")
    return k


@torch.no_grad()
def validate_history(history, hist_len, n_items: int) -> None:
    """Clear errors for bad input before any model sees it. history (B, H) item ids, left-aligned, -1 padded;
    hist_len (B,): shapes, empty histories and unknown item ids."""
    history, hist_len = torch.as_tensor(history), torch.as_tensor(hist_len)
    if history.ndim != 2 or hist_len.ndim != 1 or len(hist_len) != len(history):
        raise ValueError(f"history must be (B, H) item ids and hist_len (B,), got {tuple(history.shape)} and "
                         f"{tuple(hist_len.shape)}. Fix: one row per user, left-aligned, padded with -1.")
    if history.is_floating_point() or hist_len.is_floating_point():
        raise ValueError("history and hist_len must hold whole numbers (item ids, lengths). Fix: pass integer arrays.")
    empty = (hist_len <= 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"empty history in row(s) {empty[:5].tolist()}: SpecGR needs at least one item the user "
                         "interacted with. Fix: drop those rows, or give each at least one item.")
    H = history.shape[1]
    if (hist_len > H).any():
        raise ValueError(f"hist_len exceeds the {H} history columns. Fix: hist_len[i] = the number of real ids in "
                         "row i.")
    real = torch.arange(H, device=history.device)[None] < hist_len[:, None]
    bad = real & ((history < 0) | (history >= n_items))
    if bad.any():
        ids = history[bad].unique()[:5].tolist()
        raise ValueError(f"unknown item ids {ids}: valid ids are 0..{n_items - 1}. Fix: use the catalog's item ids "
                         "(or raw ids with `specgr recommend --raw-ids`), and add new items first (`specgr "
                         "add-items`, Bundle.add_items).")


def make_recommender(bundle, method: str, cfg=None, k: int = 50, num_beams: int = 50, sasrec=None,
                     exclude_history: bool = False):
    """-> fn(history (B,H), hist_len (B,)) -> (items (B,k), extras {name: (B,)}); every call validates its input.

    cfg: a SpecGRConfig for the specgr-* methods (default: the bundle's tuned defaults for that drafter).
    sasrec: a trained SASRecDrafter for method "sasrec" (the baseline is not part of a bundle; bundle may be None).
    exclude_history: the evaluation protocol that never recommends an item of the user's own history (targets never
    repeat in these splits), applied to every method alike: drafters and SASRec exclude the history from their
    search, SpecGR drafts and fills without it (SpecGRConfig.exclude_history), TIGER's beam keeps the best k of its
    k + H beams that are not in the history.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}. Fix: choose from {', '.join(METHODS)}.")
    n_items = bundle.ds.n_items if bundle is not None else getattr(sasrec, "n_items", None)
    if n_items is not None:
        check_top_k(k, n_items)

    def checked(run):
        def fn(h, hl):
            if n_items is not None:
                validate_history(h, hl, n_items)
            return run(h, hl)
        return fn

    if method in SPECGR_METHODS:
        rec = bundle.specgr(SPECGR_METHODS[method], cfg)
        if rec.cfg.top_k != k or rec.cfg.exclude_history != exclude_history:
            rec.cfg = replace(rec.cfg, top_k=k, exclude_history=exclude_history)

        def run(h, hl):
            r = rec.recommend(h, hl, k=k)
            drafted = r.n_drafted.clamp(min=1).float()
            return r.items, {"rounds": r.n_rounds, "accepted": r.n_accepted.clamp(max=k),
                             "acceptance_rate": r.n_accepted.float() / drafted, "drafted": r.n_drafted}
    elif method == "tiger":
        rec = bundle.tiger_only(num_beams=num_beams)

        def run(h, hl):
            extra = h.shape[1] if exclude_history else 0
            items = rec.recommend(h, hl, k=k + extra).items
            return drop_history(items, h, k) if exclude_history else items
    else:  # a drafter alone, or SASRec
        if method == "sasrec" and sasrec is None:
            raise ValueError("method 'sasrec' needs a trained SASRec. Fix: pass --sasrec RUN_DIR (the pipeline trains "
                             "it into runs/<dataset>/sasrec).")
        d = sasrec if method == "sasrec" else bundle.drafter(DRAFTER_METHODS[method])
        rec = None

        def run(h, hl):
            return d.draft(h, hl, k, exclude=h if exclude_history else None)[0]
    fn = checked(run)
    fn.recommender = rec
    return fn


def drop_history(items: torch.Tensor, history: torch.Tensor, k: int) -> torch.Tensor:
    """items (B, M) ranked ids, history (B, H) (-1 padded) -> (B, k): the best k items not in the history, in order
    (-1 padded when fewer remain)."""
    bad = (items < 0) | (items[:, :, None] == history.to(items.device)[:, None, :]).any(2)
    order = torch.sort(bad.to(torch.uint8), dim=1, stable=True).indices[:, :k]
    return items.gather(1, order).masked_fill(bad.gather(1, order), -1)
