"""Latency from a slider change to an updated result, on the CPU, with the demo checkpoint.

    .venv/bin/python scripts/bench_app_latency.py [--n 15]

(a) the model call the app makes per interaction (helpers.recommend), per drafter, over real test histories;
(b) the whole app: streamlit's AppTest moves the γ slider and re-runs the page; reported are the in-page time (script
start to end of rendering, `page_ms`) and the AppTest wall time (adds the harness' own polling overhead).
The one-time costs (checkpoint load + warm-up, UMAP fit) are not included, as in the issue's target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
sys.path.insert(0, str(APP))  # the app's own helpers module, as app/main.py imports it


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=15)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SPECGR_TORCH_THREADS", "1")))
    args = ap.parse_args()

    import numpy as np
    import torch

    import helpers as H

    torch.set_num_threads(args.threads)
    cfg = H.settings()
    b = H.load_bundle(cfg["checkpoint"], cfg["data_root"])
    for d in b.available_drafters:
        H.warm_up(b, d)
    rows = b.ds.rows("test")
    print(f"checkpoint {cfg['checkpoint']}, torch threads {torch.get_num_threads()}")
    for d in b.available_drafters:
        t = b.specgr_defaults.get(d, {})
        ms = []
        for i in range(args.n):
            h = rows.history[i, : rows.hist_len[i]].tolist()
            gamma = -1.5 - 0.1 * (i % 8)  # a different γ each time, like a slider drag
            ms.append(H.recommend(b, h, d, gamma, t.get("draft_size", 50), t.get("num_beams", 30), 50).ms)
        print(f"(a) recommend {d:8s} median {statistics.median(ms):6.1f} ms  (p90 {np.percentile(ms, 90):6.1f})")
    ms = []
    for i in range(args.n):
        h = rows.history[i, : rows.hist_len[i]].tolist()
        ms.append(H.recommend(b, h, "knn", -2.0, 20, 30, 50, tiger_only=True).ms)
    print(f"(a) TIGER-only        median {statistics.median(ms):6.1f} ms")

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP / "main.py"), default_timeout=600).run()
    if at.exception:
        raise SystemExit(f"the app failed: {at.exception}")
    page, wall = [], []
    for i in range(args.n):
        t = time.perf_counter()
        at.slider(key="gamma").set_value(round(-1.5 - 0.1 * (i % 8), 1)).run()
        wall.append(1000 * (time.perf_counter() - t))
        page.append(at.session_state["page_ms"])
    print(f"(b) app rerun after a γ change: in-page median {statistics.median(page):6.1f} ms, "
          f"AppTest wall median {statistics.median(wall):6.1f} ms")


if __name__ == "__main__":
    main()
