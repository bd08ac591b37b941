"""Splits: the paper's global timestamp split (default) and TIGER's leave-one-out; item-id remap; accounting.

Every interaction becomes one evaluation row whose history is all of the user's earlier items (any split), truncated to
the last `max_history`. A user's first interaction has an empty history and is no row. In-sample items are exactly the
items that appear as a train target; they get ids 0..n_in_sample-1, every other item is unseen and comes after.
Nothing is dropped silently: each drop is counted in the accounting table with its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")


@dataclass
class SplitConfig:
    method: str = "timestamp"  # "timestamp" (paper), "loo" (TIGER), "upstream" (split column given)
    valid_quantile: float = 0.8  # timestamp split: interactions with ts >= this quantile go to valid...
    test_quantile: float = 0.9  # ...and ts >= this one to test
    max_history: int = 20

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SplitResult:
    items: pd.DataFrame  # item_id, raw_id, text, first_ts, in_sample, first_split (row index = item_id)
    rows: dict[str, dict[str, np.ndarray]]  # split -> {user, history, hist_len, target, ts}
    n_in_sample: int
    cutoffs: dict[str, int | None]
    accounting: list[dict]


class _Ledger:
    """Counts what comes in, what is kept and what is dropped, with the reason."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, stage: str, what: str, count: int, reason: str = ""):
        self.rows.append({"stage": stage, "what": what, "count": int(count), "reason": reason})


def _assign(inter: pd.DataFrame, cfg: SplitConfig) -> tuple[np.ndarray, dict]:
    if cfg.method == "timestamp":
        if not 0 < cfg.valid_quantile < cfg.test_quantile < 1:
            raise ValueError(f"need 0 < valid_quantile < test_quantile < 1, got {cfg.valid_quantile}, "
                             f"{cfg.test_quantile}")
        ts = inter["ts"].to_numpy()
        cv = int(np.quantile(ts, cfg.valid_quantile, method="higher"))
        ct = int(np.quantile(ts, cfg.test_quantile, method="higher"))
        split = np.where(ts >= ct, 2, np.where(ts >= cv, 1, 0))
        return split, {"valid_ts": cv, "test_ts": ct}
    if cfg.method == "loo":
        # inter is sorted by (user, ts, pos): the last interaction of each user is test, the one before is valid
        rank_from_end = inter.groupby("user", sort=False).cumcount(ascending=False).to_numpy()
        split = np.where(rank_from_end == 0, 2, np.where(rank_from_end == 1, 1, 0))
        return split, {"valid_ts": None, "test_ts": None}
    if cfg.method == "upstream":
        if "split" not in inter:
            raise ValueError("split method 'upstream' needs a 'split' column (train/valid/test)")
        split = inter["split"].map({s: i for i, s in enumerate(SPLITS)}).to_numpy()
        if np.isnan(split.astype(float)).any():
            raise ValueError("upstream split column holds values other than train/valid/test")
        return split.astype(np.int64), {"valid_ts": None, "test_ts": None}
    raise ValueError(f"unknown split method {cfg.method!r}; use timestamp, loo or upstream")


def split_interactions(inter: pd.DataFrame, items: pd.DataFrame, cfg: SplitConfig) -> SplitResult:
    """inter: columns user, item, ts (s), optional pos (tie-break) and split; items: raw_id, text."""
    led = _Ledger()
    inter = inter.copy()
    if "pos" not in inter:
        inter["pos"] = np.arange(len(inter))
    led.add("interactions", "in", len(inter))

    known = inter["item"].isin(set(items["raw_id"]))
    led.add("interactions", "dropped", (~known).sum(), "item has no metadata/text row")
    inter = inter[known]

    inter = inter.sort_values(["user", "ts", "pos"], kind="stable")
    dup = inter.duplicated(["user", "item"], keep="first")
    led.add("interactions", "dropped", dup.sum(), "repeat of an earlier (user, item) interaction; earliest kept")
    inter = inter[~dup].reset_index(drop=True)
    led.add("interactions", "kept", len(inter))

    split, cutoffs = _assign(inter, cfg)

    # item remap: in-sample items (train targets) first, by first train-target time; then the rest by first time seen
    users = inter["user"].to_numpy()
    new_user = np.r_[True, users[1:] != users[:-1]]  # first interaction of each user: empty history, not a target
    is_target = ~new_user
    raw_item = inter["item"].to_numpy()
    ts = inter["ts"].to_numpy()
    train_t = is_target & (split == 0)
    first_train = pd.Series(ts[train_t]).groupby(raw_item[train_t]).min()
    first_any = pd.Series(ts).groupby(raw_item).min()
    target_split = pd.Series(split[is_target]).groupby(raw_item[is_target]).min()
    in_ids = first_train.reset_index().sort_values([0, "index"], kind="stable")["index"].to_list()
    rest = first_any.drop(index=in_ids).reset_index().sort_values([0, "index"], kind="stable")["index"].to_list()
    order = in_ids + rest
    n_in = len(in_ids)
    id_of = {r: i for i, r in enumerate(order)}

    text = items.drop_duplicates("raw_id").set_index("raw_id")["text"]
    unused = len(text) - len(order)
    led.add("items", "in", len(text))
    led.add("items", "dropped", unused, "item has no kept interaction")
    led.add("items", "kept", len(order))
    fs = target_split.reindex(order)
    item_df = pd.DataFrame({
        "item_id": np.arange(len(order), dtype=np.int64),
        "raw_id": order,
        "text": text.reindex(order).fillna("").to_numpy(),
        "first_ts": first_any.reindex(order).to_numpy().astype(np.int64),
        "in_sample": np.arange(len(order)) < n_in,
        "first_split": [SPLITS[int(s)] if s == s else "never_target" for s in fs.to_numpy()],
    })

    # rows: history = previous items of the same user, last max_history, chronological, padded with -1
    item = np.fromiter((id_of[r] for r in raw_item), dtype=np.int64, count=len(raw_item))
    user_codes, _ = pd.factorize(users)
    start = np.maximum.accumulate(np.where(new_user, np.arange(len(item)), 0))
    H = cfg.max_history
    idx = np.arange(len(item))
    n_prev = idx - start
    hist = np.full((len(item), H), -1, dtype=np.int64)
    hl = np.minimum(n_prev, H)
    for k in range(1, H + 1):  # k-th most recent previous item goes to column hl-k
        ok = n_prev >= k
        ok &= hl - k >= 0
        hist[ok, (hl - k)[ok]] = item[idx[ok] - k]
    led.add("rows", "in", len(item), "one candidate row per kept interaction")
    led.add("rows", "dropped", new_user.sum(), "user's first interaction: empty history")
    led.add("rows", "truncated", (n_prev > H).sum(), f"history longer than {H}: kept the last {H} items")
    rows = {}
    for s, name in enumerate(SPLITS):
        m = is_target & (split == s)
        rows[name] = {"user": user_codes[m].astype(np.int64), "history": hist[m], "hist_len": hl[m].astype(np.int64),
                      "target": item[m], "ts": ts[m].astype(np.int64)}
        led.add("rows", f"kept:{name}", m.sum())
        if name != "train":
            led.add("rows", f"{name}:unseen_target", (item[m] >= n_in).sum(), "target is not a train target")
    return SplitResult(item_df, rows, n_in, cutoffs, led.rows)
