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

from specgr.config import apply_overrides, config_hash, from_dict, load_preset
from specgr.utils import resolve_device

STAGES = ("prepare", "sid", "tiger", "specgr_pp", "aux", "sasrec", "export", "tune", "evaluate")


@dataclass
class TuneConfig:
    """δ, β, γ are tuned on valid (one coordinate at a time from the defaults); test is reported once."""

    gammas: tuple = (-1.0, -1.2, -1.4, -1.6, -1.8, -2.0)
    deltas: tuple = (20, 50, 100)
    betas: tuple = (10, 30, 50)
    metric: str = "recall@50"
    valid_rows: int | None = 8192  # seeded subset of valid rows (None = all)
    drafters: tuple = ("encoder", "aux")


@dataclass
class EvalConfig:
    batch_size: int = 512
    max_rows: int | None = None  # None = the whole test split
    ablations: bool = True
    curve_gammas: tuple = (-1.0, -1.2, -1.4, -1.6, -1.8, -2.0, -2.2)
    curve_rows: int = 4096


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
    return from_dict(PipelineConfig, d)


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
        self._ds = self._sids = self._tok = None
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

    def sids_and_tokenizer(self):
        if self._sids is None:
            from specgr.sid.build import load_sid_artifacts

            self._sids, self._tok, _ = load_sid_artifacts(self.ds.path, self.cfg.sid_cfg().method, device="cpu")
        return self._sids, self._tok

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

    def stage_tiger(self, force=False):
        mc, tc = self.cfg.tiger_cfg(), self.cfg.tiger_train_cfg()
        h = config_hash(asdict(mc), tc.to_dict(), self.hashes["sid"])

        def run():
            from specgr.train.tiger import train_tiger

            sids, _ = self.sids_and_tokenizer()
            _, info = train_tiger(self.ds, sids, mc, tc, out_dir=self._stage_dir("tiger"), resume=not force)
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

            sids, _ = self.sids_and_tokenizer()
            state = self.tiger().state_dict() if init == "tiger" else None
            # train_specgr_pp writes its checkpoint directory itself (specgr.drafters.encoder.save_specgr_pp)
            _, _, _, info = train_specgr_pp(self.ds, sids, mc, pc, out_dir=self._stage_dir("specgr_pp"),
                                            init_model_state=state, **self.trainer_kwargs)
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
        h = config_hash(self.hashes.get("tiger"), self.hashes.get("specgr_pp"), self.hashes.get("aux"),
                        specgr_defaults, metrics)

        def run():
            from specgr.export import export_bundle
            from specgr.sid.build import load_sid_artifacts

            sids, tok, sc = load_sid_artifacts(self.ds.path, self.cfg.sid_cfg().method, device="cpu")
            # each stage directory holds the component of its name; the aux stage is optional
            comps = {name: self._stage_dir(name) for name in ("tiger", "specgr_pp", "aux")
                     if name != "aux" or (self._stage_dir(name) / "stage.json").exists()}
            export_bundle(self._stage_dir("export") / "bundle", self.ds, sids, tok, sc, comps,
                          text_model=self.cfg.text_model, specgr_defaults=specgr_defaults or {}, metrics=metrics)
            self._cache.pop("bundle", None)
            return {"path": str(self._stage_dir("export") / "bundle")}

        self.run_stage("export", h, run, force)

    # ------------------------------------------------------------------ tuning and evaluation
    def _eval(self, method, split="test", cfg=None, rows=None, max_rows=None, tag=None, params=None):
        from specgr.evaluate import evaluate
        from specgr.recommenders import make_recommender

        ec = self.cfg.eval_cfg()
        rows = rows if rows is not None else self.ds.rows(split)
        fn = make_recommender(self.bundle(), method, cfg, sasrec=self.sasrec() if method == "sasrec" else None)
        p = dict(params or {})
        if cfg is not None:
            p.update(cfg.to_dict())
        r = evaluate(fn, rows, self.ds.n_in_sample, tag or method, self.ds.name, split, batch_size=ec.batch_size,
                     device=self.device, params=p, max_rows=max_rows, progress=False)
        self.log(f"  {tag or method:<28} {split:<5} R@10 {r['overall']['recall@10']:.4f} R@50 "
                 f"{r['overall']['recall@50']:.4f} N@50 {r['overall']['ndcg@50']:.4f} | in R@50 "
                 f"{r['in_sample']['recall@50']:.4f} unseen R@50 {r['unseen']['recall@50']:.4f} | "
                 f"{r['recs_per_s']:.0f} rec/s")
        return r

    def valid_subset(self, n):
        rows = self.ds.rows("valid")
        if n is None or n >= len(rows):
            return rows
        idx = np.sort(np.random.default_rng(0).choice(len(rows), n, replace=False))
        return rows.subset(idx)

    def stage_tune(self, force=False):
        tc = self.cfg.tune_cfg()
        base = self.cfg.specgr_cfg()
        h = config_hash(asdict(tc), base.to_dict(), self.hashes.get("export"))
        out = self.results_root / self.ds_name / "tune.json"

        def run():
            rows = self.valid_subset(tc.valid_rows)
            best, table = {}, []
            for drafter in tc.drafters:
                method = {"encoder": "specgr++", "aux": "specgr-aux", "knn": "specgr-knn"}[drafter]
                cur = base
                for knob, values in (("threshold", tc.gammas), ("draft_size", tc.deltas), ("num_beams", tc.betas)):
                    scores = {}
                    for v in values:
                        c = cur.replace(**{knob: v})
                        r = self._eval(method, "valid", c, rows=rows, tag=f"{method} {knob}={v}")
                        scores[v] = r["overall"][tc.metric]
                        table.append({"drafter": drafter, "knob": knob, "value": v, **c.to_dict(),
                                      **{f"{g}_{k}": r[g][k] for g in ("overall", "in_sample", "unseen")
                                         for k in ("recall@10", "recall@50", "ndcg@10", "ndcg@50")},
                                      "acceptance_rate": r.get("mean_acceptance_rate"),
                                      "rounds": r.get("mean_rounds"), "unseen_share": r["unseen_share_of_recs"],
                                      "recs_per_s": r["recs_per_s"]})
                    cur = cur.replace(**{knob: max(scores, key=scores.get)})
                best[drafter] = {k: getattr(cur, k) for k in ("threshold", "draft_size", "num_beams")}
                self.log(f"[tune] {drafter}: best on valid {best[drafter]}")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"best": best, "metric": tc.metric, "valid_rows": len(rows), "table": table},
                                      indent=2))
            import pandas as pd

            pd.DataFrame(table).to_csv(out.with_suffix(".csv"), index=False)
            return {"best": best}

        self.run_stage("tune", h, run, force)
        return json.loads(out.read_text())["best"]

    def stage_evaluate(self, best: dict, force=False):
        ec = self.cfg.eval_cfg()
        base = self.cfg.specgr_cfg()
        h = config_hash(asdict(ec), best, self.hashes.get("export"), self.hashes.get("sasrec"))
        res_dir = self.results_root / self.ds_name

        def run():
            res_dir.mkdir(parents=True, exist_ok=True)
            results = {}

            def save(name, r):
                results[name] = r
                (res_dir / f"{name}.json").write_text(json.dumps(r, indent=2))

            enc = base.replace(**best.get("encoder", {}))
            aux = base.replace(**best.get("aux", {}))
            mr = ec.max_rows
            for m in ("sasrec", "drafter-aux", "drafter-encoder", "drafter-knn", "tiger"):
                try:
                    save(m, self._eval(m, max_rows=mr))
                except (FileNotFoundError, ValueError) as e:
                    self.log(f"  {m}: skipped ({e})")
            save("specgr++", self._eval("specgr++", cfg=enc, max_rows=mr))
            save("specgr-aux", self._eval("specgr-aux", cfg=aux, max_rows=mr))
            if ec.ablations:
                save("specgr-knn", self._eval("specgr-knn", cfg=aux, max_rows=mr))
                for name, drafter, c in (
                        ("specgr++_no-redraft", "specgr++", enc.replace(guided_redraft=False)),
                        ("specgr++_no-inductive", "specgr++", enc.replace(inductive=False)),
                        ("specgr++_vnew", "specgr++", type(enc).official_vnew("encoder", threshold=enc.threshold,
                                                                              draft_size=enc.draft_size,
                                                                              num_beams=enc.num_beams)),
                        ("specgr-aux_no-redraft", "specgr-aux", aux.replace(guided_redraft=False)),
                        ("specgr-aux_no-inductive", "specgr-aux", aux.replace(inductive=False)),
                        ("specgr-aux_vnew", "specgr-aux", type(aux).official_vnew("aux", threshold=aux.threshold,
                                                                                  draft_size=aux.draft_size,
                                                                                  num_beams=aux.num_beams))):
                    save(name, self._eval(drafter, cfg=c, max_rows=mr, tag=name))
                # acceptance rate vs gamma per drafter (valid subset)
                rows = self.valid_subset(ec.curve_rows)
                curve = []
                for method, c in (("specgr++", enc), ("specgr-aux", aux), ("specgr-knn", aux)):
                    for g in ec.curve_gammas:
                        r = self._eval(method, "valid", c.replace(threshold=g), rows=rows, tag=f"{method} γ={g}")
                        curve.append({"method": method, "gamma": g, "acceptance_rate": r["mean_acceptance_rate"],
                                      "recall@50": r["overall"]["recall@50"],
                                      "in_sample_recall@50": r["in_sample"]["recall@50"],
                                      "unseen_recall@50": r["unseen"]["recall@50"], "rounds": r["mean_rounds"],
                                      "recs_per_s": r["recs_per_s"]})
                (res_dir / "acceptance_curve.json").write_text(json.dumps(curve, indent=2))
            return {"methods": list(results)}

        self.run_stage("evaluate", h, run, force)


def run_pipeline(cfg: PipelineConfig, stages=STAGES, force=(), mirror=None, export_to=None, **kw) -> Pipeline:
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
    base = p.cfg.specgr_cfg().to_dict()
    out = {}
    for d in ("encoder", "aux", "knn"):
        c = dict(base)
        c.update((best or {}).get(d if d != "knn" else "aux", {}))
        out[d] = c
    return out
