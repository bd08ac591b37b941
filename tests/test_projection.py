"""The 2-D maps shipped with a bundle (umap2d.npz): written at export, read without pickle, new points placed near
their nearest catalog items."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("umap")

from specgr import projection  # noqa: E402
from specgr.bundle import Bundle  # noqa: E402


def test_export_ships_a_map_of_every_space(tiny_pipeline):
    pipeline, bundle_dir = tiny_pipeline
    b = Bundle.load(bundle_dir, data_root=pipeline.data_root)
    assert (bundle_dir / projection.FILE).exists()
    for space in projection.spaces(b):
        m = projection.Map2D.load(b, space)
        assert m is not None and m.source == "precomputed"
        assert m.xy.shape == (b.ds.n_items, 2) and np.isfinite(m.xy).all()


def test_placement_lands_next_to_the_nearest_items(tiny_pipeline):
    pipeline, bundle_dir = tiny_pipeline
    b = Bundle.load(bundle_dir, data_root=pipeline.data_root)
    m = projection.Map2D.load(b, "text")
    emb = projection.space_embeddings(b, "text")
    placed = m.place(emb[:5] + 1e-4)
    spread = np.linalg.norm(m.xy - m.xy.mean(0), axis=1).mean()
    assert (np.linalg.norm(placed - m.xy[:5], axis=1) < spread).all()
    # ids past the map (items added later) are placed from their vectors
    both = m.coords(np.array([0, len(m.xy)]), np.concatenate([emb, emb[:1]]))
    np.testing.assert_allclose(both[0], m.xy[0])
    assert np.linalg.norm(both[1] - m.xy[0]) < spread


def test_a_map_of_another_catalog_is_ignored(tiny_pipeline, tmp_path):
    import shutil

    pipeline, bundle_dir = tiny_pipeline
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    b = Bundle.load(copy, data_root=pipeline.data_root)
    with np.load(copy / projection.FILE) as z:
        arrays = dict(z)
    arrays["fingerprint"] = np.str_("another")
    np.savez(copy / projection.FILE, **arrays)
    assert projection.Map2D.load(b, "text") is None
