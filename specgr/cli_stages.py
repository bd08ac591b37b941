"""Subcommands for the later stages: sid, train, evaluate, sweep, pipeline (registered by specgr.cli)."""

from __future__ import annotations

import json
from pathlib import Path

from specgr.cli_common import add_parser, bundle_args, positive_int, specgr_knobs
from specgr.cli_common import print_table as _table
from specgr.utils import resolve_device


def _pipeline_config(a):
    from specgr.pipeline import load_pipeline_config

    if not (a.dataset or a.preset):
        raise ValueError("which dataset? Fix: pass --dataset NAME (the folder under --data-root), or a --preset "
                         "that names its dataset.")
    return load_pipeline_config(a.preset or a.dataset, a.set, dataset=a.dataset)


def _pipeline(a):
    from specgr.pipeline import Pipeline

    return Pipeline(_pipeline_config(a), data_root=a.data_root, run_root=a.runs, results_root=a.results,
                    device=a.device)


def cmd_sid(a):
    from specgr.sid.quality import print_quality

    if a.method:
        a.set = (a.set or []) + [f"sid.method={a.method}"]
    if a.codebook_size:
        a.set = (a.set or []) + [f"sid.codebook_size={a.codebook_size}"]
    p = _pipeline(a)
    p.stage_sid(force=a.force)
    rep = json.loads((p.ds.path / "sid" / f"{p.cfg.sid_cfg().method}_report.json").read_text())
    print_quality(rep.get("quality", rep), title=f"semantic ids: {p.ds_name} ({p.cfg.sid_cfg().method})")


# the models `specgr train` can train on several GPUs (the others train on one device)
MULTI_GPU_MODELS = ("tiger", "specgr++")


def cmd_train(a):
    multi = a.devices != 1 or a.num_nodes != 1 or a.strategy
    if multi and a.model not in MULTI_GPU_MODELS:
        raise ValueError("multi-GPU training (--devices/--num-nodes/--strategy) is wired for `specgr train tiger` and "
                         "`specgr train specgr++`; aux and sasrec train on one device. Fix: drop those options.")
    sets = []
    if a.model == "tiger":  # TIGER's own trainer (Fabric) reads them from its config section
        if multi:
            sets += [f"tiger_train.devices={a.devices}", f"tiger_train.num_nodes={a.num_nodes}",
                     f"tiger_train.strategy={a.strategy or 'ddp'}"]
        if a.lr_scaling:
            sets.append(f"tiger_train.lr_scaling={a.lr_scaling}")
    elif a.lr_scaling:
        sets.append(f"specgr_pp.lr_scaling={a.lr_scaling}")
    a.set = (a.set or []) + sets
    p = _pipeline(a)
    if multi and a.model == "specgr++":
        p.trainer_kwargs = {"devices": a.devices, "num_nodes": a.num_nodes, **({"strategy": a.strategy}
                                                                                if a.strategy else {})}
    p.stage_sid()
    stage = {"tiger": "tiger", "specgr++": "specgr_pp", "aux": "aux", "sasrec": "sasrec"}[a.model]
    getattr(p, f"stage_{stage}")(force=a.force)
    print(f"trained {a.model}: {p._stage_dir(stage)} ({p.timings[stage]:.1f} s)")


def _rec_cfg(a, bundle, method):
    """The SpecGRConfig of a specgr-* method through the front door (Bundle.specgr_config): the bundle's tuned values,
    then the knobs given; None for the other methods, which take no knob but -k."""
    from specgr.recommenders import SPECGR_METHODS

    if method not in SPECGR_METHODS:
        given = [f for f, v in (("--delta", a.delta), ("--beta", a.beta), ("--gamma", a.gamma), ("--vnew", a.vnew),
                                ("--no-redraft", a.no_redraft), ("--no-inductive", a.no_inductive)) if v]
        if given:
            raise ValueError(f"{', '.join(given)}: SpecGR knobs (specgr++, specgr-aux, specgr-knn), which {method} "
                             "does not have. Fix: drop them, or choose a SpecGR method.")
        return None
    return bundle.specgr_config(SPECGR_METHODS[method], draft_size=a.delta, num_beams=a.beta, threshold=a.gamma,
                                top_k=a.k, vnew=a.vnew, guided_redraft=False if a.no_redraft else None,
                                inductive=False if a.no_inductive else None)


def cmd_evaluate(a):
    from specgr.bundle import Bundle
    from specgr.distributed import get_rank, launched
    from specgr.evaluate import evaluate, format_result, write_json
    from specgr.recommenders import make_recommender

    with launched(a.device) as dev:  # under torchrun: one rank per GPU, rows sharded, lists gathered
        device = str(dev)
        b = Bundle.load(a.checkpoint, data_root=a.data_root, device=device)
        cfg = _rec_cfg(a, b, a.method)
        sasrec = None
        if a.method == "sasrec" and a.sasrec:
            from specgr.drafters.sasrec import load_sasrec

            sasrec = load_sasrec(a.sasrec, ds=b.ds, device=device)
        fn = make_recommender(b, a.method, cfg, k=cfg.top_k if cfg else a.k or 50, sasrec=sasrec)
        r = evaluate(fn, b.ds.rows(a.split), b.ds.n_in_sample, a.method, b.ds.name, a.split,
                     batch_size=a.batch_size, device=device, params=cfg.to_dict() if cfg else {}, max_rows=a.max_rows,
                     by_length=a.by_length)
        if get_rank() != 0:  # every rank holds the same result: one prints and writes it
            return
        gpus = f", {r['world_size']} processes" if r["world_size"] > 1 else ""
        _table(f"{a.method} on {b.ds.name} {a.split} ({r['n_rows']:,} rows, {r['recs_per_s']:.0f} recs/s, "
               f"{r['device']}{gpus})", format_result(r), ("rows", "R@10", "R@50", "N@10", "N@50"))
        extras = {k: v for k, v in r.items() if k.startswith("mean_") or k == "unseen_share_of_recs"}
        if extras:
            print(json.dumps(extras, indent=2))
        if a.json:
            write_json(r, a.json)


def cmd_sweep(a):
    import pandas as pd

    from specgr.bundle import Bundle
    from specgr.evaluate import evaluate, flatten_result
    from specgr.recommenders import make_recommender
    from specgr.tune import sweep

    if a.gamma is not None or a.delta is not None or a.beta is not None:
        raise ValueError("sweep takes value lists. Fix: use --gammas / --deltas / --betas (not --gamma / --delta / "
                         "--beta)")
    device = str(resolve_device(a.device))
    b = Bundle.load(a.checkpoint, data_root=a.data_root, device=device)
    rows = b.ds.rows(a.split)

    def score(c):
        r = evaluate(make_recommender(b, a.method, c), rows, b.ds.n_in_sample, a.method, b.ds.name, a.split,
                     batch_size=a.batch_size, device=device, max_rows=a.max_rows, progress=False,
                     params=c.to_dict())
        print(f"γ={c.threshold} δ={c.draft_size} β={c.num_beams}: R@50 {r['overall']['recall@50']:.4f} "
              f"acc {r.get('mean_acceptance_rate', 0):.2f} {r['recs_per_s']:.0f} rec/s")
        return r

    pts = sweep(score, _rec_cfg(a, b, a.method), {"threshold": a.gammas, "draft_size": a.deltas,
                                                   "num_beams": a.betas})
    df = pd.DataFrame([flatten_result(p["result"], knobs=True) for p in pts])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False)
    print(f"wrote {a.out} ({len(df)} rows)")


def cmd_pipeline(a):
    from specgr.pipeline import STAGES, run_pipeline

    cfg = _pipeline_config(a)
    stages = STAGES if not a.stages else tuple(s.strip() for s in a.stages.split(","))
    bad = set(stages) - set(STAGES)
    if bad:
        raise ValueError(f"unknown stages {sorted(bad)}; stages: {', '.join(STAGES)}")
    p = run_pipeline(cfg, stages, force=a.force_stages.split(",") if a.force_stages else (), mirror=a.mirror,
                     export_to=a.export, data_root=a.data_root, run_root=a.runs, results_root=a.results,
                     device=a.device)
    _table("pipeline wall time", [(k, f"{v:.1f} s") for k, v in p.timings.items()], ("stage", "wall"))


def _common(p):
    p.add_argument("--dataset", default=None, help="the processed dataset: its folder under --data-root, e.g. "
                   "amazon2014-beauty-loo (default: the preset's dataset and split)")
    p.add_argument("--preset", default=None, help="YAML preset name in specgr/configs or a path (default: the "
                   "dataset name)")
    p.add_argument("--set", nargs="*", default=None, metavar="SECTION.KEY=VALUE",
                   help="override preset values, e.g. tiger_train.epochs=5 sid.method=rqkmeans")
    p.add_argument("--data-root", default="data/processed", help="root of processed datasets")
    p.add_argument("--runs", default="runs", help="where stage outputs go (runs/<dataset>/<stage>/)")
    p.add_argument("--results", default="results", help="where result JSONs go (results/<dataset>/)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def _ckpt_args(p):
    bundle_args(p)
    p.add_argument("--split", default="test", choices=["valid", "test"], help="rows to evaluate on")
    p.add_argument("--max-rows", type=positive_int, default=None, help="evaluate the first N rows only")


def register(sub):
    from specgr.recommenders import METHODS

    p = add_parser(sub, "sid", "semantic ids (RQ-VAE or RQ-KMeans) for a prepared dataset + quality report")
    _common(p)
    p.add_argument("--method", choices=["rqvae", "rqkmeans"], default=None, help="tokenizer (default: preset's)")
    p.add_argument("--codebook-size", type=int, default=None, help="codes per level C (default: preset's)")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.set_defaults(fn=cmd_sid)

    p = add_parser(sub, "train", "train one model from a YAML preset")
    p.add_argument("model", choices=["tiger", "specgr++", "aux", "sasrec"], help="what to train")
    _common(p)
    p.add_argument("--force", action="store_true", help="retrain even if up to date")
    p.add_argument("--devices", type=int, default=1, help="GPUs per node (tiger, specgr++; see docs/DISTRIBUTED.md)")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (tiger, specgr++; torchrun or SLURM launches them)")
    p.add_argument("--strategy", default=None, help="Lightning strategy, e.g. ddp (tiger, specgr++)")
    p.add_argument("--lr-scaling", default=None, choices=["none", "linear", "sqrt"],
                   help="lr/warmup scaling with the GPU count (default none: the configured lr is the lr used)")
    p.set_defaults(fn=cmd_train)

    p = add_parser(sub, "evaluate", "overall / in-sample / unseen Recall & NDCG of a method on a split")
    p.add_argument("--method", required=True, choices=METHODS, help="what to evaluate")
    _ckpt_args(p)
    specgr_knobs(p)
    p.add_argument("--sasrec", default=None, help="SASRec run directory (method sasrec)")
    p.add_argument("--json", default=None, help="write the results JSON (shared schema) here")
    p.add_argument("--by-length", action="store_true", help="batch users of similar history lengths and cut each "
                   "batch's padding: faster, the same lists up to float rounding (default: row order)")
    p.set_defaults(fn=cmd_evaluate)

    p = add_parser(sub, "sweep", "grid over γ, δ, β; writes a tidy CSV for plotting")
    p.add_argument("--method", default="specgr++", choices=["specgr++", "specgr-aux", "specgr-knn"],
                   help="which SpecGR drafter to sweep: SpecGR++ (encoder), SpecGR_Aux (text) or semantic-KNN")
    _ckpt_args(p)
    specgr_knobs(p)
    p.add_argument("--gammas", type=float, nargs="+", default=[-1.2, -1.4, -1.6, -1.8], help="γ values")
    p.add_argument("--deltas", type=int, nargs="+", default=[50], help="δ values")
    p.add_argument("--betas", type=int, nargs="+", default=[30], help="β values")
    p.add_argument("--out", default="runs/sweep.csv", help="output CSV (runs/ is git-ignored; results/ holds the "
                   "committed results)")
    p.set_defaults(fn=cmd_sweep, split="valid")

    p = add_parser(sub, "pipeline", "every stage, resumable: prepare, sid, tiger, specgr_pp, aux, sasrec, "
                       "export, tune (valid), evaluate (test)")
    _common(p)
    p.add_argument("--stages", default=None, help="comma-separated subset of stages (default: all)")
    p.add_argument("--force-stages", default=None, help="comma-separated stages to re-run even if up to date")
    p.add_argument("--mirror", default=None, help="data mirror folder (overrides $SPECGR_DATA_MIRROR)")
    p.add_argument("--export", default=None, help="copy the final bundle here (e.g. checkpoints/amazon2018-game)")
    p.set_defaults(fn=cmd_pipeline)
