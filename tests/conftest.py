"""Shared fixtures: a tiny synthetic dataset in the real processed format, built by the tests themselves.

Items live in `n_clusters` topics; users mostly stay within a topic and time moves forward, so late items are new
(unseen) under the timestamp split and models have structure to learn.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from specgr.data.processed import ProcessedDataset, model_slug, write_processed
from specgr.data.split import SplitConfig, split_interactions

TINY_TEXT_MODEL = "tiny-random"


def make_tiny_interactions(n_users=60, n_items=72, n_clusters=4, seed=0):
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_items) % n_clusters
    # item "release" time: later ids appear later, so the last ones are unseen at the train cut
    release = np.sort(rng.integers(0, 1000, n_items))
    rows = []
    for u in range(n_users):
        c = rng.integers(n_clusters)
        t0 = rng.integers(0, 700)
        n = rng.integers(4, 9)
        t = t0
        seen = set()
        for _ in range(n):
            t += int(rng.integers(1, 60))
            pool = [i for i in range(n_items) if release[i] <= t and i not in seen]
            if not pool:
                break
            same = [i for i in pool if cluster[i] == c]
            pick = int(rng.choice(same if same and rng.random() < 0.85 else pool))
            seen.add(pick)
            rows.append((f"u{u}", f"i{pick}", t))
    inter = pd.DataFrame(rows, columns=["user", "item", "ts"])
    items = pd.DataFrame({"raw_id": [f"i{i}" for i in range(n_items)],
                          "text": [f"topic {cluster[i]} product number {i}" for i in range(n_items)]})
    return inter, items, cluster


def build_tiny_dataset(root, name="tiny", method="timestamp", dim=16, seed=0):
    inter, items, cluster = make_tiny_interactions(seed=seed)
    res = split_interactions(inter, items, SplitConfig(method=method, max_history=20))
    path = root / name
    write_processed(path, res, name, SplitConfig(method=method).to_dict(), extra={"text_model": TINY_TEXT_MODEL})
    # clustered, L2-normalised "text" embeddings in the processed item order
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(cluster.max() + 1, dim))
    raw_cluster = {f"i{i}": cluster[i] for i in range(len(cluster))}
    c = np.array([raw_cluster[r] for r in res.items["raw_id"]])
    emb = centers[c] + 0.3 * rng.normal(size=(len(c), dim))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    (path / "embeddings").mkdir(exist_ok=True)
    np.save(path / "embeddings" / f"{model_slug(TINY_TEXT_MODEL)}.npy", emb)
    return ProcessedDataset.load(path)


def build_untrained_bundle(ds, path, seed=0, text_dim=0):
    """A bundle of untrained models (TIGER + SpecGR++, rqkmeans semantic ids) for `ds`, exported the way the pipeline
    does it, in a second or so: for tests of loading and plumbing, not of quality. text_dim > 0: both TIGERs read
    the items' text embeddings (TigerConfig.text_dim; must equal the fixture's embedding width)."""
    import torch

    from specgr.drafters.encoder import Projection, encode_item_table, save_specgr_pp
    from specgr.export import export_bundle
    from specgr.models.tiger import TIGER, save_tiger, tiger_preset
    from specgr.sid.build import SIDConfig, build_semantic_ids

    sc = SIDConfig(method="rqkmeans", codebook_size=8, on_overflow="grow", device="cpu")
    sids, tok, _ = build_semantic_ids(ds.embeddings(), ds.n_in_sample, sc)
    torch.manual_seed(seed)
    mc = tiger_preset("tiny")
    mc.text_dim = text_dim
    tiger, pp = TIGER(mc, sids.vocab_size), TIGER(mc, sids.vocab_size)
    if text_dim:
        for m in (tiger, pp):
            m.set_item_text(sids.tokens, ds.embeddings())
    proj = Projection(pp.cfg.d_model, 16)
    stages = path.parent / f"{path.name}_stages"
    save_tiger(stages / "tiger", tiger, sids, ds.fingerprint)
    save_specgr_pp(stages / "specgr_pp", pp, proj, encode_item_table(pp, proj, sids.tokens), sids, ds.fingerprint)
    return export_bundle(path, ds, sids, tok, sc, {"tiger": stages / "tiger", "specgr_pp": stages / "specgr_pp"},
                         maps=False)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return build_tiny_dataset(tmp_path_factory.mktemp("data"))


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for it in items:
            if "gpu" in it.keywords:
                it.add_marker(skip)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# processes the tests start (DDP workers, notebook kernels) inherit this: on 2 cores a second OpenMP thread per process
# spins against the other processes and made a toy training cell 20x slower on a busy machine
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models are overhead-bound: one thread is faster and never busy-waits against other processes."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_dataset, tmp_path_factory):
    """The whole pipeline (tiny preset) on the tiny fixture: -> (Pipeline, bundle_dir). Shared by the pipeline,
    app and notebook-API tests; takes ~30 s on one CPU thread."""
    from specgr.pipeline import load_pipeline_config, run_pipeline

    root = tmp_path_factory.mktemp("pipe")
    p = run_pipeline(load_pipeline_config("tiny"), data_root=tiny_dataset.path.parent, run_root=root / "runs",
                     results_root=root / "results", device="cpu", log=lambda *a: None)
    return p, p.run_dir / "export" / "bundle"
