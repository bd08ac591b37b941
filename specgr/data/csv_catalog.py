"""Bring your own catalog: two CSV files.

interactions.csv: user_id, item_id, timestamp (Unix seconds or any sortable integer)
items.csv:        item_id, text (title, optionally followed by a description)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REQUIRED = {"interactions": ("user_id", "item_id", "timestamp"), "items": ("item_id", "text")}


def read_csv(path: str | Path, kind: str, required=None) -> pd.DataFrame:
    """A CSV with string ids and the columns `kind` needs (REQUIRED[kind]); a missing file or column names the fix."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no {kind} CSV at {path}. Fix: pass the path of an existing file.")
    df = pd.read_csv(path, dtype={"user_id": str, "item_id": str})
    missing = [c for c in (required or REQUIRED[kind]) if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: the {kind} CSV lacks columns {missing}; it has {list(df.columns)}. Fix: give it "
                         f"the columns {', '.join(required or REQUIRED[kind])} (see notebooks/07_bring_your_own_catalog).")
    return df


def read_items(items: str | Path) -> pd.DataFrame:
    """items.csv (item_id, text) -> DataFrame raw_id, text."""
    it = read_csv(items, "items").rename(columns={"item_id": "raw_id"})[["raw_id", "text"]]
    it["text"] = it["text"].fillna("").astype(str)
    return it


def load_csv_catalog(interactions: str | Path, items: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    inter = read_csv(interactions, "interactions")
    inter = inter.rename(columns={"user_id": "user", "item_id": "item", "timestamp": "ts"})
    inter["ts"] = inter["ts"].astype("int64")
    return inter[["user", "item", "ts"]], read_items(items)
