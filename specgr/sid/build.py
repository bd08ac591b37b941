"""Build, save, load semantic ids, and give ids to new items with the frozen tokenizer.

Artifacts in `<dataset>/sid/`: `<method>.npz` (SemanticIDs), `<method>_tokenizer.pt` (torch.load(weights_only=True)
safe: tensors and primitives only), `<method>_report.json` (quality report + timings + config).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from specgr.sid.quality import quality_report
from specgr.sid.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from specgr.sid.rqvae import RQVAEConfig, RQVAETokenizer
from specgr.sid.semantic_ids import SemanticIDs

METHODS = ("rqkmeans", "rqvae")


@dataclass
class SIDConfig:
    method: str = "rqvae"  # "rqvae" (paper) or "rqkmeans" (training-free)
    codebook_size: int = 256  # paper: 144 Games, 256 Office, 288 Phones
    levels: int = 3  # quantizer digits; the 4th digit is the collision digit
    collision_size: int | None = None  # slots of the collision digit (default: codebook_size)
    on_overflow: str = "error"  # "error" | "grow" (see SemanticIDs.from_codes)
    kmeans_iters: int = 50
    kmeans_backend: str = "auto"
    seed: int = 0
    device: str = "auto"
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)  # codebook_size/levels/seed/device come from above

    @classmethod
    def from_dict(cls, d: dict) -> "SIDConfig":
        """Strict (specgr.config.from_dict): unknown keys, here or under rqvae, are an error."""
        from specgr.config import from_dict

        return from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)


def make_tokenizer(cfg: SIDConfig):
    if cfg.levels != 3:
        raise ValueError(f"SemanticIDs use 3 quantizer digits + 1 collision digit; levels={cfg.levels} unsupported")
    if cfg.method == "rqkmeans":
        return RQKMeansTokenizer(RQKMeansConfig(codebook_size=cfg.codebook_size, levels=cfg.levels,
                                                kmeans_iters=cfg.kmeans_iters, backend=cfg.kmeans_backend,
                                                seed=cfg.seed, device=cfg.device))
    if cfg.method == "rqvae":
        rq = RQVAEConfig(**{**asdict(cfg.rqvae), "codebook_size": cfg.codebook_size, "levels": cfg.levels,
                            "seed": cfg.seed, "device": cfg.device})
        return RQVAETokenizer(rq)
    raise ValueError(f"unknown SID method {cfg.method!r}; have {METHODS}")


def tokenizer_from_state_dict(sd: dict, device: str = "auto"):
    kinds = {"rqkmeans": RQKMeansTokenizer, "rqvae": RQVAETokenizer}
    if sd.get("kind") not in kinds:
        raise ValueError(f"unknown tokenizer kind {sd.get('kind')!r}")
    return kinds[sd["kind"]].from_state_dict(sd, device=device)


def build_semantic_ids(emb, n_in_sample: int, cfg: SIDConfig | None = None):
    """emb (N, d) embeddings of all items (in-sample first) -> (SemanticIDs, fitted tokenizer, report dict).

    The tokenizer is fitted on the in-sample rows only; every item is then encoded by the frozen tokenizer.
    """
    cfg = cfg or SIDConfig()
    emb = torch.as_tensor(np.asarray(emb) if not torch.is_tensor(emb) else emb).float()
    tok = make_tokenizer(cfg)
    t0 = time.time()
    tok.fit(emb[:n_in_sample])
    t1 = time.time()
    codes = tok.encode(emb)
    t2 = time.time()
    sids = SemanticIDs.from_codes(codes, n_in_sample, cfg.codebook_size, cfg.collision_size, cfg.on_overflow)
    report = {"method": cfg.method, "fit_seconds": t1 - t0, "encode_seconds": t2 - t1,
              **quality_report(sids, emb), "config": cfg.to_dict()}
    if getattr(tok, "history", None):
        report["train_last"] = tok.history[-1]
    return sids, tok, report


def sid_dir(ds_path) -> Path:
    return Path(getattr(ds_path, "path", ds_path)) / "sid"


def _map_tensors(d, fn):
    if isinstance(d, dict):
        return {k: _map_tensors(v, fn) for k, v in d.items()}
    return fn(d) if isinstance(d, torch.Tensor) else d


def save_sid_tokenizer(path, tokenizer, cfg: SIDConfig, half: bool = False, inference_only: bool = False) -> Path:
    """The frozen tokenizer as one file {sid_config, tokenizer state}: tensors and primitives only, so
    torch.load(weights_only=True) reads it back. half=True stores floating tensors as fp16; inference_only=True keeps
    only what encoding new items reads (no RQ-VAE decoder): both for bundles."""
    from specgr.checkpoint import atomic_torch_save

    state = _map_tensors(tokenizer.state_dict(inference_only=inference_only),
                         lambda t: t.half() if half and t.is_floating_point() else t)
    return atomic_torch_save({"sid_config": cfg.to_dict(), "tokenizer": state}, path)


def load_sid_tokenizer(path, device: str = "auto"):
    """-> (frozen tokenizer, SIDConfig) from a file written by `save_sid_tokenizer` (fp16 tensors come back fp32)."""
    from specgr.checkpoint import safe_torch_load

    blob = safe_torch_load(path, "cpu", fix="rebuild the semantic ids (`specgr sid --force`) or restore the checkpoint.")
    state = _map_tensors(blob["tokenizer"], lambda t: t.float() if t.is_floating_point() else t)
    return tokenizer_from_state_dict(state, device), SIDConfig.from_dict(blob["sid_config"])


def save_sid_artifacts(ds_path, sids: SemanticIDs, tokenizer, cfg: SIDConfig, report: dict | None = None,
                       name: str | None = None) -> Path:
    """Write <ds_path>/sid/<name>.npz, <name>_tokenizer.pt, <name>_report.json (name: the method's by default, or a
    named variant for experiments); returns the sid folder."""
    d = sid_dir(ds_path)
    d.mkdir(parents=True, exist_ok=True)
    name = name or cfg.method
    sids.save(d / f"{name}.npz")
    save_sid_tokenizer(d / f"{name}_tokenizer.pt", tokenizer, cfg)
    if report is not None:
        (d / f"{name}_report.json").write_text(json.dumps(report, indent=2, default=float))
    return d


def load_sids(ds_path, method: str = "rqvae") -> SemanticIDs:
    """<ds_path>/sid/<method>.npz -> SemanticIDs on CPU (no tokenizer needed: what training reads)."""
    f = sid_dir(ds_path) / f"{method}.npz"
    if not f.exists():
        raise FileNotFoundError(f"no semantic ids at {f}. Fix: `specgr sid --method {method}` for this dataset.")
    return SemanticIDs.load(f)


def load_sid_artifacts(ds_path, method: str = "rqvae", device: str = "auto"):
    """-> (SemanticIDs on CPU, frozen tokenizer, SIDConfig)."""
    sids = load_sids(ds_path, method)
    tok, cfg = load_sid_tokenizer(sid_dir(ds_path) / f"{method}_tokenizer.pt", device)
    return sids, tok, cfg


def encode_new_items(tokenizer, sids: SemanticIDs, emb_new, on_overflow: str | None = None) -> torch.Tensor:
    """Give brand-new items (M, d) embeddings semantic ids with the frozen tokenizer; returns their ids (M,)."""
    return sids.add_items(tokenizer.encode(emb_new), on_overflow=on_overflow)
