"""Exact inner-product top-k over an item table, with per-row masks. Torch by default; faiss behind the same API.

    index = RetrievalIndex(item_emb)                      # (N, d) tensor or ndarray
    ids, scores = index.search(q, k, allowed=None, exclude=None)
    new_ids = index.add(more_emb)                         # (M, d) -> ids N..N+M-1, retrievable at once

Contract (shared by every drafter, see docs/ARCHITECTURE.md "Drafter protocol"):
- `allowed` (B, N) bool: only True items may be returned; `exclude` (B, E) item ids (-1 = padding): never returned.
- Fewer than k admissible items -> the tail slots hold id -1 and score -inf. No PAD item exists, so none is returned.
- Rows come back sorted by descending score. Ties are broken arbitrarily (as in torch.topk / faiss).

Backends:
- "torch": exact. Items are scanned in chunks of `chunk_elems // B` rows and a running top-k is merged, so a 1M-item
  catalog x a batch of queries never materialises the full (B, N) score matrix.
- "faiss": IndexFlatIP, exact. Masks are applied exactly by over-fetching k' > k neighbours and filtering; a row whose
  survivors cannot prove they are the true masked top-k (fewer than k left while the search was not exhaustive) is
  re-done on the torch path. So faiss and torch return the same top-k (up to float ties).
- "faiss-ivf": IndexIVFFlat (approximate: `nprobe` of `nlist` lists). Masks are still never violated; rows with too
  few survivors fall back to the exact torch path.
- "auto": torch. It is exact, has no dependency, and on CPU it measured faster than faiss flat at every size we tried
  (benchmarks/bench_retrieval.py: torch batches the masks into its GEMM scan, faiss has to over-fetch and filter).
  Choose "faiss-ivf" yourself for very large catalogs where approximate search is acceptable.
faiss runs on the GPU when faiss-gpu is installed and the index device is CUDA.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from specgr.utils import has_faiss, resolve_device  # noqa: F401 - has_faiss: benchmarks import it from here

try:  # optional dependency: the GPU box has no faiss, the torch path is always available
    import faiss  # type: ignore
except Exception:  # pragma: no cover - depends on the environment
    faiss = None

BACKENDS = ("torch", "faiss", "faiss-ivf", "auto")


def _as_tensor(x, dtype=torch.float32, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device if device is not None else x.device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


class RetrievalIndex:
    """Exact (or IVF) maximum-inner-product search over an item table that can grow.

    item_emb: (N, d). metric: "ip" (raw inner product) or "cosine" (items and queries L2-normalised first).
    chunk_elems: torch path memory bound, the largest (B, chunk) score block scanned at once (float32 elements).
    ivf_nlist / ivf_nprobe: IVF parameters (default nlist = 4 sqrt(N), nprobe = 32).
    """

    def __init__(self, item_emb, backend: str = "auto", device: str | torch.device = "auto", metric: str = "ip",
                 chunk_elems: int = 1 << 25, ivf_nlist: int | None = None, ivf_nprobe: int = 32):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if metric not in ("ip", "cosine"):
            raise ValueError(f"metric must be 'ip' or 'cosine', got {metric!r}")
        self.device = resolve_device(device)
        if backend == "auto":
            backend = "torch"
        if backend.startswith("faiss") and faiss is None:
            raise ImportError(f"backend={backend!r} needs faiss. Fix: `pip install faiss-cpu` (or faiss-gpu), "
                              f"or use backend='torch'.")
        self.backend = backend
        self.metric = metric
        self.chunk_elems = int(chunk_elems)
        self.ivf_nlist, self.ivf_nprobe = ivf_nlist, int(ivf_nprobe)
        emb = _as_tensor(item_emb)
        if emb.ndim != 2:
            raise ValueError(f"item_emb must be (N, d), got shape {tuple(emb.shape)}")
        if metric == "cosine":
            emb = _l2norm(emb)
        self.dim = emb.shape[1]
        # the torch table is always kept: it is the exact fallback of the faiss paths and `embeddings()` for the app.
        # faiss backends keep it on the CPU (faiss owns its own copy, possibly on the GPU).
        self._emb = emb.to("cpu" if self.backend != "torch" else self.device).contiguous()
        self._faiss = None
        if self.backend != "torch":
            self._build_faiss()

    # ---------------------------------------------------------------- basic facts
    @property
    def n_items(self) -> int:
        return self._emb.shape[0]

    def __len__(self) -> int:
        return self.n_items

    def embeddings(self) -> torch.Tensor:
        """(N, d) the stored item table (normalised when metric='cosine')."""
        return self._emb

    def to(self, device) -> "RetrievalIndex":
        """Move the index (rebuilds the faiss index on the new device)."""
        self.device = resolve_device(device)
        if self.backend == "torch":
            self._emb = self._emb.to(self.device)
        else:
            self._build_faiss()
        return self

    def __repr__(self) -> str:
        return f"RetrievalIndex(n_items={self.n_items}, dim={self.dim}, backend={self.backend!r}, " \
               f"metric={self.metric!r}, device={self.device})"

    # ---------------------------------------------------------------- faiss
    def _build_faiss(self):
        x = self._emb.numpy().astype(np.float32, copy=False)
        if self.backend == "faiss":
            index = faiss.IndexFlatIP(self.dim)
        else:
            nlist = self.ivf_nlist or max(1, int(4 * math.sqrt(max(self.n_items, 1))))
            nlist = min(nlist, max(1, self.n_items // 39))  # faiss wants ~39 training points per list
            quant = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quant, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = x if len(x) <= 256 * nlist else x[rng.choice(len(x), 256 * nlist, replace=False)]
            index.train(np.ascontiguousarray(sample))
            index.nprobe = min(self.ivf_nprobe, nlist)
        self._gpu = False
        if self.device.type == "cuda" and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            self._res = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._res, self.device.index or 0, index)
            self._gpu = True
        if len(x):
            index.add(np.ascontiguousarray(x))
        self._faiss = index

    # ---------------------------------------------------------------- growth
    def add(self, emb) -> torch.Tensor:
        """Append M items (M, d). Returns their ids (M,) LongTensor = N..N+M-1; they are searchable immediately."""
        new = _as_tensor(emb, device=self._emb.device)
        if new.ndim == 1:
            new = new[None]
        if new.shape[1] != self.dim:
            raise ValueError(f"new items have dim {new.shape[1]}, the index has {self.dim}")
        if self.metric == "cosine":
            new = _l2norm(new)
        start = self.n_items
        self._emb = torch.cat([self._emb, new]).contiguous()
        if self._faiss is not None:
            self._faiss.add(np.ascontiguousarray(new.cpu().numpy().astype(np.float32)))
        return torch.arange(start, start + new.shape[0], dtype=torch.long)

    # ---------------------------------------------------------------- search
    def search(self, queries, k: int, allowed=None, exclude=None) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, d); allowed (B, N) bool | None; exclude (B, E) ids, -1 padded | None.

        Returns ids (B, k) LongTensor and scores (B, k) float32, on the queries' device (the index device for
        ndarray queries); missing slots are id -1, score -inf.
        """
        out_dev = queries.device if isinstance(queries, torch.Tensor) else self.device
        k = int(k)
        q = _as_tensor(queries, device=self._emb.device)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"queries must be (B, {self.dim}), got {tuple(q.shape)}")
        if self.metric == "cosine":
            q = _l2norm(q)
        B = q.shape[0]
        if allowed is not None:
            allowed = torch.as_tensor(allowed, dtype=torch.bool, device=self._emb.device)
            if allowed.shape != (B, self.n_items):
                raise ValueError(f"allowed must be (B, N) = ({B}, {self.n_items}), got {tuple(allowed.shape)}")
        if exclude is not None:
            exclude = torch.as_tensor(exclude, dtype=torch.long, device=self._emb.device)
            if exclude.ndim == 1:
                exclude = exclude[:, None]
            if exclude.shape[0] != B:
                raise ValueError(f"exclude must be (B, E) with B = {B}, got {tuple(exclude.shape)}")
            if exclude.shape[1] == 0:
                exclude = None
        if k <= 0 or B == 0:
            return (torch.empty(B, max(k, 0), dtype=torch.long, device=out_dev),
                    torch.empty(B, max(k, 0), device=out_dev))
        if self.backend == "torch":
            ids, scores = self._search_torch(q, k, allowed, exclude)
        else:
            ids, scores = self._search_faiss(q, k, allowed, exclude)
        return ids.to(out_dev), scores.to(out_dev)

    def score(self, queries, ids: torch.Tensor) -> torch.Tensor:
        """The search score of given items: queries (B, d), ids (B, M) (-1 = none) -> (B, M) float32 on the ids'
        device, what `search` returns for those items (0 for id -1), up to float summation order.

        Where M × d > N, one (B, N) matmul over the table replaces the (B, M, d) gather: callers bound B × N (the SpecGR
        loop drafts in user chunks of `SpecGRConfig.draft_chunk_elems`)."""
        q = _as_tensor(queries, device=self._emb.device)
        if self.metric == "cosine":
            q = _l2norm(q)
        i = torch.as_tensor(ids, dtype=torch.long, device=self._emb.device)
        if i.ndim == 2 and i.shape[1] * self.dim > self.n_items:  # gathering (B, M, d) would read more than the
            s = (q @ self._emb.T).gather(1, i.clamp(min=0))  # table: score every item (the scan's matmul) and pick
        else:
            s = (self._emb[i.clamp(min=0)] * q[:, None, :]).sum(-1)
        return s.masked_fill(i < 0, 0.0).to(ids.device if isinstance(ids, torch.Tensor) else self._emb.device)

    def _search_torch(self, q, k, allowed, exclude):
        """Chunked exact scan. q (B, d) on the table's device."""
        B, N = q.shape[0], self.n_items
        neg_inf = float("-inf")
        best_s = torch.full((B, k), neg_inf, device=q.device)
        best_i = torch.full((B, k), -1, dtype=torch.long, device=q.device)
        # chunk rows of the item table so a (B, chunk) block stays under chunk_elems floats
        chunk = max(k, self.chunk_elems // max(B, 1), 1)
        for s in range(0, N, chunk):
            e = min(N, s + chunk)
            sc = q @ self._emb[s:e].T  # (B, c)
            if allowed is not None:
                sc.masked_fill_(~allowed[:, s:e], neg_inf)
            if exclude is not None:
                loc = exclude - s
                inside = (loc >= 0) & (loc < e - s)
                # amin-scatter: -inf where excluded, +inf (a no-op under min) for padding / ids outside this chunk,
                # so colliding clamped indices cannot undo an exclusion
                val = torch.where(inside, neg_inf, float("inf"))
                sc.scatter_reduce_(1, loc.clamp(0, e - s - 1), val, reduce="amin", include_self=True)
            kk = min(k, e - s)
            cs, ci = sc.topk(kk, dim=1)
            cat_s = torch.cat([best_s, cs], 1)
            cat_i = torch.cat([best_i, ci + s], 1)
            best_s, pos = cat_s.topk(k, dim=1)
            best_i = cat_i.gather(1, pos)
        best_i.masked_fill_(best_s == neg_inf, -1)  # masked-out slots are not items (no boolean indexing: no sync)
        return best_i, best_s

    def _search_faiss(self, q, k, allowed, exclude):
        """faiss search with exact masking: over-fetch k' neighbours, filter, re-do unprovable rows with torch."""
        B, N = q.shape[0], self.n_items
        qn = np.ascontiguousarray(q.numpy().astype(np.float32, copy=False))
        if allowed is None and exclude is None:
            kk = k
        else:
            # excluded ids can take at most E slots; a mask keeping a fraction f of items needs ~k/f neighbours
            kk = k + (exclude.shape[1] if exclude is not None else 0)
            if allowed is not None:
                frac = allowed.sum(1).min().clamp(min=1).item() / max(N, 1)
                kk = max(kk, int(math.ceil(2 * k / frac)) + kk - k)
            kk = min(kk, 4 * k + 256 + (exclude.shape[1] if exclude is not None else 0))
        kk = min(kk, N) if self.backend == "faiss" else kk
        if self._gpu:
            kk = min(kk, 2048)  # faiss-gpu k limit
        D, I = self._faiss.search(qn, max(kk, 1))
        ids = torch.from_numpy(I).long()
        sc = torch.from_numpy(D).float()
        keep = ids >= 0
        if allowed is not None:
            keep &= allowed.gather(1, ids.clamp(min=0))
        if exclude is not None:
            keep &= ~(ids[:, :, None] == exclude[:, None, :]).any(-1)
        sc = sc.masked_fill(~keep, float("-inf"))
        if sc.shape[1] < k:
            pad = k - sc.shape[1]
            sc = torch.cat([sc, torch.full((B, pad), float("-inf"))], 1)
            ids = torch.cat([ids, torch.full((B, pad), -1, dtype=torch.long)], 1)
            keep = torch.cat([keep, torch.zeros(B, pad, dtype=torch.bool)], 1)
        top_s, pos = sc.topk(k, dim=1)
        top_i = ids.gather(1, pos)
        top_i[top_s == float("-inf")] = -1
        # a row is provably exact when k survivors were found (every unseen item scores <= the k'-th), or when the
        # flat search covered the whole catalog. IVF rows that come up short are re-done exactly.
        exhaustive = self.backend == "faiss" and kk >= N
        redo = (keep.sum(1) < k) & (not exhaustive)
        if redo.any():
            r = redo.nonzero().squeeze(1)
            ri, rs = self._search_torch(q[r], k, allowed[r] if allowed is not None else None,
                                        exclude[r] if exclude is not None else None)
            top_i[r], top_s[r] = ri, rs
        return top_i, top_s
