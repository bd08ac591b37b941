"""An interrupted `specgr prepare` leaves no manifest.json, so the next `make demo` / `make data` prepares again; an
interrupted re-prepare leaves the earlier complete folder as it was."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_interactions

from specgr.data import prepare as prepare_mod
from specgr.data.processed import ProcessedDataset, staging_path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def catalog(tmp_path):
    inter, items, _ = make_tiny_interactions()
    inter.rename(columns={"user": "user_id", "item": "item_id", "ts": "timestamp"}).to_csv(tmp_path / "i.csv",
                                                                                          index=False)
    items.rename(columns={"raw_id": "item_id"}).to_csv(tmp_path / "items.csv", index=False)
    return tmp_path / "i.csv", tmp_path / "items.csv"


def fake_embed(texts, *a, **k):
    return np.tile(np.eye(8, dtype=np.float32)[0], (len(texts), 1))


def interrupted_embed(texts, *a, **k):
    raise KeyboardInterrupt  # Ctrl-C during the long embedding step


def run_prepare(out, catalog):
    return prepare_mod.prepare("mine", out, interactions=catalog[0], items=catalog[1], text_model=MODEL)


def make_would_prepare(data_root: Path) -> bool:
    """Does `make data` (the prerequisite of `make demo` and `make test`) run `specgr prepare` for this folder?"""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    r = subprocess.run(["make", "-n", "-C", str(ROOT), "data", "DATASET=mine", f"DATA_ROOT={data_root}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return "specgr prepare --dataset mine" in r.stdout


def test_interrupted_prepare_is_redone(tmp_path, catalog, monkeypatch):
    out = tmp_path / "processed"
    monkeypatch.setattr(prepare_mod, "embed_texts", interrupted_embed)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(out, catalog)
    assert not (out / "mine" / "manifest.json").exists(), "no manifest: the folder is not taken as done"
    assert make_would_prepare(out)
    with pytest.raises(FileNotFoundError, match="specgr prepare --dataset mine"):
        ProcessedDataset.load(out / "mine")

    monkeypatch.setattr(prepare_mod, "embed_texts", fake_embed)  # the next run completes
    ds, _ = run_prepare(out, catalog)
    assert ds.embeddings(MODEL).shape == (ds.n_items, 8)
    assert not staging_path(out / "mine").exists()
    assert not make_would_prepare(out)


def test_crash_after_the_split_writes_nothing(tmp_path, catalog, monkeypatch):
    """The old order wrote the manifest before embedding: a crash there left a folder that looked done."""
    out = tmp_path / "processed"
    monkeypatch.setattr(prepare_mod, "embed_texts", interrupted_embed)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(out, catalog)
    assert not (out / "mine").exists()


def test_interrupted_reprepare_keeps_the_complete_folder(tmp_path, catalog, monkeypatch):
    out = tmp_path / "processed"
    monkeypatch.setattr(prepare_mod, "embed_texts", fake_embed)
    ds, _ = run_prepare(out, catalog)
    (ds.path / "sid").mkdir()
    (ds.path / "sid" / "rqvae.npz").write_bytes(b"stage output")
    before = (ds.path / "manifest.json").read_text()

    monkeypatch.setattr(prepare_mod, "embed_texts", interrupted_embed)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(out, catalog)
    assert (ds.path / "manifest.json").read_text() == before
    assert ProcessedDataset.load(ds.path).embeddings(MODEL).shape == (ds.n_items, 8)

    # a completed re-prepare of the same data keeps the later stages' outputs
    monkeypatch.setattr(prepare_mod, "embed_texts", fake_embed)
    run_prepare(out, catalog)
    assert (ds.path / "sid" / "rqvae.npz").read_bytes() == b"stage output"
    assert not staging_path(ds.path).exists() and not (out / ".mine.old").exists()


def test_a_folder_that_is_not_a_dataset_is_never_replaced(tmp_path, catalog, monkeypatch):
    out = tmp_path / "processed"
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "notes.txt").write_text("mine")
    monkeypatch.setattr(prepare_mod, "embed_texts", fake_embed)
    with pytest.raises(ValueError, match="not a processed dataset"):
        run_prepare(out, catalog)
    assert (out / "mine" / "notes.txt").read_text() == "mine"
