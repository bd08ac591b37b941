"""Residual k-means tokenizer: a training-free alternative to the RQ-VAE.

Level l runs k-means on what levels < l left unexplained (x minus the chosen centroids), directly in the text
embedding space. Encoding a new item is greedy: nearest centroid per level on its running residual.
Shapes: emb (N, d) -> codes (N, levels); centroids (levels, C, d).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from specgr.config import from_dict
from specgr.sid.kmeans import kmeans, nearest
from specgr.utils import resolve_device


@dataclass
class RQKMeansConfig:
    codebook_size: int = 256
    levels: int = 3
    kmeans_iters: int = 50
    backend: str = "auto"  # kmeans backend: auto|torch|faiss
    seed: int = 0
    device: str = "auto"


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()


class RQKMeansTokenizer:
    kind = "rqkmeans"

    def __init__(self, cfg: RQKMeansConfig | None = None):
        self.cfg = cfg or RQKMeansConfig()
        self.centroids: torch.Tensor | None = None  # (levels, C, d)
        self.inertia: list[float] = []

    def fit(self, emb) -> "RQKMeansTokenizer":
        """emb (N_in, d): in-sample item embeddings only."""
        cfg = self.cfg
        t0 = time.time()
        r = _tensor(emb).to(resolve_device(cfg.device))
        cents = []
        for l in range(cfg.levels):
            km = kmeans(r, cfg.codebook_size, n_iter=cfg.kmeans_iters, seed=cfg.seed + l, backend=cfg.backend,
                        device=cfg.device)
            c = km.centroids.to(r.device)
            cents.append(c)
            self.inertia.append(km.inertia)
            r = r - c[km.assign.to(r.device)]
        self.centroids = torch.stack(cents).cpu()
        self.fit_seconds = time.time() - t0
        return self

    @torch.no_grad()
    def encode(self, emb, batch_size: int = 65536) -> torch.LongTensor:
        """emb (N, d) -> codes (N, levels) long on CPU."""
        if self.centroids is None:
            raise RuntimeError("RQKMeansTokenizer is not fitted; call fit() or load_state_dict() first")
        dev = resolve_device(self.cfg.device)
        cents = self.centroids.to(dev)
        out = []
        for xb in _tensor(emb).split(batch_size):
            r, codes = xb.to(dev), []
            for c in cents:
                idx, _ = nearest(r, c)
                codes.append(idx)
                r = r - c[idx]
            out.append(torch.stack(codes, 1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.cfg.levels, dtype=torch.long)

    def reconstruct(self, emb) -> torch.Tensor:
        codes = self.encode(emb)
        return sum(self.centroids[l][codes[:, l]] for l in range(codes.shape[1]))

    def state_dict(self, inference_only: bool = False) -> dict:  # the centroids are all it has: nothing to drop
        return {"kind": self.kind, "config": asdict(self.cfg), "centroids": self.centroids.clone()}

    def load_state_dict(self, sd: dict) -> "RQKMeansTokenizer":
        if sd.get("kind") != self.kind:
            raise ValueError(f"not an rqkmeans state dict (kind={sd.get('kind')!r})")
        self.cfg = from_dict(RQKMeansConfig, {**sd["config"], "device": self.cfg.device})  # strict
        self.centroids = sd["centroids"].float().cpu()
        return self

    @classmethod
    def from_state_dict(cls, sd: dict, device: str = "auto") -> "RQKMeansTokenizer":
        return cls(RQKMeansConfig(device=device)).load_state_dict(sd)
