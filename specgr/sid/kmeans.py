"""K-means: torch (k-means++ init, Lloyd, GPU when available) or faiss (CPU, when installed), seeded.

Both backends start from the same k-means++ centroids, which are rows of the data, so results are comparable and
reproducible for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from specgr.utils import has_faiss, resolve_device


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # (k, d) float32
    assign: torch.Tensor  # (N,) long
    inertia: float  # sum of squared distances to the assigned centroid
    backend: str


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, d), centroids (k, d) -> (index (N,) long, squared L2 distance (N,)). Chunked to bound memory."""
    c2 = (centroids * centroids).sum(1)
    idx, dist = [], []
    for s in range(0, len(x), chunk):
        xb = x[s:s + chunk]
        d = (xb * xb).sum(1, keepdim=True) - 2 * xb @ centroids.T + c2  # (b, k)
        m = d.min(1)
        idx.append(m.indices)
        dist.append(m.values.clamp(min=0))
    if not idx:
        return torch.zeros(0, dtype=torch.long, device=x.device), torch.zeros(0, device=x.device)
    return torch.cat(idx), torch.cat(dist)


def kmeans_pp_init(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (D^2 sampling). x (N, d) -> (k, d), every row a row of x (distinct rows when possible)."""
    n = len(x)
    x2 = (x * x).sum(1)
    sqdist = lambda i: (x2 - 2 * (x @ x[i]) + x2[i]).clamp(min=0)  # matvec: one pass over x  # noqa: E731
    first = torch.randint(n, (1,), generator=generator, device="cpu").item()
    chosen = [first]
    d2 = sqdist(first)
    d2[first] = 0  # float round-off must not let a chosen row be drawn again
    for _ in range(1, k):
        w = d2.double().cpu()
        if float(w.sum()) <= 0:  # all remaining points coincide with centroids: pick any unused row
            w = torch.ones(n, dtype=torch.double)
            w[chosen] = 0
        i = torch.multinomial(w, 1, generator=generator).item()
        chosen.append(i)
        d2 = torch.minimum(d2, sqdist(i))
        d2[i] = 0
    return x[torch.tensor(chosen, device=x.device)].clone()


def _lloyd_torch(x: torch.Tensor, cent: torch.Tensor, n_iter: int, tol: float) -> torch.Tensor:
    k = len(cent)
    prev = None
    for _ in range(n_iter):
        a, d2 = nearest(x, cent)
        counts = torch.bincount(a, minlength=k).to(x.dtype)
        sums = torch.zeros_like(cent).index_add_(0, a, x)
        empty = counts == 0
        cent = torch.where(empty[:, None], cent, sums / counts.clamp(min=1)[:, None])
        if empty.any():  # re-seed empty clusters at the points farthest from their centroid
            far = torch.topk(d2, int(empty.sum())).indices
            cent[empty] = x[far]
        inertia = float(d2.sum())
        if prev is not None and prev - inertia <= tol * max(prev, 1e-12):
            break
        prev = inertia
    return cent


def _lloyd_faiss(x: torch.Tensor, cent: torch.Tensor, n_iter: int, seed: int) -> torch.Tensor:
    import faiss

    xn = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    km = faiss.Kmeans(xn.shape[1], len(cent), niter=n_iter, seed=seed, verbose=False,
                      max_points_per_centroid=1 << 30)  # never subsample: our catalogs are small
    km.train(xn, init_centroids=np.ascontiguousarray(cent.cpu().numpy(), dtype=np.float32))
    return torch.from_numpy(km.centroids).to(x.device)


def kmeans(x, k: int, n_iter: int = 50, seed: int = 0, backend: str = "auto", device="auto",
           tol: float = 1e-5) -> KMeansResult:
    """Cluster x (N, d) into k clusters -> KMeansResult.

    backend: "auto" (faiss on CPU when installed and N >= 39k, else torch), "torch", "faiss". device: "auto" keeps a
    CUDA input where it is and otherwise picks CUDA when available."""
    if backend not in ("auto", "torch", "faiss"):
        raise ValueError(f"backend must be auto|torch|faiss, got {backend!r}")
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
    dev = x.device if torch.is_tensor(x) and x.device.type != "cpu" and device == "auto" else resolve_device(device)
    x = x.to(dev)
    if len(x) < k:
        raise ValueError(f"k-means with k={k} needs at least k points, got {len(x)}. Fix: a smaller codebook_size.")
    if backend == "auto":
        # faiss pays off on CPU with enough points (it warns below 39 points per centroid); torch otherwise
        backend = "faiss" if dev.type == "cpu" and len(x) >= 39 * k and has_faiss() else "torch"
    g = torch.Generator().manual_seed(seed)
    cent = kmeans_pp_init(x, k, g)
    cent = _lloyd_faiss(x, cent, n_iter, seed) if backend == "faiss" else _lloyd_torch(x, cent, n_iter, tol)
    a, d2 = nearest(x, cent)
    return KMeansResult(cent, a, float(d2.sum()), backend)
