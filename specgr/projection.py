"""2-D maps (UMAP) of a bundle's item embedding spaces, computed once at export and shipped as `umap2d.npz`.

Fitting UMAP on a catalog takes a minute or more on a CPU, so the app reads the coordinates instead. Items added
later and sequence (query) embeddings are placed at the similarity-weighted mean of their nearest catalog items in
the original space: no fitted reducer is shipped (it would have to be unpickled).

    maps = compute_maps(bundle)              # {space: (N, 2) float32}, every catalog item
    save_maps(bundle_dir, maps, bundle)      # bundle_dir/umap2d.npz (float16 coordinates, no pickle)
    m = Map2D.load(bundle, "text")           # None when the file is absent or was made for another catalog
    m.xy[i]; m.place(vectors (M, d)) -> (M, 2)

    python -m specgr.projection checkpoints/amazon2018-game     # (re)compute the file of an existing bundle
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

FILE = "umap2d.npz"
SPACE_LABELS = {"encoder": "drafter space: SpecGR++ item table", "aux": "drafter space: SpecGR_Aux item table",
                "text": "text space (sentence embeddings)"}


def spaces(bundle) -> dict[str, str]:
    """The embedding spaces of a bundle: key -> label (the drafter tables it has, and the text space)."""
    have = [s for s in ("encoder", "aux") if s in bundle.available_drafters] + ["text"]
    return {s: SPACE_LABELS[s] for s in have}


def space_embeddings(bundle, space: str) -> np.ndarray:
    """(N, d) float32 item vectors of one space, items added this session included."""
    if space == "text":
        return np.asarray(bundle.all_text_embeddings(), np.float32)
    return bundle.drafter(space).item_embeddings().float().cpu().numpy()


def fit_umap(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, d) -> (N, 2) float32 UMAP coordinates (cosine metric; a fixed seed, so the map is reproducible)."""
    import umap

    n = len(emb)
    reducer = umap.UMAP(n_neighbors=min(15, max(2, n - 1)), min_dist=0.1, metric="cosine", random_state=seed,
                        n_epochs=200 if n > 500 else 300, init="spectral" if n > 50 else "random")
    return reducer.fit_transform(emb).astype(np.float32)


def compute_maps(bundle, log=print) -> dict[str, np.ndarray]:
    """{space: (N, 2)} for every catalog item of every space of `bundle`."""
    out = {}
    for space in spaces(bundle):
        t = time.perf_counter()
        out[space] = fit_umap(space_embeddings(bundle, space))
        log(f"UMAP of the {space} space: {len(out[space]):,} items in {time.perf_counter() - t:.1f} s")
    return out


def save_maps(bundle_dir, maps: dict[str, np.ndarray], bundle) -> Path:
    """Write bundle_dir/umap2d.npz: float16 coordinates per space, tied to the catalog by size and fingerprint."""
    path = Path(bundle_dir) / FILE
    tmp = path.with_name(f".{FILE}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, n_items=np.int64(bundle.ds.n_items), fingerprint=np.str_(bundle.ds.fingerprint),
                            **{f"{s}_xy": xy.astype(np.float16) for s, xy in maps.items()})
    tmp.replace(path)
    return path


class Map2D:
    """Coordinates of the catalog in one space, and nearest-neighbour placement of any other vector of it."""

    def __init__(self, xy: np.ndarray, catalog: np.ndarray, source: str, seconds: float):
        self.xy = np.asarray(xy, np.float32)  # (N, 2)
        self._unit = _unit_rows(catalog[: len(self.xy)])  # (N, d) catalog vectors the placement searches
        self.source = source  # "precomputed" (shipped with the bundle) or "fitted" (here, now)
        self.seconds = seconds  # time to load or to fit

    @classmethod
    def load(cls, bundle, space: str) -> "Map2D | None":
        """The shipped map of `space`, or None (no file, another catalog, or no such space in it)."""
        t = time.perf_counter()
        path = Path(bundle.path) / FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            n0 = bundle.config.get("n_items", bundle.ds.n_items)
            if int(z["n_items"]) != n0 or str(z["fingerprint"]) != bundle.ds.fingerprint or f"{space}_xy" not in z:
                return None
            xy = z[f"{space}_xy"].astype(np.float32)
        return cls(xy, space_embeddings(bundle, space), "precomputed", time.perf_counter() - t)

    @classmethod
    def fit(cls, bundle, space: str) -> "Map2D":
        t = time.perf_counter()
        emb = space_embeddings(bundle, space)[: bundle.config.get("n_items", bundle.ds.n_items)]
        return cls(fit_umap(emb), emb, "fitted", time.perf_counter() - t)

    def place(self, vectors: np.ndarray, k: int = 10) -> np.ndarray:
        """(M, d) -> (M, 2): the mean position of the k most cosine-similar catalog items, weighted by similarity."""
        v = _unit_rows(np.asarray(vectors, np.float32).reshape(-1, self._unit.shape[1]))
        if len(v) == 0:
            return np.zeros((0, 2), np.float32)
        sim = v @ self._unit.T  # (M, N)
        k = min(k, sim.shape[1])
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        w = np.clip(np.take_along_axis(sim, top, 1), 1e-3, None)
        return (np.einsum("mk,mkc->mc", w, self.xy[top]) / w.sum(1, keepdims=True)).astype(np.float32)

    def coords(self, ids, vectors: np.ndarray) -> np.ndarray:
        """(n, 2) for item ids: catalog items from the map, later ones placed from `vectors` (the space's (N', d))."""
        ids = np.asarray(ids, np.int64)
        out = np.zeros((len(ids), 2), np.float32)
        known = ids < len(self.xy)
        out[known] = self.xy[ids[known]]
        if (~known).any():
            out[~known] = self.place(vectors[ids[~known]])
        return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m specgr.projection", description="(Re)compute a bundle's 2-D maps "
                                 f"({FILE}) on the CPU.")
    ap.add_argument("bundle", help="bundle directory, e.g. checkpoints/amazon2018-game")
    ap.add_argument("--data-root", default="data/processed", help="root of processed datasets")
    a = ap.parse_args(argv)
    from specgr.bundle import Bundle

    b = Bundle.load(a.bundle, data_root=a.data_root)
    print(f"wrote {save_maps(a.bundle, compute_maps(b), b)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
