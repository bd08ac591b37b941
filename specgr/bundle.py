"""A SpecGR bundle: one self-contained checkpoint directory with everything the CLI, notebooks and app need.

    checkpoints/<dataset>/
      config.json            specgr checkpoint config (specgr.checkpoint): components, dataset fingerprint, metrics
      sids.npz               semantic ids of the catalog
      sid_tokenizer.pt       the frozen tokenizer (new items get ids from it)
      tiger.pt               plain TIGER (the verifier of SpecGR_Aux and of the plug-and-play drafters; the baseline)
      specgr_pp.pt           SpecGR++: TIGER trained with the contrastive + ranking stages, and its projection
      specgr_pp_table.pt     SpecGR++'s frozen item table (stage 2), the drafting table at inference
      aux.pt                 SpecGR_Aux text drafter (MoE adaptor + sequence encoder; no text table inside)
      umap2d.npz             2-D UMAP maps of the item embedding spaces for the app (specgr.projection)

No item titles are stored: they (and the text embeddings the Aux/KNN drafters need) come from the processed dataset
at run time, and the dataset fingerprint must match.

    b = Bundle.load("checkpoints/amazon2018-game")
    rec = b.specgr("encoder", SpecGRConfig(threshold=-1.4))     # or "aux", "knn"
    res = rec.recommend(history, hist_len, trace=True)
    new_id = b.add_item("Space Racer 3000", "a racing game in orbit")  # no retraining
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from specgr.checkpoint import load_checkpoint, save_checkpoint
from specgr.data.processed import DEFAULT_ROOT, ProcessedDataset

DRAFTERS = ("encoder", "aux", "knn")


def export_bundle(path, ds: ProcessedDataset, sids, sid_tokenizer, sid_cfg, tiger=None, tiger_cfg=None,
                  pp_model=None, pp_proj=None, pp_table=None, pp_cfg=None, aux_drafter=None, text_model=None,
                  specgr_defaults: dict | None = None, metrics: dict | None = None, half: bool = True,
                  maps: bool = True) -> Path:
    """Write a bundle directory (fp16 weights by default: half the size, verified harmless in docs/RESULTS.md).

    maps: also compute the 2-D UMAP maps the app shows (umap2d.npz; skipped when umap-learn is not installed)."""
    config: dict = {"dataset": ds.name, "n_items": ds.n_items, "n_in_sample": ds.n_in_sample,
                    "text_model": text_model or ds.manifest.get("text_model"),
                    "sid": sid_cfg.to_dict(), "specgr_defaults": specgr_defaults or {}}
    sds: dict = {}
    if tiger is not None:
        config["tiger"] = {"model": tiger_cfg.to_dict(), "vocab_size": sids.vocab_size}
        sds["tiger"] = tiger.state_dict()
    if pp_model is not None:
        config["specgr_pp"] = {"model": tiger_cfg.to_dict() if pp_cfg is None else pp_cfg["model"],
                               "proj_dim": pp_proj.dim, "vocab_size": sids.vocab_size,
                               "train": (pp_cfg or {}).get("train", {})}
        sds["specgr_pp"] = {**{f"model.{k}": v for k, v in pp_model.state_dict().items()},
                            **{f"proj.{k}": v for k, v in pp_proj.state_dict().items()}}
        sds["specgr_pp_table"] = {"table": pp_table[: ds.n_items].detach().float().cpu()}
    if aux_drafter is not None:
        m = aux_drafter.model
        config["aux"] = {"model": asdict(m.cfg), "d_text": m.d_text}
        # the text table is data (rebuilt from the dataset's embeddings), not weights
        sds["aux"] = {k: v for k, v in m.state_dict().items() if not k.startswith("text_emb")}
    out = save_checkpoint(path, config, sds, sids=sids, dataset_fingerprint=ds.fingerprint,
                          extra={"metrics": metrics or {}}, half=half)
    # the tokenizer state mixes tensors with its (string) config: torch.save of plain containers, which
    # torch.load(weights_only=True) reads back safely
    tok = _map_tensors(sid_tokenizer.state_dict(), lambda t: t.half() if half and t.is_floating_point() else t)
    torch.save({"sid_config": sid_cfg.to_dict(), "tokenizer": tok}, Path(out) / "sid_tokenizer.pt")
    if maps:
        _export_maps(out, ds)
    return out


def _export_maps(out, ds: ProcessedDataset) -> None:
    import importlib.util

    from specgr.projection import compute_maps, save_maps

    if importlib.util.find_spec("umap") is None:
        print(f"{out}: umap-learn is not installed, no 2-D maps (the app fits them on first use)")
        return
    b = Bundle(load_checkpoint(out, ds=ds, device="cpu"), ds)
    save_maps(out, compute_maps(b, log=lambda *a: None), b)


def _map_tensors(d, fn):
    if isinstance(d, dict):
        return {k: _map_tensors(v, fn) for k, v in d.items()}
    return fn(d) if isinstance(d, torch.Tensor) else d


class Bundle:
    """A loaded bundle: dataset, semantic ids, models and drafters, ready for SpecGR."""

    def __init__(self, ckpt: dict, ds: ProcessedDataset, device="cpu"):
        from specgr.sid.build import SIDConfig, tokenizer_from_state_dict

        self.path = ckpt["path"]
        self.config = ckpt["config"]
        self.metrics = ckpt["extra"].get("metrics", {})
        self.ds = ds
        self.device = torch.device(device)
        self.sids = ckpt["sids"]
        if self.sids.n_items != ds.n_items:
            raise ValueError(f"{self.path}: semantic ids cover {self.sids.n_items} items, dataset has {ds.n_items}. "
                             "Fix: use the processed dataset this bundle was exported with.")
        self.sid_cfg = SIDConfig.from_dict(self.config["sid"])
        blob = torch.load(Path(self.path) / "sid_tokenizer.pt", map_location="cpu", weights_only=True)
        self.sid_tokenizer = tokenizer_from_state_dict(
            _map_tensors(blob["tokenizer"], lambda t: t.float() if t.is_floating_point() else t), str(device))
        self.text_model = self.config.get("text_model")
        self._sd = ckpt["state_dicts"]
        self.specgr_defaults = self.config.get("specgr_defaults", {})
        self._drafters: dict = {}
        self._tiger = self._pp = None
        self._base_emb = None
        self._extra_emb = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path="checkpoints/amazon2018-game", ds: ProcessedDataset | None = None,
             data_root=DEFAULT_ROOT, device="cpu") -> "Bundle":
        from specgr.checkpoint import _read_config

        path = Path(path)
        meta = _read_config(path)
        if meta is None:
            raise FileNotFoundError(f"no bundle at {path}. Fix: `specgr pipeline --dataset <name>` (or `git lfs "
                                    f"pull`/`git checkout {path}` for the shipped demo checkpoint).")
        if ds is None:
            ds = ProcessedDataset.load_by_name(meta["config"]["dataset"], data_root)
        return cls(load_checkpoint(path, ds=ds, device="cpu"), ds, device)

    @property
    def default_drafter(self) -> str:
        """The drafter a front end opens with: the bundle's `default_drafter` when it names one it has, else the first
        available (see the checkpoint's README for why a bundle picks one)."""
        d = self.config.get("default_drafter")
        return d if d in self.available_drafters else self.available_drafters[0]

    @property
    def available_drafters(self) -> list[str]:
        have = []
        if "specgr_pp" in self.config:
            have.append("encoder")
        if "aux" in self.config:
            have.append("aux")
        have.append("knn")
        return have

    def text_embeddings(self) -> np.ndarray:
        """(N0, d) text embeddings of the catalog as loaded (items added later: all_text_embeddings)."""
        if self._base_emb is None:
            self._base_emb = self.ds.embeddings(self.text_model)
        return self._base_emb

    @property
    def tiger(self):
        """Plain TIGER (verifier for Aux / KNN; the TIGER baseline). Falls back to SpecGR++'s model if absent."""
        if self._tiger is None:
            if "tiger" not in self.config:
                return self.pp_model
            from specgr.models.tiger import TIGER, TigerConfig

            c = self.config["tiger"]
            m = TIGER(TigerConfig.from_dict(c["model"]), c["vocab_size"])
            m.load_state_dict(self._sd["tiger"])
            self._tiger = m.to(self.device).eval()
        return self._tiger

    def _load_pp(self):
        from specgr.drafters.encoder import Projection
        from specgr.models.tiger import TIGER, TigerConfig

        c = self.config["specgr_pp"]
        m = TIGER(TigerConfig.from_dict(c["model"]), c["vocab_size"])
        p = Projection(m.cfg.d_model, c["proj_dim"])
        sd = self._sd["specgr_pp"]
        m.load_state_dict({k[6:]: v for k, v in sd.items() if k.startswith("model.")})
        p.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("proj.")})
        self._pp = (m.to(self.device).eval(), p.to(self.device).eval(), self._sd["specgr_pp_table"]["table"].float())

    @property
    def pp_model(self):
        if self._pp is None:
            self._load_pp()
        return self._pp[0]

    def verifier(self, drafter: str):
        """SpecGR++ verifies with its own model; the other drafters plug into the plain TIGER."""
        return self.pp_model if drafter == "encoder" else self.tiger

    def drafter(self, name: str):
        if name not in DRAFTERS:
            raise ValueError(f"unknown drafter {name!r}; choose one of {self.available_drafters}")
        if name not in self._drafters:
            if name == "encoder":
                from specgr.drafters.encoder import EncoderDrafter

                if self._pp is None:
                    self._load_pp()
                m, p, table = self._pp
                d = EncoderDrafter(m, p, self.sids, item_table=table, device=self.device)
            elif name == "aux":
                from specgr.drafters.text import AuxConfig, TextDrafter, TextSeqModel

                c = self.config["aux"]
                model = TextSeqModel(AuxConfig(**c["model"]), torch.as_tensor(self.text_embeddings()))
                missing, unexpected = model.load_state_dict(self._sd["aux"], strict=False)
                if [k for k in missing if not k.startswith("text_emb")] or unexpected:
                    raise ValueError(f"aux weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
                d = TextDrafter(model, device=self.device)
            else:
                from specgr.drafters.knn import SemanticKNNDrafter

                d = SemanticKNNDrafter(self.text_embeddings(), device=self.device, backend="torch")
            self._drafters[name] = d
        return self._drafters[name]

    def specgr(self, drafter: str = "encoder", cfg=None):
        from specgr.speculate import SpecGR, SpecGRConfig

        if cfg is None:
            cfg = SpecGRConfig(**self.specgr_defaults.get(drafter, {}))
        return SpecGR(self.verifier(drafter), self.drafter(drafter), self.sids, cfg, device=self.device)

    def tiger_only(self, num_beams: int = 50):
        from specgr.speculate import TigerOnly

        return TigerOnly(self.tiger, self.sids, num_beams=num_beams, device=self.device)

    # ------------------------------------------------------------------ inductive: brand-new items
    def add_items(self, titles: list[str], descriptions: list[str] | None = None) -> np.ndarray:
        """Embed text -> semantic id (frozen tokenizer) -> catalog + every drafter. No retraining.

        Returns the new item ids. Items are added in memory only (the processed dataset on disk is untouched).
        """
        from specgr.text import embed_texts

        if not titles or any(not str(t).strip() for t in titles):
            raise ValueError("a new item needs a non-empty title")
        descriptions = descriptions or [""] * len(titles)
        texts = [f"{t.strip()} {d.strip()}".strip() for t, d in zip(titles, descriptions)]
        emb = embed_texts(texts, self.text_model, cache=False, progress=False)
        return self.add_items_from_embeddings(texts, emb)

    def add_items_from_embeddings(self, texts: list[str], emb: np.ndarray) -> np.ndarray:
        """The inductive path once the text is embedded: (M, d) text embeddings -> ids for M new items."""
        from specgr.sid.build import encode_new_items

        emb = np.asarray(emb, dtype=np.float32)
        base = self.text_embeddings()  # load the base table before the catalog grows
        if emb.ndim != 2 or emb.shape[1] != base.shape[1]:
            raise ValueError(f"new item embeddings must be (M, {base.shape[1]}), got {emb.shape}")
        # build every drafter on the catalog as it is now, before the semantic ids grow (a drafter built later would
        # see more ids than its item table)
        drafters = {name: self.drafter(name) for name in DRAFTERS if name in self.available_drafters}
        n0 = self.ds.n_items
        raw = [f"new:{n0 + i}" for i in range(len(texts))]
        ids = self.ds.add_items(raw, list(texts))
        prev = self._extra_emb if self._extra_emb is not None else np.zeros((0, emb.shape[1]), np.float32)
        self._extra_emb = np.concatenate([prev, emb])
        sid_ids = encode_new_items(self.sid_tokenizer, self.sids, torch.as_tensor(emb))
        if not np.array_equal(sid_ids.cpu().numpy(), ids):
            raise RuntimeError("catalog and semantic ids out of sync")
        new_tokens = self.sids.tokens[torch.as_tensor(ids, device=self.sids.tokens.device)]
        for name, d in drafters.items():
            got = d.add_items(new_tokens) if name == "encoder" else d.add_items(torch.as_tensor(emb))
            if not np.array_equal(np.asarray(torch.as_tensor(got).cpu()), ids):
                raise RuntimeError(f"drafter {name} gave the new items other ids")
        return ids

    def add_item(self, title: str, description: str = "") -> int:
        return int(self.add_items([title], [description])[0])

    def all_text_embeddings(self) -> np.ndarray:
        """(N, d) text embeddings including items added in this session."""
        base = self.text_embeddings()
        return base if self._extra_emb is None else np.concatenate([base, self._extra_emb])
