"""Bad input, through the library and the CLI: every case -> (exit status, what the user sees).

Run by tests/test_bad_input.py in its own process and again under `python -O` (asserts gone), which must change
nothing:  python [-O] tests/bad_input_cases.py BUNDLE DATA_ROOT WORK_DIR  ->  JSON {case: [status, message]}
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path


def cli_cases(bundle: Path, data: Path, work: Path) -> dict[str, list[str]]:
    """name -> argv. Files the cases need are written under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    ev = ["evaluate", "--checkpoint", str(bundle), "--data-root", str(data), "--device", "cpu"]
    truncated, broken = work / "truncated", work / "broken"
    for d in (truncated, broken):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(bundle, d)
    f = truncated / "tiger.pt"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    (broken / "config.json").write_text('{"format": "specgr-checkpoint", "config": {')
    (work / "unknown.csv").write_text("user_id,item_id\nu1,0\nu1,100000\n")
    (work / "empty.jsonl").write_text('{"user_id": "u1", "history": []}\n')
    (work / "ok.csv").write_text("user_id,item_id\nu1,0\nu1,1\n")
    rec = ["recommend", "--checkpoint", str(bundle), "--data-root", str(data), "--device", "cpu",
           "--out", str(work / "recs.csv")]
    return {
        "max_rows_negative": ev + ["--method", "tiger", "--max-rows", "-5"],
        "max_rows_zero": ev + ["--method", "tiger", "--max-rows", "0"],
        "batch_size_zero": ev + ["--method", "tiger", "--batch-size", "0"],
        "delta_zero": ev + ["--method", "specgr++", "--delta", "0"],
        "gamma_for_tiger": ev + ["--method", "tiger", "--gamma", "-1"],
        "cuda_without_gpu": ev + ["--method", "tiger", "--device", "cuda"],
        "truncated_weights": ["evaluate", "--method", "tiger", "--checkpoint", str(truncated), "--data-root",
                              str(data), "--device", "cpu"],
        "broken_config": ["evaluate", "--method", "tiger", "--checkpoint", str(broken), "--data-root", str(data)],
        "unknown_item_id": rec + ["--histories", str(work / "unknown.csv")],
        "empty_history": rec + ["--histories", str(work / "empty.jsonl")],
        "k_larger_than_catalog": rec + ["--histories", str(work / "ok.csv"), "-k", "100000"],
        "raw_id_not_in_catalog": rec + ["--histories", str(work / "ok.csv"), "--raw-ids"],
    }


def library_cases(bundle: Path, data: Path) -> dict:
    """name -> a call that must raise a ValueError naming the fix."""
    import numpy as np
    import torch

    from specgr.bundle import Bundle
    from specgr.evaluate import evaluate
    from specgr.recommenders import make_recommender, specgr_config
    from specgr.speculate import SpecGRConfig
    from specgr.utils import resolve_device

    b = Bundle.load(bundle, data_root=data)
    n = b.ds.n_items
    h, hl = np.array([[0, 1] + [-1] * 18]), np.array([2])
    rows = b.ds.rows("test")
    cases = {
        "lib_unknown_item_id": lambda: b.recommend(np.array([[0, n + 5] + [-1] * 18]), hl),
        "lib_negative_item_id": lambda: b.recommend(np.array([[0, -3] + [-1] * 18]), hl),
        "lib_empty_history": lambda: b.recommend(h, np.array([0])),
        "lib_k_larger_than_catalog": lambda: b.recommend(h, hl, top_k=n + 1),
        "lib_bad_knob": lambda: b.recommend(h, hl, draft_size=0),
        "lib_unknown_knob": lambda: b.recommend(h, hl, treshold=-1.0),
        "lib_config_assert_knob": lambda: SpecGRConfig(max_rounds=7),
        "lib_config_accept_rule": lambda: specgr_config({}, accept_topk_by="random"),
        "lib_make_recommender_k": lambda: make_recommender(b, "tiger", k=0),
        "lib_evaluate_batch_size": lambda: evaluate(lambda x, y: x, rows, b.ds.n_in_sample, "m", batch_size=0),
        "lib_evaluate_max_rows": lambda: evaluate(lambda x, y: x, rows, b.ds.n_in_sample, "m", max_rows=-5),
        "lib_unknown_drafter": lambda: b.recommend(h, hl, "nope"),
    }
    if not torch.cuda.is_available():
        cases["lib_cuda_without_gpu"] = lambda: resolve_device("cuda")
    return cases


def run_all(bundle: Path, data: Path, work: Path) -> dict[str, list]:
    import torch

    from specgr.cli import main
    from specgr.cli_common import error_message

    torch.set_num_threads(1)
    out = {}
    for name, argv in cli_cases(bundle, data, work).items():
        if name == "cuda_without_gpu" and torch.cuda.is_available():
            continue
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as e:  # argparse
                status = e.code
        out[name] = [status, err.getvalue()]
    for name, call in library_cases(bundle, data).items():
        try:
            call()
            out[name] = [0, "no error"]
        except ValueError as e:
            out[name] = [2, f"error: {error_message(e)}\n"]
    return out


if __name__ == "__main__":
    bundle_dir, data_root, work_dir = map(Path, sys.argv[1:4])
    print(json.dumps(run_all(bundle_dir, data_root, work_dir)))
