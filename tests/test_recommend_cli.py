"""`specgr recommend` and `specgr add-items` on the tiny fixture bundle: files in, files out, through the front door."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from specgr.bundle import Bundle
from specgr.cli import main


@pytest.fixture(scope="module")
def env(tiny_pipeline, tmp_path_factory):
    p, bundle = tiny_pipeline
    work = tmp_path_factory.mktemp("rec")
    rows = p.ds.rows("test").subset(np.arange(6))
    raw = p.ds.items["raw_id"].to_numpy()
    inter = [(f"u{r}", int(i), t) for r in range(6) for t, i in enumerate(rows.history[r, : rows.hist_len[r]])]
    pd.DataFrame(inter, columns=["user_id", "item_id", "timestamp"]).sample(frac=1, random_state=0).to_csv(
        work / "histories.csv", index=False)  # shuffled rows: the timestamp column orders each history
    pd.DataFrame([(u, raw[i], t) for u, i, t in inter], columns=["user_id", "item_id", "timestamp"]).to_csv(
        work / "histories_raw.csv", index=False)
    return p, bundle, rows, work


def run(*argv) -> None:
    assert main([*argv, "--device", "cpu"]) == 0


def test_recommend_writes_top_k_with_score_source_and_is_new(env):
    p, bundle, rows, work = env
    out = work / "recs.csv"
    run("recommend", "--checkpoint", str(bundle), "--data-root", str(p.data_root), "--histories",
        str(work / "histories.csv"), "--out", str(out), "-k", "10", "--method", "specgr-aux")
    df = pd.read_csv(out, dtype={"user_id": str, "raw_id": str})
    assert list(df.columns) == ["user_id", "rank", "item_id", "raw_id", "score", "source", "is_new"]
    assert sorted(df["user_id"].unique()) == [f"u{r}" for r in range(6)]
    assert set(df["source"]) <= {"accepted", "fill", "beam"}
    assert (df["is_new"] == (df["item_id"] >= p.ds.n_in_sample)).all()
    assert (df["raw_id"] == p.ds.items["raw_id"].to_numpy()[df["item_id"]]).all()
    # the same lists as the library's front door gives for these histories
    want = Bundle.load(bundle, data_root=p.data_root).recommend(rows.history, rows.hist_len, "aux", top_k=10)
    for r in range(6):
        got = df[df["user_id"] == f"u{r}"].sort_values("rank")
        assert got["rank"].tolist() == list(range(1, len(got) + 1))
        np.testing.assert_array_equal(got["item_id"], want.items[r][want.items[r] >= 0].numpy())


def test_recommend_reads_raw_ids_and_writes_json_lines(env):
    p, bundle, _, work = env
    base = ["recommend", "--checkpoint", str(bundle), "--data-root", str(p.data_root), "-k", "5", "--method", "tiger"]
    run(*base, "--histories", str(work / "histories.csv"), "--out", str(work / "a.jsonl"))
    run(*base, "--histories", str(work / "histories_raw.csv"), "--raw-ids", "--out", str(work / "b.jsonl"))
    a, b = ([json.loads(x) for x in (work / f).read_text().splitlines()] for f in ("a.jsonl", "b.jsonl"))
    assert [x["user_id"] for x in b[::5]] == [f"u{r}" for r in range(6)]  # users in file order
    assert sorted(a, key=lambda x: (x["user_id"], x["rank"])) == b and len(a) == 30
    assert {x["source"] for x in a} == {"beam"} and not any(x["is_new"] for x in a)  # TIGER: never a new item


def test_add_items_gives_semantic_ids_without_retraining(env, tmp_path):
    p, bundle, rows, work = env
    b0 = Bundle.load(bundle, data_root=p.data_root)
    n0 = b0.ds.n_items
    pd.DataFrame({"item_id": ["brand-new-1", "brand-new-2"], "text": ["a topic 1 game", "a topic 2 game"]}).to_csv(
        tmp_path / "new.csv", index=False)
    emb = b0.text_embeddings()[[1, 2]]  # the fixture's text model is fake: give them neighbours' embeddings
    np.save(tmp_path / "new.npy", emb)
    out = tmp_path / "bundle+new"
    run("add-items", "--checkpoint", str(bundle), "--data-root", str(p.data_root), "--items",
        str(tmp_path / "new.csv"), "--embeddings", str(tmp_path / "new.npy"), "--out", str(out))
    assert not (bundle / "added_items.npz").exists()  # --out: the source bundle is untouched
    b = Bundle.load(out, data_root=p.data_root)
    assert b.ds.n_items == n0 + 2 and b.ds.items["raw_id"].tolist()[-2:] == ["brand-new-1", "brand-new-2"]
    np.testing.assert_array_equal(b.sids.codes[:n0].numpy(), b0.sids.codes.numpy())  # existing ids never move
    np.testing.assert_array_equal(b.sids.codes[n0:, :3].numpy(), b0.sid_tokenizer.encode(
        __import__("torch").as_tensor(emb)).numpy())  # the frozen tokenizer's codes
    ids, _ = b.drafter("encoder").draft(rows.history[:2], rows.hist_len[:2], k=b.ds.n_items)
    assert np.isin([n0, n0 + 1], ids.numpy()).all()  # draftable at once
    # a history that holds a new item, by its raw id
    (tmp_path / "h.csv").write_text("user_id,item_id\nu1,brand-new-1\n")
    run("recommend", "--checkpoint", str(out), "--data-root", str(p.data_root), "--histories",
        str(tmp_path / "h.csv"), "--raw-ids", "--out", str(tmp_path / "r.csv"), "-k", "5")
    assert len(pd.read_csv(tmp_path / "r.csv")) == 5
