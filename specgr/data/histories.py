"""The files of `specgr recommend`: user histories in, top-K recommendations out (docs/DATA_FORMAT.md).

Histories, one of:
- CSV `user_id,item_id[,timestamp]`, one interaction per row (the columns of a catalog's interactions.csv); a user's
  history is their rows in timestamp order (file order without a timestamp column);
- JSON lines `{"user_id": "u1", "history": [12, 40, 7]}`, oldest item first.
Item ids are the catalog's ids 0..N-1, or, with raw=True, the raw ids of its items.csv (ProcessedDataset.items.raw_id).

Recommendations: one row per (user, rank) with item_id, raw_id, score, source (accepted | fill | beam) and is_new
(the item is unseen in training, or added later), as CSV or JSON lines (by the file's suffix).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from specgr.data.csv_catalog import read_csv


@dataclass
class Histories:
    """users (R,) str; history (R, H) item ids, left-aligned chronological, padded with -1; hist_len (R,)."""

    users: list[str]
    history: np.ndarray
    hist_len: np.ndarray


def _suffix(path, what: str) -> str:
    s = Path(path).suffix.lower()
    if s not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: {what} must be a .csv or .jsonl file. Fix: rename it, or convert it.")
    return s


def read_histories(path, raw_ids: pd.Series, raw: bool = False, max_history: int = 20) -> Histories:
    """Read a histories file (see the module docstring). raw_ids: the catalog's raw ids, in item-id order.

    Histories longer than `max_history` keep their last items (what the models were trained on). Unknown ids and
    users without any item are ValueErrors naming them and the fix.
    """
    if _suffix(path, "--histories") == ".csv":
        df = read_csv(path, "histories", ("user_id", "item_id"))
        users = list(pd.unique(df["user_id"]))  # users in the order they first appear in the file
        if "timestamp" in df.columns:
            df = df.sort_values("timestamp", kind="stable")
        by_user = df.groupby("user_id", sort=False)["item_id"].apply(list)
        lists = [by_user[u] for u in users]
    else:
        users, lists = [], []
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                users.append(str(d["user_id"]))
                lists.append(list(d["history"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path} line {n}: not {{\"user_id\": ..., \"history\": [...]}} ({e}). Fix: one "
                                 "JSON object per line with user_id and history.") from None
    pos = {str(r): i for i, r in enumerate(raw_ids)} if raw else None  # raw id -> item id
    ids = [_to_item_ids(items, len(raw_ids), pos, path, u) for u, items in zip(users, lists)]
    hist_len = np.array([min(len(h), max_history) for h in ids], np.int64)
    history = np.full((len(ids), max_history), -1, np.int64)
    for r, h in enumerate(ids):
        if len(h):
            history[r, : hist_len[r]] = h[-max_history:]
    empty = [u for u, n in zip(users, hist_len) if n == 0]
    if empty:
        raise ValueError(f"{path}: users {empty[:5]} have an empty history. Fix: give each user at least one item.")
    if not users:
        raise ValueError(f"{path} holds no history. Fix: one row per interaction (CSV) or one user per line (JSONL).")
    return Histories([str(u) for u in users], history, hist_len)


def _to_item_ids(items: list, n_items: int, pos: dict[str, int] | None, path, user) -> list[int]:
    """One user's items as item ids: through `pos` (raw id -> item id) for raw ids, else checked whole numbers."""
    if pos is not None:
        unknown = [i for i in items if str(i) not in pos]
        if unknown:
            raise ValueError(f"{path}: user {user}: raw ids {unknown[:5]} are not in the catalog. Fix: add new items "
                             "first (`specgr add-items`), or drop --raw-ids if the file holds item ids.")
        return [pos[str(i)] for i in items]
    try:
        out = [int(i) for i in items]
    except (TypeError, ValueError):
        raise ValueError(f"{path}: user {user}: {items[:5]} are not item ids (whole numbers 0..N-1). Fix: pass "
                         "--raw-ids when the file holds your catalog's own ids.") from None
    bad = [i for i in out if not 0 <= i < n_items]
    if bad:
        raise ValueError(f"{path}: user {user}: unknown item ids {bad[:5]}: valid ids are 0..{n_items - 1}. "
                         "Fix: pass --raw-ids when the file holds your catalog's own ids, or add new items first "
                         "(`specgr add-items`).")
    return out


def write_recommendations(path, users: list[str], items: np.ndarray, scores: np.ndarray, sources: list[list[str]],
                          raw_ids: pd.Series, n_in_sample: int) -> int:
    """Write one row per (user, rank); items (R, K) item ids (-1 = empty slot, skipped), scores (R, K), sources (R, K)
    names. Written to a temporary file and renamed: `path` is never half-written. Returns the number of rows."""
    r, k = np.nonzero(items >= 0)
    ids = items[r, k]
    df = pd.DataFrame({"user_id": np.asarray(users, dtype=object)[r], "rank": k + 1, "item_id": ids,
                       "raw_id": raw_ids.to_numpy()[ids], "score": scores[r, k].astype(float),
                       "source": [sources[i][j] for i, j in zip(r, k)], "is_new": ids >= n_in_sample})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if _suffix(path, "--out") == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_json(tmp, orient="records", lines=True)
    tmp.replace(path)
    return len(df)
