"""`specgr pipeline`: prepare -> semantic ids -> TIGER -> SpecGR++ (stages 1, 2) -> Aux drafter -> SASRec -> export
-> tune (valid) -> evaluate (test). Every stage is resumable: it is skipped when its output exists and was made with
the same config hash (its own config plus the hashes of the stages it depends on); each logs its wall time.

    specgr pipeline --dataset amazon2018-game --preset amazon2018-game [--stages sid,tiger] [--set tiger_train.epochs=5]
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from specgr import distributed as D
from specgr.config import apply_overrides, config_hash, from_dict, load_preset
from specgr.utils import resolve_device

STAGES = ("prepare", "sid", "tiger", "specgr_pp", "aux", "sasrec", "export", "tune", "evaluate")


@dataclass
class TuneConfig:
    """δ, β, γ (and the knobs of the non-paper variants) are tuned on valid, one coordinate at a time, each grid widened
    until the optimum is interior (specgr.tune); test is reported once. Each variant is tuned under its own rule."""

    # a '+'-joined sum of result["overall"] metrics (specgr.tune.metric_fn): the reported comparison needs both R@50 and
    # N@50 above the baseline, and on 2,048 valid rows R@50 alone ties within one row where N@50 differs by 6%
    metric: str = "recall@50+ndcg@50"
    # rounds over all knobs (stopping early when one changes nothing): a second pass revisits the knobs tuned first once
    # later knobs moved; a single pass stopped at draft_size 50 because fusion_weight was tuned after it
    passes: int = 2
    valid_rows: int | None = 8192  # seeded subset of valid rows (None = all)
    drafters: tuple = ("encoder", "aux")
    variants: tuple = ("paper", "vnew", "fair", "learned")  # see VARIANTS
    exclude_history: bool = True  # the protocol tuning runs under (reported both ways in the evaluate stage)
    max_widen: int = 4
    on_edge: str = "error"  # "error": fail loudly if a value stays on its grid's edge; "warn": record it
    grids: dict = field(default_factory=dict)  # starting grids, {knob: [values]} (default: specgr.tune.KNOBS)
    # the method's promise as a tuning constraint: in `floor_variants`, a setting whose unseen R@50 on the tuning rows
    # is below unseen_floor x the best drafter-alone unseen R@50 on the same rows ranks after every setting that meets
    # it (0 = off). Why: a timestamp split's valid period sits closer to the train cutoff than its test period, so
    # valid holds fewer new-item targets (Beauty: 8% vs 28%) and an unconstrained objective trades them away
    # (docs/RESULTS.md §3.0b). The paper's variant is tuned on the objective alone, as the paper does.
    unseen_floor: float = 0.5
    floor_variants: tuple = ("fair", "learned")
    # the "learned" variant's final ranking (specgr.speculate.learned_rank) is fitted on round-1 drafts of valid rows
    # that the tuning rows leave out (up to learned_fit_rows of them), so its tuning objective is not scored on the rows
    # its weights were fitted to; only when valid has no other rows does it fit on the tuning rows (tune.json says so)
    learned_fit_rows: int | None = 16384
    learned_fit_drafts: int = 100  # δ of the fitting drafts (>= K: the rows whose target is drafted carry the signal)


@dataclass
class EvalConfig:
    batch_size: int = 512
    max_rows: int | None = None  # None = the whole test split
    ablations: bool = True  # the paper's ablations of its loop (no guided re-drafting, no inductive drafting)
    diagnostics: bool = True  # the acceptance-rate curve and the verifier-score table
    curve_gammas: tuple = (-1.0, -1.2, -1.4, -1.6, -1.8, -2.0, -2.2)
    curve_rows: int = 4096
    # the TIGER baseline's beam width. Official code: width = K = 50. A wider beam ranks closer to the model's exact
    # likelihood order (docs/RESULTS.md §2.1: width 50 loses 1.4% R@50 to exact ranking); when it differs from 50,
    # the width-50 TIGER is reported beside it (tiger_beam50*.json)
    tiger_beams: int = 50
    # batch users of similar history lengths and cut each batch's padding (`specgr.batching.length_batches`): the
    # same lists on the CPU, faster (docs/RESULTS.md §4, release 28); on the GPU bf16 near-ties may differ
    by_length: bool = False

    def __post_init__(self):
        if isinstance(self.tiger_beams, bool) or not isinstance(self.tiger_beams, int) or self.tiger_beams < 50:
            raise ValueError(f"eval.tiger_beams={self.tiger_beams!r}: the beam must hold the K = 50 items every list is "
                             "scored at. Fix: use a whole number >= 50 (official: 50).")

    def hashed(self) -> dict:
        """The fields the evaluate stage's hash covers: by_length only when on, so that runs from before the key
        existed keep their results."""
        d = asdict(self)
        if not d["by_length"]:
            del d["by_length"]
        return d


# SpecGR variants: (how the config is built from the preset's `specgr` values, the knobs tuned)
VARIANTS = {
    # the paper's loop (v-old): m = 4 / 3 digits, top-K accepted by V, re-drafting from round 2
    "paper": ({}, ("threshold", "draft_size", "num_beams")),
    # the official batched rewrite: prefix-length rule, first K accepted, re-drafting from round 3
    "vnew": ("vnew", ("threshold", "draft_size", "num_beams")),
    # fair to new items: V over a new item's longest in-sample prefix + a tuned bonus, final list fused with the
    # drafter's similarity
    "fair": ({"length_rule": "prefix_len", "min_len": 1},
             ("threshold", "new_item_bonus", "fusion_weight", "draft_size", "num_beams")),
    # fair's verifier with a learned final ranking: weights over the drafter score, V, the new flag, each digit's
    # log-prob and the new item's prefix length, fitted on valid before the knobs are tuned (TuneConfig.learned_fit_*)
    # (fusion_weight 0: the learned score already weighs the drafter score, whatever a preset's specgr section sets)
    "learned": ({"length_rule": "prefix_len", "min_len": 1, "fusion_weight": 0.0},
                ("threshold", "draft_size", "num_beams")),
}


def variant_config(base, variant: str, drafter: str):
    """The starting SpecGRConfig of a variant for a drafter ("encoder" | "aux" | "knn")."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown SpecGR variant {variant!r}; choose from {sorted(VARIANTS)}")
    how = VARIANTS[variant][0]
    if how == "vnew":
        knobs = {k: getattr(base, k) for k in ("draft_size", "num_beams", "threshold", "top_k")}
        return type(base).official_vnew("encoder" if drafter == "encoder" else "aux", **knobs)
    return base.replace(**how)


@dataclass
class PipelineConfig:
    dataset: str = "amazon2018-game"  # the preset's data: a registered dataset (with `split`), or a prepared catalog
    split: str | None = None  # None = the dataset's default (timestamp / upstream)
    name: str | None = None  # the processed folder (the CLI's --dataset); None = the one of `dataset` and `split`
    text_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    tiger_preset: str = "games"
    specgr_pp_init: str = "scratch"  # "scratch" (paper) | "tiger": stage 1 starts from the trained TIGER
    sid: dict = field(default_factory=dict)
    tiger: dict = field(default_factory=dict)  # overrides on the tiger_preset
    tiger_train: dict = field(default_factory=dict)
    specgr_pp: dict = field(default_factory=dict)
    aux: dict = field(default_factory=dict)
    aux_train: dict = field(default_factory=dict)
    sasrec: dict = field(default_factory=dict)
    sasrec_train: dict = field(default_factory=dict)
    specgr: dict = field(default_factory=dict)  # SpecGRConfig defaults before tuning
    tune: dict = field(default_factory=dict)
    eval: dict = field(default_factory=dict)

    # typed views of the sections (unknown keys raise here, early)
    def sid_cfg(self):
        from specgr.sid.build import SIDConfig

        return from_dict(SIDConfig, self.sid)

    def tiger_cfg(self):
        from specgr.models.tiger import tiger_preset

        c = tiger_preset(self.tiger_preset)
        return from_dict(type(c), {**asdict(c), **self.tiger})

    def tiger_train_cfg(self):
        from specgr.train.tiger import TigerTrainConfig

        return from_dict(TigerTrainConfig, self.tiger_train)

    def pp_cfg(self):
        from specgr.train.specgr_pp import SpecGRPPConfig

        return from_dict(SpecGRPPConfig, self.specgr_pp)

    def aux_cfgs(self):
        from specgr.drafters.text import AuxConfig
        from specgr.train.aux import AuxTrainConfig

        return from_dict(AuxConfig, self.aux), from_dict(AuxTrainConfig, self.aux_train)

    def sasrec_cfgs(self):
        from specgr.drafters.sasrec import SASRecConfig
        from specgr.train.sasrec import SASRecTrainConfig

        return from_dict(SASRecConfig, self.sasrec), from_dict(SASRecTrainConfig, self.sasrec_train)

    def specgr_cfg(self):
        from specgr.speculate import SpecGRConfig

        return from_dict(SpecGRConfig, self.specgr)

    def tune_cfg(self) -> TuneConfig:
        return from_dict(TuneConfig, self.tune)

    def eval_cfg(self) -> EvalConfig:
        return from_dict(EvalConfig, self.eval)


def load_pipeline_config(preset: str, overrides: list[str] | None = None, dataset: str | None = None):
    """The preset with `overrides`; `dataset` (the CLI's --dataset) names the processed folder to run on."""
    d = apply_overrides(load_preset(preset), overrides)
    if dataset:
        d["name"] = dataset
    cfg = from_dict(PipelineConfig, d)
    # every section's typed view once, now: a bad value (unknown key, eval.tiger_beams < K) fails before hours of
    # training, not at the stage that first reads it
    for view in (cfg.sid_cfg, cfg.tiger_cfg, cfg.tiger_train_cfg, cfg.pp_cfg, cfg.aux_cfgs, cfg.sasrec_cfgs,
                 cfg.specgr_cfg, cfg.tune_cfg, cfg.eval_cfg):
        view()
    return cfg


class Pipeline:
    def __init__(self, cfg: PipelineConfig, data_root="data/processed", run_root="runs", results_root="results",
                 device: str = "auto", log=print, trainer_kwargs: dict | None = None):
        self.cfg = cfg
        # multi-GPU / multi-node (SpecGR++ stages): devices, num_nodes, strategy -> lightning.Trainer
        self.trainer_kwargs = trainer_kwargs or {}
        self.data_root, self.results_root = Path(data_root), Path(results_root)
        self.ref = self._dataset_ref()
        self.run_dir = Path(run_root) / self.ds_name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = str(resolve_device(device))
        self.log = log
        self.hashes: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._ds = self._sids = None
        self._cache: dict = {}

    @property
    def ds_name(self) -> str:
        """The processed folder: data/processed/<name>, runs/<name>, results/<name> (specgr.data.ref)."""
        return self.ref.name

    def _dataset_ref(self):
        from specgr.data.processed import folder_ref
        from specgr.data.ref import DatasetRef

        c = self.cfg
        name = c.name
        if name is None:  # the preset's dataset and split
            try:
                return DatasetRef.resolve(c.dataset, c.split)
            except KeyError:  # not a registered dataset: a catalog prepared under that name
                name = c.dataset
        ref = folder_ref(name, self.data_root)
        if c.split and c.split != ref.split:
            raise ValueError(f"the preset asks for the {c.split} split, but --dataset {name} is the {ref.split} split "
                             f"of {ref.source}. Fix: --dataset {ref.source}-{c.split} (prepared with `specgr prepare "
                             f"--dataset {ref.source} --split {c.split}`), or another --preset.")
        return ref

    # ------------------------------------------------------------------ stage bookkeeping
    def _stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def _done(self, name: str, h: str) -> bool:
        f = self._stage_dir(name) / "stage.json"
        return f.exists() and json.loads(f.read_text()).get("hash") == h

    def _mark(self, name: str, h: str, wall: float, info: dict | None = None):
        if D.get_rank() != 0:  # data-parallel stages run on every rank: one writer
            return
        d = self._stage_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        (d / "stage.json").write_text(json.dumps({"hash": h, "wall_s": wall, "info": info or {}}, indent=2,
                                                 default=str))

    def run_stage(self, name: str, h: str, fn, force: bool = False):
        self.hashes[name] = h
        if not force and self._done(name, h):
            prev = json.loads((self._stage_dir(name) / "stage.json").read_text())
            self.timings[name] = prev.get("wall_s", 0.0)
            self.log(f"[{name}] up to date (hash {h}, took {prev.get('wall_s', 0):.1f} s when it ran) - skipped")
            return
        self.log(f"[{name}] running (hash {h}) on {self.device}")
        t = time.perf_counter()
        info = fn()
        wall = time.perf_counter() - t
        self.timings[name] = wall
        self._mark(name, h, wall, info)
        self.log(f"[{name}] done in {wall:.1f} s")
        self._write_log()

    def _write_log(self):
        if D.get_rank() != 0:
            return
        (self.run_dir / "pipeline_log.json").write_text(json.dumps(
            {"timings_s": self.timings, "hashes": self.hashes, "device": self.device,
             "gpu": torch.cuda.get_device_name() if self.device.startswith("cuda") else None}, indent=2))

    # ------------------------------------------------------------------ artifacts
    @property
    def ds(self):
        if self._ds is None:
            from specgr.data.processed import ProcessedDataset

            self._ds = ProcessedDataset.load(self.data_root / self.ds_name)
        return self._ds

    def sids(self):
        """The semantic ids alone: training reads only these, so a machine that trains needs no tokenizer file."""
        if self._sids is None:
            from specgr.sid.build import load_sids

            self._sids = load_sids(self.ds.path, self.cfg.sid_cfg().method)
        return self._sids

    def tiger(self):
        if "tiger" not in self._cache:
            from specgr.models.tiger import load_tiger

            m, _ = load_tiger(self._stage_dir("tiger"), ds=self.ds)
            self._cache["tiger"] = m.eval()
        return self._cache["tiger"]

    def sasrec(self):
        from specgr.drafters.sasrec import load_sasrec

        return load_sasrec(self._stage_dir("sasrec"), ds=self.ds, device=self.device)

    def bundle(self):
        from specgr.bundle import Bundle

        if "bundle" not in self._cache:
            self._cache["bundle"] = Bundle.load(self._stage_dir("export") / "bundle", ds=self.ds, device=self.device)
        return self._cache["bundle"]

    # ------------------------------------------------------------------ the stages
    def stage_prepare(self, force=False, mirror=None):
        c, ref = self.cfg, self.ref
        h = config_hash({"dataset": ref.source, "split": ref.split, "text_model": c.text_model})
        manifest = self.data_root / self.ds_name / "manifest.json"

        def run():
            from specgr.data.prepare import prepare

            ds, t = prepare(ref.source, self.data_root, split=ref.split, text_model=c.text_model, mirror=mirror,
                            out_name=ref.name)
            return {"timings": t, "fingerprint": ds.fingerprint}

        if manifest.exists() and not self._done("prepare", h):
            # processed elsewhere (e.g. on the CPU before carrying it to a GPU machine): adopt it
            self._mark("prepare", h, 0.0, {"adopted": str(manifest.parent)})
        self.run_stage("prepare", h, run, force)

    def stage_sid(self, force=False):
        sc = self.cfg.sid_cfg()
        h = config_hash(sc.to_dict(), self.ds.fingerprint, self.cfg.text_model)

        def run():
            from specgr.sid.build import build_semantic_ids, save_sid_artifacts

            emb = self.ds.embeddings(self.cfg.text_model)
            sids, tok, rep = build_semantic_ids(emb, self.ds.n_in_sample, sc)
            save_sid_artifacts(self.ds.path, sids, tok, sc, rep)
            self._sids = None
            return {"report": rep}

        if not force and not self._done("sid", h) and self._sid_artifacts_match(sc):
            # semantic ids built elsewhere (`specgr sid` on another machine, a shipped checkpoint): adopt them, as the
            # prepare stage adopts processed data, so that the models keep the ids they were (or will be) trained on
            self._mark("sid", h, 0.0, {"adopted": str(self.ds.path / "sid" / f"{sc.method}.npz")})
        self.run_stage("sid", h, run, force)

    def _sid_artifacts_match(self, sc) -> bool:
        """Semantic ids of sc.method exist and were made with the same method and codebook size (as their quality
        report, or else their tokenizer file, records)."""
        d = self.ds.path / "sid"
        if not (d / f"{sc.method}.npz").exists():
            return False
        if (d / f"{sc.method}_report.json").exists():
            made = json.loads((d / f"{sc.method}_report.json").read_text()).get("config", {})
        elif (d / f"{sc.method}_tokenizer.pt").exists():
            from specgr.sid.build import load_sid_tokenizer

            made = load_sid_tokenizer(d / f"{sc.method}_tokenizer.pt", "cpu")[1].to_dict()
        else:
            return False
        return all(made.get(k) == getattr(sc, k) for k in ("method", "codebook_size", "levels"))

    def _item_text(self, mc):
        """The text embeddings a TIGER with text input (TigerConfig.text_dim > 0) reads; None without."""
        return self.ds.embeddings(self.cfg.text_model) if mc.text_dim > 0 else None

    def stage_tiger(self, force=False):
        mc, tc = self.cfg.tiger_cfg(), self.cfg.tiger_train_cfg()
        h = config_hash(asdict(mc), tc.to_dict(), self.hashes["sid"])

        def run():
            from specgr.train.tiger import train_tiger

            sids = self.sids()
            _, info = train_tiger(self.ds, sids, mc, tc, out_dir=self._stage_dir("tiger"), resume=not force,
                                  item_text=self._item_text(mc))
            self._cache.pop("tiger", None)
            return info

        self.run_stage("tiger", h, run, force)

    def stage_specgr_pp(self, force=False):
        mc, pc = self.cfg.tiger_cfg(), self.cfg.pp_cfg()
        init = self.cfg.specgr_pp_init
        if init not in ("scratch", "tiger"):
            raise ValueError(f"specgr_pp_init must be 'scratch' or 'tiger', not {init!r}")
        h = config_hash(asdict(mc), pc.to_dict(), self.hashes["sid"], init,
                        self.hashes.get("tiger") if init == "tiger" else None)

        def run():
            from specgr.train.specgr_pp import train_specgr_pp

            sids = self.sids()
            state = self.tiger().state_dict() if init == "tiger" else None
            # train_specgr_pp writes its checkpoint directory itself (specgr.drafters.encoder.save_specgr_pp)
            _, _, _, info = train_specgr_pp(self.ds, sids, mc, pc, out_dir=self._stage_dir("specgr_pp"),
                                            init_model_state=state, item_text=self._item_text(mc),
                                            **self.trainer_kwargs)
            return info

        self.run_stage("specgr_pp", h, run, force)

    def stage_aux(self, force=False):
        ac, atc = self.cfg.aux_cfgs()
        h = config_hash(asdict(ac), asdict(atc), self.ds.fingerprint, self.cfg.text_model)

        def run():
            from specgr.train.aux import train_aux

            _, info = train_aux(self.ds, self.cfg.text_model, ac, atc, out_dir=self._stage_dir("aux"))
            return info

        self.run_stage("aux", h, run, force)

    def stage_sasrec(self, force=False):
        sc, stc = self.cfg.sasrec_cfgs()
        h = config_hash(asdict(sc), asdict(stc), self.ds.fingerprint)

        def run():
            from specgr.train.sasrec import train_sasrec

            _, info = train_sasrec(self.ds, sc, stc, out_dir=self._stage_dir("sasrec"))
            return info

        self.run_stage("sasrec", h, run, force)

    def stage_export(self, force=False, specgr_defaults: dict | None = None, metrics: dict | None = None):
        parts = [self.hashes.get(k) for k in ("tiger", "specgr_pp", "aux")]
        h = config_hash(*parts, specgr_defaults, metrics)
        models = config_hash(*parts)  # what the weights come from (recorded in the bundle)

        def run():
            from specgr.checkpoint import read_config, save_checkpoint
            from specgr.export import export_bundle
            from specgr.sid.build import load_sid_artifacts

            bundle = self._stage_dir("export") / "bundle"
            made = read_config(bundle) if bundle.exists() else None
            if not force and made and made.get("extra", {}).get("models_hash") == models:
                # the same weights, new tuned values (the export after `tune`): rewrite the recorded values in place
                # (atomically) instead of rebuilding the bundle, which needs every training stage's directory
                save_checkpoint(bundle, {"specgr_defaults": specgr_defaults or {}}, {},
                                extra={"metrics": metrics or {}})
                self._cache.pop("bundle", None)
                return {"path": str(bundle), "updated_in_place": True}
            sids, tok, sc = load_sid_artifacts(self.ds.path, self.cfg.sid_cfg().method, device="cpu")
            # each stage directory holds the component of its name; the aux stage is optional
            comps = {name: self._stage_dir(name) for name in ("tiger", "specgr_pp", "aux")
                     if name != "aux" or (self._stage_dir(name) / "stage.json").exists()}
            export_bundle(bundle, self.ds, sids, tok, sc, comps, text_model=self.cfg.text_model,
                          specgr_defaults=specgr_defaults or {}, metrics=metrics)
            save_checkpoint(bundle, {}, {}, extra={"models_hash": models})  # what the weights were exported from
            self._cache.pop("bundle", None)
            return {"path": str(bundle)}

        self.run_stage("export", h, run, force)

    # ------------------------------------------------------------------ tuning and evaluation
    def _eval(self, method, split="test", cfg=None, rows=None, max_rows=None, tag=None, params=None,
              exclude_history: bool = False, quiet: bool = False, num_beams: int = 50):
        from specgr.evaluate import evaluate
        from specgr.recommenders import make_recommender

        ec = self.cfg.eval_cfg()
        rows = rows if rows is not None else self.ds.rows(split)
        fn = make_recommender(self.bundle(), method, cfg, sasrec=self.sasrec() if method == "sasrec" else None,
                              exclude_history=exclude_history, num_beams=num_beams)
        p = dict(params or {})
        if method == "tiger":
            p["num_beams"] = num_beams
        if cfg is not None:
            p.update(cfg.to_dict())
        p["exclude_history"] = exclude_history
        r = evaluate(fn, rows, self.ds.n_in_sample, tag or method, self.ds_name, split, batch_size=ec.batch_size,
                     device=self.device, params=p, max_rows=max_rows, progress=False, by_length=ec.by_length)
        if not quiet:
            self.log(f"  {tag or method:<34} {split:<5} R@10 {r['overall']['recall@10']:.4f} R@50 "
                     f"{r['overall']['recall@50']:.4f} N@50 {r['overall']['ndcg@50']:.4f} | in R@50 "
                     f"{r['in_sample']['recall@50']:.4f} unseen R@50 {r['unseen']['recall@50']:.4f} | "
                     f"{r['recs_per_s']:.0f} rec/s")
        return r

    def valid_subset(self, n):
        """The tuning rows: a seeded (seed 0) subset of n valid rows, or all of them (n None or >= the split)."""
        from specgr.train.tiger import valid_rows_subset

        return valid_rows_subset(self.ds, n, seed=0)

    def stage_tune(self, force=False):
        from specgr.evaluate import flatten_result
        from specgr.tune import coordinate_search, metric_fn, with_unseen_floor

        tc = self.cfg.tune_cfg()
        base = self.cfg.specgr_cfg()
        # the models it scores, not the export's hash: the export also records the tuned values, so hashing it made the
        # next run's tune stage stale by its own output and re-ran it
        h = config_hash(asdict(tc), base.to_dict(), *(self.hashes.get(k) for k in ("tiger", "specgr_pp", "aux")))
        out = self.results_root / self.ds_name / "tune.json"

        def run():
            rows = self.valid_subset(tc.valid_rows)
            metric = metric_fn(tc.metric)
            best, choices, valid_score, passes_run, table, ranked = {}, {}, {}, {}, [], {}
            floor = {"ratio": tc.unseen_floor, "variants": list(tc.floor_variants), "drafter_alone": {}}
            if tc.unseen_floor > 0:
                for d in self.bundle().available_drafters:  # any drafter, as the comparison it guards
                    r = self._eval(f"drafter-{d}", "valid", rows=rows, exclude_history=tc.exclude_history, quiet=True)
                    floor["drafter_alone"][d] = r["unseen"]["recall@50"]
            floor["value"] = tc.unseen_floor * max(floor["drafter_alone"].values(), default=0.0)
            fits = {}
            for drafter in tc.drafters:
                method = {"encoder": "specgr++", "aux": "specgr-aux", "knn": "specgr-knn"}[drafter]
                for variant in tc.variants:
                    tag = f"{method}_{variant}"
                    start = variant_config(base, variant, drafter)
                    if variant == "learned":
                        start, fits[drafter] = self._fit_learned(start, drafter, tc)

                    def score(c, tag=tag):
                        return self._eval(method, "valid", c, rows=rows, tag=tag, exclude_history=tc.exclude_history,
                                          quiet=True)

                    floored = with_unseen_floor(metric, floor["value"] if variant in tc.floor_variants else 0.0)
                    cfg, rec = coordinate_search(score, start, list(VARIANTS[variant][1]),
                                                 metric=floored, grids=tc.grids, max_widen=tc.max_widen,
                                                 on_edge=tc.on_edge, passes=tc.passes)
                    table += [{"drafter": drafter, "variant": variant, "pass": pt["pass"], "knob": pt["knob"],
                               "value": pt["value"], **flatten_result(pt["result"], knobs=True)}
                              for pt in rec["points"]]
                    best.setdefault(drafter, {})[variant] = cfg.to_dict()
                    choices.setdefault(drafter, {})[variant] = rec["choices"]
                    passes_run.setdefault(drafter, {})[variant] = rec["passes_run"]
                    # the score of the config chosen, not of a grid: under several passes the last knob's grid is not
                    # the only place the best point can be
                    valid_score.setdefault(drafter, {})[variant] = metric(rec["best_result"])
                    floor.setdefault("chosen_unseen", {})[tag] = u = rec["best_result"]["unseen"]["recall@50"]
                    floor.setdefault("met", {})[tag] = u >= floor["value"]
                    # the bundle's default variant (best_variant) must keep the promise too, whichever variant it is
                    ranked.setdefault(drafter, {})[variant] = with_unseen_floor(metric, floor["value"])(
                        rec["best_result"])
                    self.log(f"[tune] {tag}: best on valid ({rec['passes_run']} pass(es)) " + ", ".join(
                        f"{c['knob']}={c['chosen']}" + ("" if c["interior"] else " (EDGE)") for c in rec["choices"]))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"best": best, "choices": choices, "metric": tc.metric, "passes": tc.passes,
                                       "passes_run": passes_run, "valid_score": valid_score,
                                       "best_variant": {d: max(v, key=v.get) for d, v in ranked.items()},
                                       "ranked_score": ranked,
                                       "valid_rows": len(rows), "exclude_history": tc.exclude_history,
                                       "unseen_floor": floor, "learned_fit": fits,
                                       "all_interior": all(c["interior"] for d in choices.values()
                                                           for v in d.values() for c in v),
                                       "table": table}, indent=2))
            import pandas as pd

            pd.DataFrame(table).to_csv(out.with_suffix(".csv"), index=False)
            return {"best": best}

        self.run_stage("tune", h, run, force)
        return json.loads(out.read_text())["best"]

    def _fit_learned(self, start, drafter: str, tc):
        """The learned variant's starting config (start + final_weights fitted on valid) and the fit's record."""
        from specgr.speculate.learned_rank import fit_final_weights
        from specgr.train.tiger import valid_rows_outside

        rows, on_tuning_rows = valid_rows_outside(self.ds, tc.valid_rows, 0, tc.learned_fit_rows), False
        if len(rows.target) == 0:  # valid has no rows beyond the tuning rows
            rows, on_tuning_rows = self.valid_subset(tc.valid_rows), True
        b = self.bundle()
        w, rec = fit_final_weights(b.verifier(drafter).eval(), b.drafter(drafter), b.sids.to(b.device), rows,
                                   tc.learned_fit_drafts, start.length_rule, start.min_len,
                                   exclude_history=tc.exclude_history)
        rec["on_tuning_rows"] = on_tuning_rows
        self.log(f"[tune] {drafter} learned final ranking: fitted on {rec['rows']} valid rows "
                 f"({rec['rows_with_target_drafted']} with the target among {tc.learned_fit_drafts} drafts)"
                 + (" (the tuning rows: valid has no others)" if on_tuning_rows else ""))
        return start.replace(final_weights=w), rec

    def stage_evaluate(self, best: dict, force=False):
        from specgr.speculate import SpecGRConfig

        ec = self.cfg.eval_cfg()
        tc = self.cfg.tune_cfg()
        h = config_hash(ec.hashed(), best, self.hashes.get("export"), self.hashes.get("sasrec"))
        res_dir = self.results_root / self.ds_name

        def run():
            res_dir.mkdir(parents=True, exist_ok=True)
            results = {}

            def save(name, r):
                results[name] = r
                (res_dir / f"{name}.json").write_text(json.dumps(r, indent=2))

            mr = ec.max_rows
            protocols = (("", False), ("_nohist", True))  # every method both ways (history excluded or not)
            baselines = [(m, m, 50) for m in ("sasrec", "drafter-aux", "drafter-encoder", "drafter-knn")]
            baselines += [("tiger", "tiger", ec.tiger_beams)] + ([("tiger", "tiger_beam50", 50)]
                                                                 if ec.tiger_beams != 50 else [])
            for m, name, beams in baselines:
                for suffix, excl in protocols:
                    try:
                        save(name + suffix, self._eval(m, max_rows=mr, exclude_history=excl, tag=name + suffix,
                                                       num_beams=beams))
                    except (FileNotFoundError, ValueError) as e:
                        self.log(f"  {m}: skipped ({e})")
                        break
            for drafter, variants in best.items():
                method = {"encoder": "specgr++", "aux": "specgr-aux", "knn": "specgr-knn"}[drafter]
                for variant, cd in variants.items():
                    c = SpecGRConfig(**cd)
                    # every variant under the tuning protocol; the paper's loop under both
                    for suffix, excl in (protocols if variant == "paper" else
                                         [pr for pr in protocols if pr[1] == tc.exclude_history]):
                        name = f"{method}_{variant}{suffix}"
                        save(name, self._eval(method, cfg=c, max_rows=mr, tag=name, exclude_history=excl,
                                              params={"variant": variant}))
                if ec.ablations and "paper" in variants:  # the paper's ablations of its own loop
                    c = SpecGRConfig(**variants["paper"])
                    for name, cc in (("no-redraft", c.replace(guided_redraft=False)),
                                     ("no-inductive", c.replace(inductive=False))):
                        save(f"{method}_paper_{name}", self._eval(method, cfg=cc, max_rows=mr,
                                                                  tag=f"{method}_paper_{name}"))
            if ec.diagnostics:
                self._acceptance_curve(best, ec, res_dir)
                self._verifier_scores(res_dir)
            return {"methods": list(results)}

        self.run_stage("evaluate", h, run, force)

    def _acceptance_curve(self, best: dict, ec, res_dir: Path):
        """Acceptance rate (and recall) vs γ per drafter, paper variant, on a valid subset: the paper's figure."""
        from specgr.speculate import SpecGRConfig

        rows = self.valid_subset(ec.curve_rows)
        curve = []
        for drafter, method in (("encoder", "specgr++"), ("aux", "specgr-aux"), ("knn", "specgr-knn")):
            cd = best.get(drafter, best.get("aux", {})).get("paper")
            if cd is None:
                continue
            for g in ec.curve_gammas:
                r = self._eval(method, "valid", SpecGRConfig(**cd).replace(threshold=g), rows=rows,
                               tag=f"{method} γ={g}", quiet=True)
                curve.append({"method": method, "gamma": g, "acceptance_rate": r["mean_acceptance_rate"],
                              "recall@50": r["overall"]["recall@50"],
                              "in_sample_recall@50": r["in_sample"]["recall@50"],
                              "unseen_recall@50": r["unseen"]["recall@50"], "rounds": r["mean_rounds"],
                              "recs_per_s": r["recs_per_s"]})
        (res_dir / "acceptance_curve.json").write_text(json.dumps(curve, indent=2))

    def _verifier_scores(self, res_dir: Path, n_rows: int = 8192):
        """V of the test targets under each verifier, in-sample vs unseen, by the target's in-sample prefix length:
        why new items are (not) accepted."""
        from specgr.speculate.verify_stats import target_score_table

        b = self.bundle()
        rows = self.ds.rows("test")
        rows = rows.subset(np.arange(min(len(rows), n_rows)))
        out = {name: target_score_table(b.verifier(d), b.sids, rows, device=self.device)
               for name, d in (("tiger", "aux"), ("specgr++", "encoder"))}
        (res_dir / "verifier_scores.json").write_text(json.dumps(out, indent=2))


def run_pipeline(cfg: PipelineConfig, stages=STAGES, force=(), mirror=None, export_to=None, **kw) -> Pipeline:
    from specgr.distributed import refuse_launch

    refuse_launch("run_pipeline")  # every stage would run in every process (the `specgr pipeline` door says so too)
    p = Pipeline(cfg, **kw)
    f = set(force)
    p.stage_prepare("prepare" in f, mirror=mirror) if "prepare" in stages else None
    p.hashes.setdefault("prepare", "")
    # stages not asked for still contribute their recorded hash, so downstream caching stays correct
    for name in ("sid", "tiger", "specgr_pp", "aux", "sasrec"):
        if name in stages:
            getattr(p, f"stage_{name}")(name in f)
        else:
            sf = p._stage_dir(name) / "stage.json"
            p.hashes[name] = json.loads(sf.read_text())["hash"] if sf.exists() else ""
    best = None
    tune_json = p.results_root / p.ds_name / "tune.json"
    if "export" in stages:
        prev = json.loads(tune_json.read_text())["best"] if tune_json.exists() else None
        p.stage_export("export" in f, specgr_defaults=_defaults(p, prev))
    if "tune" in stages:
        best = p.stage_tune("tune" in f)
        p.stage_export(False, specgr_defaults=_defaults(p, best))  # the bundle carries the tuned values
    if "evaluate" in stages:
        if best is None:
            best = json.loads(tune_json.read_text())["best"] if tune_json.exists() else {}
        p.stage_evaluate(best, "evaluate" in f)
    if export_to:
        import shutil

        src = p._stage_dir("export") / "bundle"
        shutil.copytree(src, export_to, dirs_exist_ok=True)
        p.log(f"bundle copied to {export_to}")
    p._write_log()
    return p


def _defaults(p: Pipeline, best: dict | None) -> dict:
    """The bundle's SpecGR settings per drafter: the tuned variant that scored best on valid among those meeting the
    unseen floor (tune.json's best_variant), else the paper's loop; knn borrows aux's."""
    base = p.cfg.specgr_cfg().to_dict()
    tune = p.results_root / p.ds_name / "tune.json"
    winner = json.loads(tune.read_text()).get("best_variant", {}) if best and tune.exists() else {}
    out = {}
    for d in ("encoder", "aux", "knn"):
        src = d if d != "knn" else "aux"
        v = winner.get(src)
        out[d] = {**base, **best[src][v], "exclude_history": True} if v else dict(base)
    return out
