"""Data pipeline: split invariants, checksums, missing data, Amazon 2023 parsing, prepare end to end."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

from conftest import make_tiny_interactions
from specgr.data.download import ChecksumError, DatasetNotFoundError, verified_path
from specgr.data.processed import ProcessedDataset
from specgr.data.registry import DatasetSpec
from specgr.data.split import SplitConfig, split_interactions


@pytest.fixture(scope="module")
def tiny_split():
    inter, items, _ = make_tiny_interactions()
    return inter, items, split_interactions(inter, items, SplitConfig())


def test_no_future_leakage(tiny_split):
    _, _, res = tiny_split
    tr, va, te = (res.rows[s] for s in ("train", "valid", "test"))
    assert tr["ts"].max() < res.cutoffs["valid_ts"] <= va["ts"].min()
    assert va["ts"].max() < res.cutoffs["test_ts"] <= te["ts"].min()


def test_history_is_strictly_earlier_and_truncated(tiny_split):
    inter, _, res = tiny_split
    raw = res.items["raw_id"].to_numpy()
    first_ts = inter.groupby(["user", "item"])["ts"].min()
    for s in ("train", "valid", "test"):
        r = res.rows[s]
        assert (r["hist_len"] >= 1).all() and (r["hist_len"] <= 20).all()
        for i in range(len(r["target"])):
            h = r["history"][i, : r["hist_len"][i]]
            assert (h >= 0).all() and (r["history"][i, r["hist_len"][i]:] == -1).all()
            assert r["target"][i] not in h
    # every history item of a user was interacted with no later than the target (same-day ties allowed)
    users = pd.factorize(inter.sort_values(["user", "ts"], kind="stable")["user"])[1]
    assert len(users) > 0
    assert first_ts.notna().all() and len(raw) == len(res.items)


def test_unseen_items_are_exactly_non_train_targets(tiny_split):
    _, _, res = tiny_split
    train_targets = set(res.rows["train"]["target"].tolist())
    assert train_targets == set(range(res.n_in_sample))
    assert res.items["in_sample"].sum() == res.n_in_sample
    for s in ("valid", "test"):
        t = res.rows[s]["target"]
        assert ((t >= res.n_in_sample) == ~np.isin(t, list(train_targets))).all()


def test_ids_are_stable_and_deterministic(tiny_split):
    inter, items, res = tiny_split
    shuffled = inter.sample(frac=1.0, random_state=3)
    res2 = split_interactions(shuffled, items.sample(frac=1.0, random_state=4), SplitConfig())
    assert res2.items["raw_id"].tolist() == res.items["raw_id"].tolist()
    for s in ("train", "valid", "test"):
        np.testing.assert_array_equal(res2.rows[s]["target"], res.rows[s]["target"])


def test_accounting_balances(tiny_split):
    inter, _, res = tiny_split
    acc = {(r["stage"], r["what"], r["reason"]): r["count"] for r in res.accounting}
    inter_in = acc[("interactions", "in", "")]
    dropped = sum(v for (st, w, _), v in acc.items() if st == "interactions" and w == "dropped")
    assert inter_in == len(inter)
    assert inter_in - dropped == acc[("interactions", "kept", "")]
    rows_in = acc[("rows", "in", "one candidate row per kept interaction")]
    rows_dropped = sum(v for (st, w, _), v in acc.items() if st == "rows" and w == "dropped")
    kept = sum(v for (st, w, _), v in acc.items() if st == "rows" and w.startswith("kept:"))
    assert rows_in - rows_dropped == kept


def test_duplicates_and_unknown_items_are_counted():
    inter = pd.DataFrame({"user": ["a", "a", "a", "a", "b", "b"], "item": ["x", "y", "x", "zz", "x", "y"],
                          "ts": [1, 2, 3, 4, 5, 6]})
    items = pd.DataFrame({"raw_id": ["x", "y"], "text": ["X", "Y"]})
    res = split_interactions(inter, items, SplitConfig(method="loo"))
    reasons = {r["reason"]: r["count"] for r in res.accounting if r["what"] == "dropped"}
    assert reasons["item has no metadata/text row"] == 1
    assert reasons["repeat of an earlier (user, item) interaction; earliest kept"] == 1


def test_leave_one_out(tiny_split):
    inter, items, _ = tiny_split
    res = split_interactions(inter, items, SplitConfig(method="loo"))
    # one valid and one test row per user with >= 3 interactions
    n_users = inter.groupby("user").size()
    assert len(res.rows["test"]["target"]) == (n_users >= 2).sum()
    assert len(np.unique(res.rows["test"]["user"])) == len(res.rows["test"]["user"])


def _make_zip(tmp_path, tamper=False):
    u2i = pd.DataFrame({"UserID": [100, 101], "ItemID": [[100, 101, 102], [101, 102]],
                        "Timestamp": [[1, 2, 3], [2, 4]]})
    i2t = pd.DataFrame({"ItemID": [100, 101, 102], "Title": ["a", "b", "c"]})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("user2item.pkl", pickle.dumps(u2i))
        z.writestr("item2title.pkl", pickle.dumps(i2t))
        z.writestr("summary.json", json.dumps({}))
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    d = tmp_path / "mirror" / "toy"
    d.mkdir(parents=True)
    (d / "proc.zip").write_bytes(data + (b"x" if tamper else b""))
    return DatasetSpec("toy", "seqrecbench", "toy", {"proc.zip": ("http://127.0.0.1:9/none", sha)})


def test_checksum_failure_is_clear_and_nothing_unpickled(tmp_path, monkeypatch):
    spec = _make_zip(tmp_path, tamper=True)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled before the checksum"))
    with pytest.raises(ChecksumError, match="NOT unpickled"):
        verified_path(spec, "proc.zip", mirror=tmp_path / "mirror")


def test_mirror_is_used_and_loads(tmp_path):
    from specgr.data.seqrecbench import load_seqrecbench

    spec = _make_zip(tmp_path)
    p = verified_path(spec, "proc.zip", mirror=tmp_path / "mirror", allow_download=False)
    inter, items = load_seqrecbench(p)
    assert len(inter) == 5 and list(items["text"]) == ["a", "b", "c"]


def test_missing_dataset_names_mirror_and_download(tmp_path, monkeypatch):
    spec = _make_zip(tmp_path)
    monkeypatch.delenv("SPECGR_DATA_MIRROR", raising=False)
    with pytest.raises(DatasetNotFoundError) as e:
        verified_path(spec, "proc.zip", cache=tmp_path / "empty", allow_download=False)
    assert "SPECGR_DATA_MIRROR" in str(e.value) and "download" in str(e.value)
    with pytest.raises(DatasetNotFoundError) as e:  # the download itself fails here (no network): still clear
        verified_path(spec, "proc.zip", cache=tmp_path / "empty")
    assert "SPECGR_DATA_MIRROR" in str(e.value)


def _write_amazon2023(tmp_path):
    """A few rows in the real Amazon Reviews 2023 file formats (timestamp_w_his CSV + meta JSONL)."""
    d = tmp_path / "a23"
    d.mkdir()
    hdr = "user_id,parent_asin,rating,timestamp,history\n"
    (d / "Video_Games.train.csv").write_text(hdr + "U1,B01,5.0,1500000000000,\nU1,B02,4.0,1500000100000,B01\n"
                                             "U2,B02,5.0,1500000200000,\nU2,B01,3.0,1500000300000,B02\n")
    (d / "Video_Games.valid.csv").write_text(hdr + "U1,B03,5.0,1630000000000,B01 B02\n")
    (d / "Video_Games.test.csv").write_text(hdr + "U2,B04,5.0,1660000000000,B02 B01\n")
    meta = [
        {"parent_asin": "B01", "title": "Mario &amp; Luigi", "features": ["Fun", "Co-op\nmode"],
         "categories": ["Video Games", "Nintendo"], "description": ["<b>Great</b> game"], "price": 9.9},
        {"parent_asin": "B02", "title": "Zelda", "features": [], "categories": [], "description": []},
        {"parent_asin": "B03", "title": "Caf\u00e9 Sim", "features": ["x"], "categories": [], "description": []},
        {"parent_asin": "B04", "title": "New Game", "features": [], "categories": [], "description": ["New!"]},
        {"parent_asin": "B99", "title": "Unused", "features": [], "categories": [], "description": []},
    ]
    (d / "meta_Video_Games.jsonl").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    return d


def test_amazon2023_fixture_parses(tmp_path):
    from specgr.data.amazon2023 import load_amazon2023

    d = _write_amazon2023(tmp_path)
    files = {s: d / f"Video_Games.{s}.csv" for s in ("train", "valid", "test")}
    files["meta"] = d / "meta_Video_Games.jsonl"
    inter, items = load_amazon2023(files, "amazon2023-games")
    assert len(inter) == 6 and set(inter["split"]) == {"train", "valid", "test"}
    assert inter["ts"].max() == 1660000000
    text = dict(zip(items["raw_id"], items["text"]))
    assert "B99" not in text  # only items with interactions are read
    assert text["B01"] == "Mario & Luigi Fun, Co-op mode. Video Games, Nintendo. Great game."
    assert text["B03"] == "Caf Sim x."  # non-ASCII replaced by a space, spaces collapsed
    res = split_interactions(inter, items, SplitConfig(method="upstream"))
    assert res.n_in_sample == 2  # B02 and B01 are train targets
    assert res.rows["test"]["target"].tolist() == [3]  # B04 is new


def test_prepare_end_to_end(tmp_path, monkeypatch):
    from specgr.cli import main

    inter, items, _ = make_tiny_interactions()
    inter.rename(columns={"user": "user_id", "item": "item_id", "ts": "timestamp"}).to_csv(tmp_path / "i.csv",
                                                                                          index=False)
    items.rename(columns={"raw_id": "item_id"}).to_csv(tmp_path / "items.csv", index=False)
    monkeypatch.setenv("SPECGR_EMB_CACHE", str(tmp_path / "cache"))
    rc = main(["prepare", "--dataset", "mine", "--interactions", str(tmp_path / "i.csv"), "--items",
               str(tmp_path / "items.csv"), "--out", str(tmp_path / "proc")])
    assert rc == 0
    ds = ProcessedDataset.load(tmp_path / "proc" / "mine")
    emb = ds.embeddings()
    assert emb.shape == (ds.n_items, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert ds.manifest["counts"]["test"]["rows"] == len(ds.rows("test"))


def test_missing_processed_dataset_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="specgr prepare --dataset nothing"):
        ProcessedDataset.load(tmp_path / "nothing")
