"""Several benchmarks/bench_speculate.py runs in one process, so that Inductor compiles each decoder shape once.

    python3 scripts/gpu/bench_many.py "BASE ARGS" NAME="EXTRA ARGS" ...
    python3 scripts/gpu/bench_many.py --summary RESULT.json          # the summary line of one result file

Each run writes $OUT/bench_speculate_h100_${BENCH_RELEASE:-release7}_NAME.json and prints one summary line.
"""

import json
import os
import sys
import time

sys.path.insert(0, "benchmarks")
import bench_speculate  # noqa: E402


def summary(d: dict) -> str:
    """recs/s of both methods, agreement with the reference, acceptance (and recall@K with real rows): one line."""
    rec = {k: round(d[k][r], 4) for k in ("batched", "tiger_beam") for r in d[k] if r.startswith("recall@")}
    return (f"{ {k: round(d[k]['recs_per_s']) for k in ('batched', 'tiger_beam')} } agreement "
            f"{d.get('reference_agreement')}"
            + (f" (eager {d['reference_eager_agreement']})" if "reference_eager_agreement" in d else "")
            + f" acceptance {round(d['batched']['acceptance_rate'], 3)}"
            + (f" recall {rec}" if rec else "")
            + f" rounds {round(d['batched']['mean_rounds'], 2)} early {round(d['batched']['frac_early_exit'], 3)}"
            + "".join(f" {k} {round(d['batched'][k], 2)}" for k in ("batch_rounds_replayed", "batch_row_rounds",
                                                                    "held_gib_after_warmup") if k in d["batched"]))


def main(argv):
    if argv[0] == "--summary":
        with open(argv[1]) as f:
            print(summary(json.load(f)))
        return
    base, runs = argv[0].split(), [a.split("=", 1) for a in argv[1:]]
    t0 = time.time()
    for name, extra in runs:
        tag = os.environ.get("BENCH_RELEASE", "release7")
        path = os.path.join(os.environ["OUT"], f"bench_speculate_h100_{tag}_{name}.json")
        with open(os.devnull, "w") as devnull:
            so, sys.stdout = sys.stdout, devnull  # the full JSON goes to the file
            try:
                d = bench_speculate.main(base + extra.split() + ["--json", path])
            finally:
                sys.stdout = so
        print(name, f"{time.time() - t0:.0f} s", summary(d), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
