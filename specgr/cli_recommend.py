"""Subcommands that use a trained bundle on your own files: recommend, add-items (registered by specgr.cli).

Both go through the library's front door: Bundle.recommend (validated input, the bundle's tuned defaults plus the
knobs given, specgr.recommenders.specgr_config) and Bundle.add_items_from_embeddings (the frozen tokenizer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specgr.cli_common import add_parser, bundle_args, print_table, specgr_knobs
from specgr.utils import resolve_device

DRAFTER_OF = {"specgr++": "encoder", "specgr-aux": "aux", "specgr-knn": "knn", "tiger": "tiger"}


def _overrides(a) -> dict:
    """The knobs given on the command line, as Bundle.recommend's overrides (what is not given keeps the bundle's)."""
    o = {k: v for k, v in (("draft_size", a.delta), ("num_beams", a.beta), ("threshold", a.gamma), ("top_k", a.k))
         if v is not None}
    if a.vnew:
        o["vnew"] = True
    if a.no_redraft:
        o["guided_redraft"] = False
    if a.no_inductive:
        o["inductive"] = False
    return o


def cmd_recommend(a):
    from specgr.bundle import Bundle
    from specgr.data.histories import read_histories, write_recommendations
    from specgr.distributed import get_rank, launched
    from specgr.evaluate import run_recommender
    from specgr.speculate import SOURCE_NAMES

    with launched(a.device) as device:  # under torchrun: one rank per GPU, users sharded, lists gathered
        b = Bundle.load(a.checkpoint, data_root=a.data_root, device=device)
        raw_ids = b.ds.items["raw_id"]
        h = read_histories(a.histories, raw_ids, raw=a.raw_ids, max_history=b.ds.manifest["split"]["max_history"])
        recommend = b.recommender(DRAFTER_OF[a.method], **_overrides(a))  # the knobs are checked here, once

        def fn(history, hist_len):
            r = recommend(history, hist_len)
            return r.items, {"scores": r.scores, "sources": r.sources}  # (B, K) each, gathered with the items

        items, per_slot, _ = run_recommender(fn, h, a.batch_size, device)
        if get_rank() != 0:  # every rank holds every list: one writes them
            return
        sources = [[SOURCE_NAMES[int(x)] for x in row] for row in per_slot["sources"]]
        n = write_recommendations(a.out, h.users, items, per_slot["scores"], sources, raw_ids, b.ds.n_in_sample)
        ok = items >= 0
        counts = {name: sum(row.count(name) for row in sources) for name in ("accepted", "fill", "beam")}
        print_table(f"specgr recommend: {a.method} on {b.ds.name}, {len(h.users):,} users -> {a.out}",
                    [("recommendations written", f"{n:,}"), *((f"source: {k}", f"{v:,}") for k, v in counts.items()),
                     ("new items among them", f"{int((items[ok] >= b.ds.n_in_sample).sum()):,}"),
                     ("device", str(b.device))], ("", "value"))


def cmd_add_items(a):
    import shutil

    from specgr.bundle import Bundle
    from specgr.checkpoint import read_config
    from specgr.data.csv_catalog import read_items

    items = read_items(a.items)
    if items.empty:
        raise ValueError(f"{a.items} lists no item. Fix: one row per new item, columns item_id,text.")
    empty = items.loc[items["text"].str.strip() == "", "raw_id"].tolist()
    dup = items.loc[items["raw_id"].duplicated(), "raw_id"].tolist()
    if empty or dup:
        raise ValueError(f"{a.items}: " + (f"items {empty[:5]} have no text" if empty else f"item ids {dup[:5]} "
                         "appear twice") + ". Fix: give every new item its own id and a title.")
    path = Path(a.checkpoint)
    if read_config(path) is None:
        raise FileNotFoundError(f"no bundle at {path} (no config.json). Fix: pass --checkpoint DIR of a bundle.")
    if a.out:
        if Path(a.out).exists():
            raise ValueError(f"{a.out} exists. Fix: choose a new --out folder, or leave --out out to add the items "
                             f"to {path} itself.")
        shutil.copytree(path, a.out)
        path = Path(a.out)
    device = resolve_device(a.device)
    b = Bundle.load(path, data_root=a.data_root, device=device)
    texts = items["text"].tolist()
    if a.embeddings:
        emb = np.load(a.embeddings)
    else:
        from specgr.text import embed_texts

        print(f"embedding {len(texts):,} item texts with {b.text_model} on {device}", flush=True)
        emb = embed_texts(texts, b.text_model, device=str(device), cache=False, progress=True)
    n0 = b.ds.n_items
    ids = b.add_items_from_embeddings(texts, emb, items["raw_id"].tolist())
    f = b.save_added_items()
    codes, deep = b.sids.codes[ids].tolist(), b.sids.prefix_len[ids].tolist()
    print_table(f"specgr add-items: {len(ids)} new items in {path} (catalog {n0:,} -> {b.ds.n_items:,} items)",
                [(i, r, "⟨" + ", ".join(map(str, c)) + "⟩", d) for i, r, c, d in
                 zip(ids.tolist(), items["raw_id"], codes, deep)][:20],
                ("item_id", "raw_id", "semantic id", "digits shared with in-sample ids"))
    print(f"kept in {f}; recommend them with `specgr recommend --checkpoint {path} ...` (no retraining)")


def register(sub):
    p = add_parser(sub, "recommend", "top-K recommendations for the user histories in a file (CSV or JSON lines), "
                   "with the score, source (accepted / fill / beam) and is-new flag of each")
    p.add_argument("--histories", required=True, help="CSV user_id,item_id[,timestamp] (one interaction per row) or "
                   "JSON lines {\"user_id\": ..., \"history\": [...]}; see docs/DATA_FORMAT.md")
    p.add_argument("--out", required=True, help="where the recommendations go: .csv or .jsonl, one row per (user, "
                   "rank)")
    p.add_argument("--raw-ids", action="store_true", help="the histories hold your catalog's own item ids (items.csv "
                   "item_id), not item ids 0..N-1")
    p.add_argument("--method", default="specgr++", choices=list(DRAFTER_OF), help="SpecGR with the SpecGR++, "
                   "SpecGR_Aux or semantic-KNN drafter, or plain TIGER beam search")
    bundle_args(p)
    specgr_knobs(p)
    p.set_defaults(fn=cmd_recommend)

    p = add_parser(sub, "add-items", "give brand-new items semantic ids with the bundle's frozen tokenizer (no "
                   "retraining); `specgr recommend` can then recommend them")
    p.add_argument("--items", required=True, help="CSV item_id,text (the columns of a catalog's items.csv)")
    p.add_argument("--out", default=None, help="write a copy of the bundle with the new items here (default: add them "
                   "to --checkpoint itself)")
    p.add_argument("--embeddings", default=None, help=".npy (M, d) text embeddings of the items in file order, "
                   "instead of embedding their text with the bundle's text model")
    p.add_argument("--checkpoint", default="checkpoints/amazon2018-game", help="a bundle directory")
    p.add_argument("--data-root", default="data/processed", help="root of processed datasets")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(fn=cmd_add_items)
