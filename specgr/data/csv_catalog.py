"""Bring your own catalog: two CSV files.

interactions.csv: user_id, item_id, timestamp (Unix seconds or any sortable integer)
items.csv:        item_id, text (title, optionally followed by a description)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REQUIRED = {"interactions": ("user_id", "item_id", "timestamp"), "items": ("item_id", "text")}


def load_csv_catalog(interactions: str | Path, items: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    inter = pd.read_csv(interactions, dtype={"user_id": str, "item_id": str})
    it = pd.read_csv(items, dtype={"item_id": str})
    for name, df in (("interactions", inter), ("items", it)):
        missing = [c for c in REQUIRED[name] if c not in df.columns]
        if missing:
            raise ValueError(f"{name} CSV lacks columns {missing}; it needs {', '.join(REQUIRED[name])} "
                             f"(see notebooks/07_bring_your_own_catalog).")
    inter = inter.rename(columns={"user_id": "user", "item_id": "item", "timestamp": "ts"})
    inter["ts"] = inter["ts"].astype("int64")
    it = it.rename(columns={"item_id": "raw_id"})[["raw_id", "text"]]
    it["text"] = it["text"].fillna("").astype(str)
    return inter[["user", "item", "ts"]], it
