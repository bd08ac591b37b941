"""Speed and recall@K of graphed SpecGR against γ, per graph mode, beside TIGER's beam search.

    python benchmarks/speed_vs_gamma.py results/speed/bench_speculate_h100_release19_valid_*.json \
        results/speed/bench_speculate_h100_release20_valid_{1.4,1.8,2.2,2.6,3.0,4.0,inf}_shrink.json \
        --json results/speed_vs_gamma.json --png docs/speed_vs_gamma.png

Reads `bench_speculate.py --cuda-graph` results (one file per γ and graph mode, the same rows and checkpoint) and
writes one row per γ: recs/s of the graphed loop in each mode it was run in: `shrink` (the default: early exit, and
later rounds on fewer rows once the live users fit them), `early_exit` (`--graph-no-shrink`: a batch stops after the
round where its last user finished, every round on the whole batch) and `one_graph` (`--graph-no-exit`: every
round), TIGER's graphed beam search in the same runs, the rounds the graphed batches replayed, acceptance and
recall@K. The paper's figure of time per recommendation against γ is the model (docs/RESULTS.md §4, releases 19-20).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from specgr.evaluate import write_json


def graph_mode(run: dict) -> str:
    """A graphed run's mode: "shrink", "early_exit" or "one_graph" (files before release 20 have no graph_shrink)."""
    if not run.get("graph_early_exit"):
        return "one_graph"
    return "shrink" if run.get("graph_shrink") else "early_exit"


def rows_by_gamma(paths: list[str]) -> list[dict]:
    """bench_speculate JSON files -> one row per γ (ascending |γ|), both graph modes side by side."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    if not runs:
        raise ValueError("no result files. Fix: pass the bench_speculate.py --json files of the γ sweep.")
    setups = {(r["model"], r["rows"], r["drafter"], r["config"]["draft_size"], r["config"]["num_beams"]) for r in runs}
    if len(setups) > 1:
        raise ValueError(f"the files mix setups {sorted(setups)}. Fix: pass one checkpoint, split, drafter, δ and β.")
    by = {}
    for r in runs:
        if not r.get("cuda_graph"):
            raise ValueError(f"{r['rows']} γ {r['config']['threshold']}: not a --cuda-graph run. Fix: pass graphed "
                             "runs only.")
        row = by.setdefault(r["config"]["threshold"], {"gamma": r["config"]["threshold"], "beam": []})
        mode = graph_mode(r)
        b = r["batched"]
        row[mode] = b["recs_per_s"]
        row["beam"].append(r["tiger_beam"]["recs_per_s"])
        if mode == "early_exit":
            row["batch_rounds_replayed"] = b["batch_rounds_replayed"]
        if mode == "shrink":
            row["batch_row_rounds"] = b["batch_row_rounds"]
        k = next(key for key in b if key.startswith("recall@"))
        row.update(acceptance=b["acceptance_rate"], mean_rounds=b["mean_rounds"], recall=b[k],
                   beam_recall=r["tiger_beam"][k], k=k)
    out = []
    for g in sorted(by, reverse=True):
        row = by[g]
        row["beam"] = statistics.mean(row["beam"])
        for mode in ("shrink", "early_exit"):
            if mode in row:
                row[f"{mode}_vs_beam"] = row[mode] / row["beam"]
        out.append(row)
    return out


def plot(rows: list[dict], title: str, png: str) -> None:
    """recs/s and recall@K against γ (-inf drawn at the left end)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [r["gamma"] for r in rows if r["gamma"] != float("-inf")]
    low = min(finite) - 1.0 if finite else -1.0
    x = [r["gamma"] if r["gamma"] != float("-inf") else low for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label, style in (("shrink", "SpecGR++, graphed, early exit + fewer rows", "D-"),
                              ("early_exit", "SpecGR++, graphed, early exit", "o-"),
                              ("one_graph", "SpecGR++, one graph, every round", "s--"),
                              ("beam", "TIGER beam search, graphed", "^:")):
        pts = [(xi, r[key]) for xi, r in zip(x, rows) if key in r]
        a1.plot(*zip(*pts), style, label=label)
    a2.plot(x, [r["recall"] for r in rows], "o-", label="SpecGR++")
    a2.plot(x, [r["beam_recall"] for r in rows], "^:", label="TIGER beam search")
    ticks = [(xi, "−∞" if r["gamma"] == float("-inf") else f"{r['gamma']:g}") for xi, r in zip(x, rows)]
    for a in (a1, a2):
        a.set_xticks([t for t, _ in ticks], [s for _, s in ticks])
        a.set_xlabel("γ (acceptance threshold)")
        a.legend(fontsize=8)
    a1.set(ylabel="recommendations / s", title=title)
    a2.set(ylabel=rows[0]["k"] if rows else "recall")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="bench_speculate.py --cuda-graph result files, one per γ and mode")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--png", help="plot them here")
    a = ap.parse_args(argv)
    rows = rows_by_gamma(a.files)
    first = json.loads(Path(a.files[0]).read_text())
    meta = {k: first[k] for k in ("gpu", "model", "rows", "drafter", "batch_size", "compile")}
    print(json.dumps(rows, indent=2))
    if a.json:
        write_json({**meta, "sources": sorted(Path(f).name for f in a.files), "rows": rows}, a.json)
    if a.png:
        plot(rows, f"{meta['rows']}, batch {meta['batch_size']}, {meta['gpu']}", a.png)
    return rows


if __name__ == "__main__":
    main()
