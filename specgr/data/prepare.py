"""`specgr prepare`: fetch (verified) -> parse -> split -> write data/processed/<name>/ -> embed item text."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from specgr.data.download import verified_path
from specgr.data.processed import ProcessedDataset, write_processed
from specgr.data.ref import DatasetRef
from specgr.data.registry import get_dataset
from specgr.data.split import SplitConfig, split_interactions
from specgr.text import DEFAULT_MODEL, embed_texts
from specgr.utils import resolve_device


def load_raw(name: str, mirror=None, interactions=None, items=None):
    """-> (interactions DataFrame, items DataFrame) of a registered dataset, or of your CSV files."""
    if interactions is not None:
        from specgr.data.csv_catalog import load_csv_catalog

        if items is None:
            raise ValueError("--interactions needs --items (item_id,text). Fix: pass both CSV files.")
        return load_csv_catalog(interactions, items)
    spec = get_dataset(name)
    if spec.format == "seqrecbench":
        from specgr.data.seqrecbench import load_seqrecbench

        return load_seqrecbench(verified_path(spec, "proc.zip", mirror))
    if spec.format == "amazon2023":
        from specgr.data.amazon2023 import load_amazon2023

        files = {}
        for fname in spec.files:
            key = "meta" if fname.startswith("meta_") else fname.split(".")[-2]
            files[key] = verified_path(spec, fname, mirror)
        return load_amazon2023(files, name)
    raise ValueError(f"unknown format {spec.format}")


def prepare(name: str, out_root: str | Path = "data/processed", split: str | None = None,
            valid_quantile: float = 0.8, test_quantile: float = 0.9, max_history: int = 20,
            text_model: str | None = DEFAULT_MODEL, mirror=None, interactions=None, items=None,
            device: str = "auto", out_name: str | None = None) -> tuple[ProcessedDataset, dict]:
    """Prepare `name` (a registered dataset, possibly with its split appended, or your catalog's name with
    interactions/items) into <out_root>/<ref.name>/ (specgr.data.ref.DatasetRef.resolve names the folder).

    Returns the processed dataset and a timings dict (seconds per step)."""
    ref = DatasetRef.resolve(name, split, out_name, own_catalog=interactions is not None)
    timings = {}
    t = time.perf_counter()
    inter, it = load_raw(ref.source, mirror, interactions, items)
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    cfg = SplitConfig(method=ref.split, valid_quantile=valid_quantile, test_quantile=test_quantile,
                      max_history=max_history)
    res = split_interactions(inter, it, cfg)
    timings["split"] = time.perf_counter() - t

    path = Path(out_root) / ref.name
    embeddings = {}
    if text_model:
        t = time.perf_counter()
        texts = res.items["text"].tolist()
        print(f"embedding {len(texts):,} item texts with {text_model} on {resolve_device(device)} (once: the result is "
              "cached)", flush=True)
        embeddings[text_model] = embed_texts(texts, text_model, device=device)
        timings["embed"] = time.perf_counter() - t
    # one atomic write, manifest last: an interrupted prepare leaves no manifest, so the next run starts over
    write_processed(path, res, ref.source, cfg.to_dict(), extra={"text_model": text_model}, embeddings=embeddings,
                    timings=timings)
    ds = ProcessedDataset.load(path)
    timings["write"] = ds.manifest["timings_s"]["write"]
    return ds, timings


def summary_rows(ds: ProcessedDataset) -> list[tuple[str, str]]:
    m = ds.manifest
    c = m["counts"]
    n_users = len(np.unique(np.concatenate([ds.rows(s).user for s in ("train", "valid", "test")])))
    rows = [("dataset", ds.name), ("source", ds.ref.source), ("split", ds.ref.split),
            ("users (with >=1 row)", f"{n_users:,}"), ("items", f"{m['n_items']:,}"),
            ("in-sample items", f"{m['n_in_sample']:,}"), ("unseen items", f"{m['n_unseen']:,}")]
    for s in ("train", "valid", "test"):
        rows.append((f"{s} rows", f"{c[s]['rows']:,}"))
    for s in ("valid", "test"):
        rows.append((f"{s} unseen-target share", f"{c[s]['unseen_share']:.1%}"))
    if m.get("cutoffs", {}).get("valid_ts"):
        import datetime as dt

        for k in ("valid_ts", "test_ts"):
            rows.append((k, dt.datetime.fromtimestamp(m["cutoffs"][k], dt.timezone.utc).strftime("%Y-%m-%d")))
    for k, v in m.get("timings_s", {}).items():
        rows.append((f"time: {k}", f"{v:.1f} s"))
    return rows
