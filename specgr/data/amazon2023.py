"""Amazon Reviews 2023 (the paper's data): 5-core timestamp CSVs with history, and the metadata JSONL.

CSV columns: user_id, parent_asin, rating, timestamp (ms), history (space-separated earlier parent_asins).
Rows are one per interaction with the upstream absolute-timestamp split (one file per split), so the interactions are
the union of the three files' (user_id, parent_asin, timestamp) and the split is the file.
Item text follows the paper (docs/METHOD.md §1): title, features, categories, description, each cleaned.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

FIELDS = ("title", "features", "categories", "description")
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r" {2,}")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def clean_text(s: str) -> str:
    s = html.unescape(s)
    s = _TAG.sub("", s)
    s = s.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    s = _NON_ASCII.sub(" ", s)
    return _SPACES.sub(" ", s).strip()


def format_field(v) -> str:
    """A list becomes its cleaned elements joined by ', ' plus '.'; a float str(x)+'.'; a string is cleaned."""
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        parts = [clean_text(str(x)) for x in v if str(x).strip()]
        return (", ".join(parts) + ".") if parts else ""
    if isinstance(v, float):
        return "" if v != v else str(v) + "."
    return clean_text(str(v))


def item_text(meta: dict) -> str:
    return "".join(f"{format_field(meta.get(f))} " for f in FIELDS if format_field(meta.get(f))).strip()


def load_meta(jsonl: Path, keep: set[str] | None = None) -> pd.DataFrame:
    """Stream the metadata JSONL (GBs for big domains) -> DataFrame(raw_id, text) for items in `keep`."""
    ids, texts = [], []
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            m = json.loads(line)
            pid = m.get("parent_asin")
            if pid is None or (keep is not None and pid not in keep):
                continue
            ids.append(pid)
            texts.append(item_text(m))
    return pd.DataFrame({"raw_id": ids, "text": texts})


def load_amazon2023(files: dict[str, Path], domain: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """files: {'train'|'valid'|'test': csv path, 'meta': jsonl path}. Returns (interactions with split, items)."""
    parts = []
    for split in ("train", "valid", "test"):
        df = pd.read_csv(files[split], usecols=["user_id", "parent_asin", "timestamp"], dtype={"user_id": str,
                         "parent_asin": str})
        df["split"] = split
        parts.append(df)
    inter = pd.concat(parts, ignore_index=True)
    inter = inter.rename(columns={"user_id": "user", "parent_asin": "item"})
    inter["ts"] = (inter.pop("timestamp").astype(np.int64) // 1000).astype(np.int64)  # ms -> s
    inter["pos"] = np.arange(len(inter))
    items = load_meta(files["meta"], keep=set(inter["item"]))
    return inter, items
