"""SeqRecBench `proc.zip`: `user2item.pkl` (UserID, ItemID list, Timestamp list) and `item2title.pkl`.

Only ever called on a checksum-verified zip (see `download.verified_path`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd


def _member(zf: zipfile.ZipFile, name: str) -> str:
    for m in zf.namelist():
        if m == name or m.endswith("/" + name):
            return m
    raise FileNotFoundError(f"{name} missing from {zf.filename}; members: {zf.namelist()}")


def load_seqrecbench(zip_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (interactions[user, item, ts, pos], items[raw_id, text]); ids as strings, ts in Unix seconds.

    `pos` is the position inside the user's upstream list: it breaks same-timestamp ties (day granularity).
    """
    with zipfile.ZipFile(zip_path) as zf:
        with zf.open(_member(zf, "user2item.pkl")) as f:
            u2i = pd.read_pickle(f)
        with zf.open(_member(zf, "item2title.pkl")) as f:
            i2t = pd.read_pickle(f)
    lens = u2i["ItemID"].map(len).to_numpy()
    inter = pd.DataFrame({
        "user": np.repeat(u2i["UserID"].astype(str).to_numpy(), lens),
        "item": np.concatenate(u2i["ItemID"].map(np.asarray).to_list()).astype(str),
        "ts": np.concatenate(u2i["Timestamp"].map(np.asarray).to_list()).astype(np.int64),
        "pos": np.concatenate([np.arange(n) for n in lens]).astype(np.int64),
    })
    items = pd.DataFrame({"raw_id": i2t["ItemID"].astype(str).to_numpy(),
                          "text": i2t["Title"].fillna("").astype(str).to_numpy()})
    return inter, items
