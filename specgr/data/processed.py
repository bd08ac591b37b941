"""The processed on-disk format, `data/processed/<name>/` (format version 1; see docs/DATA_FORMAT.md).

manifest.json, items.parquet, rows_{train,valid,test}.npz, embeddings/<model>.npy, sid/<tokenizer>.npz.

A folder with a manifest.json is complete: `write_processed` builds the whole folder beside its target, writes the
manifest last and then renames the folder into place, so an interrupted `specgr prepare` leaves no manifest behind
(and `make data` runs it again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from specgr.checkpoint import read_json
from specgr.data.ref import DatasetRef

FORMAT_VERSION = 1
DEFAULT_ROOT = Path("data/processed")
MANIFEST = "manifest.json"


@dataclass
class Rows:
    """One split's evaluation rows. history: (R, H) item ids, left-aligned chronological, -1 padded."""

    user: np.ndarray  # (R,)
    history: np.ndarray  # (R, H)
    hist_len: np.ndarray  # (R,)
    target: np.ndarray  # (R,)
    ts: np.ndarray  # (R,)

    def __len__(self) -> int:
        return len(self.target)

    def subset(self, idx) -> "Rows":
        return Rows(self.user[idx], self.history[idx], self.hist_len[idx], self.target[idx], self.ts[idx])


def model_slug(model_name: str) -> str:
    return model_name.replace("/", "__")


class ProcessedDataset:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not mf.exists():
            name = self.path.name
            raise FileNotFoundError(f"no processed dataset at {self.path}. Fix: run `specgr prepare --dataset {name}` "
                                    f"(with SPECGR_DATA_MIRROR=<folder> or --mirror for a local copy).")
        self.manifest = read_json(mf, f"re-run `specgr prepare --dataset {self.path.name}`.")
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path} has format version {self.manifest.get('format_version')}, this specgr "
                             f"reads {FORMAT_VERSION}. Fix: re-run `specgr prepare --dataset {self.path.name}`.")
        self.items = pd.read_parquet(self.path / "items.parquet")
        self._rows: dict[str, Rows] = {}

    @classmethod
    def load(cls, path: str | Path) -> "ProcessedDataset":
        return cls(path)

    @classmethod
    def load_by_name(cls, name: str, root: str | Path = DEFAULT_ROOT) -> "ProcessedDataset":
        return cls(Path(root) / name)

    # ---- basic facts
    @property
    def name(self) -> str:
        """The dataset's name: its folder, what --dataset names everywhere (specgr.data.ref)."""
        return self.path.name

    @property
    def ref(self) -> DatasetRef:
        return DatasetRef.from_manifest(self.manifest, self.path)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_in_sample(self) -> int:
        return int(self.manifest["n_in_sample"])

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def titles(self) -> list[str]:
        return self.items["text"].tolist()

    def rows(self, split: str) -> Rows:
        if split not in self._rows:
            f = self.path / f"rows_{split}.npz"
            if not f.exists():
                raise KeyError(f"no split {split!r} in {self.path}; have train, valid, test")
            z = np.load(f)
            # stored compactly (int32, compressed); models and metrics see int64
            self._rows[split] = Rows(*(z[k].astype(np.int64) for k in ("user", "history", "hist_len", "target", "ts")))
        return self._rows[split]

    def unseen_mask(self, rows: Rows) -> np.ndarray:
        return rows.target >= self.n_in_sample

    # ---- embeddings
    def embeddings_path(self, model_name: str) -> Path:
        return self.path / "embeddings" / f"{model_slug(model_name)}.npy"

    def embeddings(self, model_name: str | None = None) -> np.ndarray:
        model_name = model_name or self.manifest.get("text_model")
        p = self.embeddings_path(model_name)
        if not p.exists():
            raise FileNotFoundError(f"no embeddings for {model_name!r} in {self.path}. Fix: `specgr prepare --dataset "
                                    f"{self.name} --text-model {model_name}`.")
        emb = np.load(p).astype(np.float32)  # may be stored as float16 to travel light
        if len(emb) < self.n_items:
            raise ValueError(f"{p} has {len(emb)} rows for {self.n_items} items; re-run `specgr prepare`.")
        return emb[: self.n_items]

    # ---- new items (inductive): appended, existing ids never change
    def add_items(self, raw_ids: list[str], texts: list[str], embeddings: np.ndarray | None = None,
                  model_name: str | None = None, persist: bool = False) -> np.ndarray:
        """Append brand-new items. Returns their new ids (n_items, n_items+1, ...)."""
        if len(raw_ids) != len(texts):
            raise ValueError("raw_ids and texts must have the same length")
        clash = set(raw_ids) & set(self.items["raw_id"])
        if clash:
            raise ValueError(f"items already in the catalog: {sorted(clash)[:5]}")
        start = self.n_items
        ids = np.arange(start, start + len(raw_ids), dtype=np.int64)
        new = pd.DataFrame({"item_id": ids, "raw_id": list(raw_ids), "text": list(texts), "first_ts": -1,
                            "in_sample": False, "first_split": "added"})
        self.items = pd.concat([self.items, new], ignore_index=True)
        if persist:
            if embeddings is not None:
                p = self.embeddings_path(model_name or self.manifest["text_model"])
                emb = np.concatenate([np.load(p)[:start], embeddings.astype(np.float32)])
                _replace_file(p, lambda tmp: np.save(tmp, emb))
            _replace_file(self.path / "items.parquet", lambda tmp: self.items.to_parquet(tmp, index=False))
            self.manifest["n_items"] = self.n_items
            write_manifest(self.path, self.manifest)
        return ids


def folder_ref(name: str, root: str | Path = DEFAULT_ROOT) -> DatasetRef:
    """The DatasetRef of --dataset NAME for the stages after prepare: from <root>/NAME/manifest.json when it is
    prepared, else what `specgr prepare --dataset NAME` would make (a name that is neither: FileNotFoundError)."""
    f = Path(root) / name / MANIFEST
    if f.exists():
        return DatasetRef.from_manifest(read_json(f, f"re-run `specgr prepare --dataset {name}`."), f.parent)
    try:
        return DatasetRef.resolve(name)
    except KeyError:
        raise FileNotFoundError(
            f"no processed dataset at {f.parent}, and {name!r} is not a registered dataset. Fix: prepare it, "
            f"`specgr prepare --dataset {name} --interactions FILE.csv --items FILE.csv` for your own catalog "
            "(`specgr datasets` lists the registered ones), or pass the right --dataset / --data-root.") from None


def fingerprint(items: pd.DataFrame, rows: dict[str, dict[str, np.ndarray]], n_in_sample: int) -> str:
    """Hash of the item catalog order and the split targets: a checkpoint trained on another dataset won't match."""
    h = hashlib.sha256()
    h.update("\n".join(items["raw_id"].astype(str)).encode())
    h.update(str(n_in_sample).encode())
    for s in ("train", "valid", "test"):
        h.update(np.ascontiguousarray(rows[s]["target"]).tobytes())
    return h.hexdigest()[:16]


def _replace_file(path: Path, write) -> None:
    """write(tmp_path), then an atomic rename onto `path`: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a bare path
        write(f)
    os.replace(tmp, path)


def write_manifest(path: Path, manifest: dict) -> None:
    _replace_file(Path(path) / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))


# what a processed dataset folder may hold; anything else means the folder is not ours to replace
_PROCESSED_ENTRIES = {MANIFEST, "items.parquet", "rows_train.npz", "rows_valid.npz", "rows_test.npz", "embeddings", "sid",
                      f".{MANIFEST}.tmp", ".items.parquet.tmp"}


def staging_path(path: Path) -> Path:
    """Where `write_processed` builds `path` before renaming it into place."""
    return path.with_name(f".{path.name}.partial")


def write_processed(path: Path, result, dataset: str, split_cfg: dict, extra: dict | None = None,
                    embeddings: dict[str, np.ndarray] | None = None, timings: dict | None = None) -> dict:
    """Write a SplitResult (and text embeddings {model name: (N, d) float32}) to `path`; returns the manifest.

    dataset: the source (a registered dataset, or your catalog's name); the manifest records the DatasetRef
    (source, split method, name = the folder's name).

    Atomic: everything is written into a staging folder beside `path`, manifest.json last, and the folder then
    replaces `path`. Stage outputs of an earlier folder for the same data (sid/, other models' embeddings) are kept;
    for other data they would be stale and are dropped. `timings` (seconds per step) go into the manifest, plus the
    time of this write.
    """
    path = Path(path)
    strange = sorted(c.name for c in path.iterdir() if c.name not in _PROCESSED_ENTRIES) if path.is_dir() else []
    if strange or (path.exists() and not path.is_dir()):
        raise ValueError(f"{path} exists and is not a processed dataset (it holds {strange[:3] or 'a file'}); "
                         "writing would replace it. Fix: choose another --out or --name, or move it away.")
    t0 = time.perf_counter()
    tmp = staging_path(path)
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted run
    tmp.mkdir(parents=True)
    result.items.to_parquet(tmp / "items.parquet", index=False)
    counts = {}
    for s, arr in result.rows.items():
        # int32 + compression keeps a processed dataset small enough to carry to a GPU machine
        np.savez_compressed(tmp / f"rows_{s}.npz", **{k: v.astype(np.int32) if k != "ts" else v for k, v in
                                                      arr.items()})
        n = len(arr["target"])
        nu = int((arr["target"] >= result.n_in_sample).sum())
        counts[s] = {"rows": n, "unseen_rows": nu, "unseen_share": (nu / n) if n else 0.0,
                     "users": int(len(np.unique(arr["user"])))}
    for model_name, emb in (embeddings or {}).items():
        if len(emb) != len(result.items):
            raise ValueError(f"embeddings for {model_name!r} have {len(emb)} rows for {len(result.items)} items")
        (tmp / "embeddings").mkdir(exist_ok=True)
        np.save(tmp / "embeddings" / f"{model_slug(model_name)}.npy", np.asarray(emb, np.float32))
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "ref": DatasetRef(dataset, split_cfg["method"], path.name).to_dict(),
        "split": split_cfg,
        "n_items": int(len(result.items)),
        "n_in_sample": int(result.n_in_sample),
        "n_unseen": int(len(result.items) - result.n_in_sample),
        "cutoffs": result.cutoffs,
        "counts": counts,
        "accounting": result.accounting,
        "fingerprint": fingerprint(result.items, result.rows, result.n_in_sample),
    }
    if extra:
        manifest.update(extra)
    if timings is not None:
        manifest["timings_s"] = {**{k: round(v, 2) for k, v in timings.items()},
                                 "write": round(time.perf_counter() - t0, 2)}
    write_manifest(tmp, manifest)  # last: a folder with a manifest is complete
    _publish(tmp, path, manifest["fingerprint"])
    return manifest


def _publish(tmp: Path, path: Path, new_fingerprint: str) -> None:
    if path.exists():
        try:
            old_fingerprint = json.loads((path / MANIFEST).read_text())["fingerprint"]
        except (OSError, ValueError, KeyError):
            old_fingerprint = None
        if old_fingerprint == new_fingerprint:
            _carry_over(path, tmp)
    replace_dir(tmp, path)


def replace_dir(tmp: Path, path: Path) -> None:
    """Rename the finished folder `tmp` onto `path`, the old one moved aside first and then removed: a reader sees
    the old folder or the new one, never a half-written one."""
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(path)


def _carry_over(src: Path, dst: Path) -> None:
    """Move what `src` has and `dst` lacks (sid/, other models' embeddings) into `dst`."""
    for child in src.iterdir():
        target = dst / child.name
        if not target.exists():
            child.rename(target)
        elif child.is_dir() and target.is_dir():
            _carry_over(child, target)
