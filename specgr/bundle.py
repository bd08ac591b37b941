"""A SpecGR bundle: one self-contained checkpoint directory with everything the CLI, notebooks and app need.

    checkpoints/<dataset>/
      config.json            specgr checkpoint config (specgr.checkpoint): components, dataset ref and fingerprint,
                             the tuned SpecGR defaults per drafter, metrics
      sids.npz               semantic ids of the catalog
      sid_tokenizer.pt       the frozen tokenizer (new items get ids from it; specgr.sid.build.save_sid_tokenizer)
      tiger.pt               plain TIGER (the verifier of SpecGR_Aux and of the plug-and-play drafters; the baseline)
      specgr_pp.pt           SpecGR++: its TIGER, projection and frozen item table (specgr.drafters.encoder)
      aux.pt                 SpecGR_Aux text drafter (MoE adaptor + sequence encoder; no text table inside)
      umap2d.npz             2-D UMAP maps of the item embedding spaces for the app (specgr.projection)
      added_items.npz        items added later with `specgr add-items` (raw id, text, text embedding), if any

Each component is the checkpoint its training stage wrote (specgr.export assembles them); each model file reads its
own (`<model>_from_checkpoint`). No titles of the prepared catalog are stored: they (and the text embeddings the
Aux/KNN drafters need) come from the processed dataset the bundle names, whose fingerprint must match.

    b = Bundle.load("checkpoints/amazon2018-game")
    res = b.recommend(history, hist_len, "encoder", threshold=-1.4)        # validated input, tuned defaults
    new_id = b.add_item("Space Racer 3000", "a racing game in orbit")    # no retraining
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from specgr.checkpoint import load_checkpoint, read_config, read_json
from specgr.data.processed import DEFAULT_ROOT, MANIFEST, ProcessedDataset
from specgr.data.ref import SPLIT_METHODS
from specgr.utils import resolve_device

DRAFTERS = ("encoder", "aux", "knn")
TOKENIZER_FILE = "sid_tokenizer.pt"
ADDED_ITEMS_FILE = "added_items.npz"


def dataset_folder(path, data_root=DEFAULT_ROOT) -> Path | None:
    """The processed dataset folder the bundle at `path` was exported from (None when there is no bundle there).

    Bundles record the folder's name (config "dataset_ref"). Earlier bundles recorded the registry name of the source
    only, which is not the folder of a leave-one-out split: their folder is the one among <name> and
    <name>-<split> whose manifest has the bundle's fingerprint.
    """
    meta = read_config(Path(path))
    if meta is None:
        return None
    c, root = meta["config"], Path(data_root)
    if "dataset_ref" in c:
        return root / c["dataset_ref"]["name"]
    for name in (c["dataset"], *(f"{c['dataset']}-{s}" for s in SPLIT_METHODS)):
        f = root / name / MANIFEST
        if f.exists() and read_json(f, "re-run `specgr prepare`.").get("fingerprint") == meta["dataset_fingerprint"]:
            return root / name
    return root / c["dataset"]  # not prepared (or other data): loading it says what to do


class Bundle:
    """A loaded bundle: dataset, semantic ids, models and drafters, ready for SpecGR."""

    def __init__(self, ckpt: dict, ds: ProcessedDataset, device="cpu"):
        from specgr.sid.build import load_sid_tokenizer

        self.path = Path(ckpt["path"])
        self.config = ckpt["config"]
        self.metrics = ckpt["extra"].get("metrics", {})
        self.ds = ds
        self.device = resolve_device(device)
        self.sids = ckpt["sids"]
        if self.sids.n_items != ds.n_items:
            raise ValueError(f"{self.path}: semantic ids cover {self.sids.n_items} items, dataset has {ds.n_items}. "
                             "Fix: use the processed dataset this bundle was exported with.")
        self.sid_tokenizer, self.sid_cfg = load_sid_tokenizer(self.path / TOKENIZER_FILE, str(self.device))
        self.text_model = self.config.get("text_model")
        self.specgr_defaults = self.config.get("specgr_defaults", {})
        self._ckpt = ckpt
        self._drafters: dict = {}
        self._tiger = self._pp = None
        self._base_emb = None
        self._extra_emb = None
        self._load_added_items()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path="checkpoints/amazon2018-game", ds: ProcessedDataset | None = None,
             data_root=DEFAULT_ROOT, device="cpu") -> "Bundle":
        path = Path(path)
        folder = dataset_folder(path, data_root)
        if folder is None:
            raise FileNotFoundError(f"no bundle at {path} (no config.json). Fix: `specgr pipeline --dataset <name> "
                                    f"--export {path}` (or `git checkout -- {path}` for the shipped demo checkpoint).")
        if ds is None:
            ds = ProcessedDataset.load(folder)
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
            from specgr.models.tiger import tiger_from_checkpoint

            self._tiger = self._with_item_text(tiger_from_checkpoint(self._ckpt, self.device))
        return self._tiger

    def _load_pp(self):
        """(model, proj, item table) of SpecGR++ as exported (the table covers the exported catalog)."""
        if self._pp is None:
            from specgr.drafters.encoder import specgr_pp_from_checkpoint

            model, proj, table = specgr_pp_from_checkpoint(self._ckpt, self.device)
            self._pp = self._with_item_text(model), proj, table
        return self._pp

    def _with_item_text(self, model):
        """A TIGER that reads item texts (TigerConfig.text_dim > 0) learns the items added after export too: its
        checkpoint's table covers the exported catalog only."""
        if model.cfg.text_dim > 0 and self._extra_emb is not None:
            model.set_item_text(self.sids.tokens, self.all_text_embeddings())
        return model

    @property
    def pp_model(self):
        return self._load_pp()[0]

    def verifier(self, drafter: str):
        """SpecGR++ verifies with its own model; the other drafters plug into the plain TIGER."""
        return self.pp_model if drafter == "encoder" else self.tiger

    def _check_drafter(self, name: str) -> str:
        if name not in self.available_drafters:
            raise ValueError(f"unknown drafter {name!r} for {self.path}. Fix: choose one of "
                             f"{', '.join(self.available_drafters)}.")
        return name

    def drafter(self, name: str):
        if name not in self._drafters:
            self._check_drafter(name)
            if name == "encoder":
                from specgr.drafters.encoder import EncoderDrafter

                m, p, table = self._load_pp()
                d = EncoderDrafter(m, p, self.sids, item_table=table, device=self.device)
            elif name == "aux":
                from specgr.drafters.text import aux_from_checkpoint

                d = aux_from_checkpoint(self._ckpt, self.text_embeddings(), device=self.device)
            else:
                from specgr.drafters.knn import SemanticKNNDrafter

                d = SemanticKNNDrafter(self.text_embeddings(), device=self.device, backend="torch")
            self._drafters[name] = d
        return self._drafters[name]

    # ------------------------------------------------------------------ the front door (specgr.recommenders)
    def specgr_config(self, drafter: str = "encoder", **overrides):
        """The SpecGRConfig of `drafter`: the bundle's tuned defaults, then `overrides` (bad values: ValueError)."""
        from specgr.recommenders import specgr_config

        return specgr_config(self.specgr_defaults.get(self._check_drafter(drafter), {}), drafter,
                             n_items=self.ds.n_items, **overrides)

    def specgr(self, drafter: str = "encoder", cfg=None, **overrides):
        """A SpecGR recommender: cfg, or the tuned defaults of `drafter` with `overrides` (specgr_config)."""
        from specgr.speculate import SpecGR

        cfg = cfg if cfg is not None else self.specgr_config(drafter, **overrides)
        return SpecGR(self.verifier(drafter), self.drafter(drafter), self.sids, cfg, device=self.device)

    def tiger_only(self, num_beams: int = 50):
        from specgr.speculate import TigerOnly

        return TigerOnly(self.tiger, self.sids, num_beams=num_beams, device=self.device)

    def recommend(self, history, hist_len, drafter: str = "encoder", trace: bool = False, **overrides):
        """Validated SpecGR recommendations: history (B, H) item ids (-1 padded), hist_len (B,) -> SpecGRResult.

        drafter: "encoder" | "aux" | "knn", or "tiger" (plain constrained beam search, top_k / num_beams only);
        overrides: SpecGRConfig fields (threshold, draft_size, num_beams, top_k, ...) over the tuned defaults.
        Unknown item ids, empty histories, K larger than the catalog and bad knobs are ValueErrors naming the fix.
        """
        return self.recommender(drafter, **overrides)(history, hist_len, trace)

    def recommender(self, drafter: str = "encoder", **overrides):
        """`recommend` with the knobs fixed and checked once: -> fn(history, hist_len, trace=False) -> SpecGRResult,
        which checks each call's input (for many batches with one configuration)."""
        from specgr.recommenders import check_top_k, validate_history

        if drafter == "tiger":
            k, beams = overrides.pop("top_k", 50), overrides.pop("num_beams", None)
            if overrides:
                raise ValueError(f"plain TIGER takes top_k and num_beams only, not {sorted(overrides)}. Fix: drop "
                                 "them, or choose a SpecGR drafter (encoder, aux, knn).")
            rec = self.tiger_only(num_beams=max(beams or 0, check_top_k(k, self.ds.n_items)))

            def run(history, hist_len, trace):
                return rec.recommend(history, hist_len, k=k)
        else:
            rec = self.specgr(drafter, **overrides)

            def run(history, hist_len, trace):
                return rec.recommend(history, hist_len, trace=trace)

        def fn(history, hist_len, trace: bool = False):
            validate_history(history, hist_len, self.ds.n_items)
            return run(history, hist_len, trace)
        return fn

    # ------------------------------------------------------------------ inductive: brand-new items
    def add_items(self, titles: list[str], descriptions: list[str] | None = None,
                  raw_ids: list[str] | None = None) -> np.ndarray:
        """Embed text -> semantic id (frozen tokenizer) -> catalog + every drafter. No retraining.

        Returns the new item ids. Items are added in memory only (the processed dataset on disk is untouched;
        `save_added_items` keeps them with the bundle).
        """
        from specgr.text import embed_texts

        if not titles or any(not str(t).strip() for t in titles):
            raise ValueError("a new item needs a non-empty title. Fix: give every new item a title.")
        descriptions = descriptions or [""] * len(titles)
        texts = [f"{t.strip()} {d.strip()}".strip() for t, d in zip(titles, descriptions)]
        emb = embed_texts(texts, self.text_model, cache=False, progress=False)
        return self.add_items_from_embeddings(texts, emb, raw_ids)

    def add_items_from_embeddings(self, texts: list[str], emb: np.ndarray, raw_ids: list[str] | None = None):
        """The inductive path once the text is embedded: (M, d) text embeddings -> ids for M new items."""
        from specgr.sid.build import encode_new_items

        emb = np.asarray(emb, dtype=np.float32)
        base = self.text_embeddings()  # load the base table before the catalog grows
        if emb.ndim != 2 or emb.shape[1] != base.shape[1] or len(emb) != len(texts):
            raise ValueError(f"new item embeddings must be ({len(texts)}, {base.shape[1]}), got {emb.shape}. Fix: "
                             f"embed the texts with {self.text_model}.")
        # build every drafter on the catalog as it is now, before the semantic ids grow (a drafter built later would
        # see more ids than its item table)
        drafters = {name: self.drafter(name) for name in self.available_drafters}
        n0 = self.ds.n_items
        raw = list(raw_ids) if raw_ids is not None else [f"new:{n0 + i}" for i in range(len(texts))]
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
        for model in {id(m): m for m in (self._tiger, self._pp and self._pp[0]) if m is not None}.values():
            self._with_item_text(model)
        return ids

    def add_item(self, title: str, description: str = "") -> int:
        return int(self.add_items([title], [description])[0])

    def all_text_embeddings(self) -> np.ndarray:
        """(N, d) text embeddings including added items."""
        base = self.text_embeddings()
        return base if self._extra_emb is None else np.concatenate([base, self._extra_emb])

    def added_ids(self) -> np.ndarray:
        """Ids of the items added after export (kept with the bundle or added in this session)."""
        return np.arange(self.ds.n_items - (0 if self._extra_emb is None else len(self._extra_emb)), self.ds.n_items)

    def save_added_items(self) -> Path:
        """Keep every added item with the bundle (added_items.npz: raw id, text, text embedding; no pickle), so the
        next Bundle.load gives them the same ids and semantic ids (the tokenizer is frozen, the order is kept)."""
        ids = self.added_ids()
        items = self.ds.items.iloc[ids]
        f = self.path / ADDED_ITEMS_FILE
        tmp = f.with_name(f".{f.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, raw_id=items["raw_id"].astype(str).to_numpy(dtype=str),
                     text=items["text"].astype(str).to_numpy(dtype=str), embedding=self.all_text_embeddings()[ids])
        tmp.replace(f)
        return f

    def _load_added_items(self) -> None:
        f = self.path / ADDED_ITEMS_FILE
        if f.exists():
            z = np.load(f, allow_pickle=False)
            self.add_items_from_embeddings(z["text"].tolist(), z["embedding"], z["raw_id"].tolist())
