"""Sharded inference: `evaluate` / `specgr evaluate` / `specgr recommend` over 2 gloo processes give exactly what one
process gives, every row once (odd row counts, a rank with no row at all), and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import build_untrained_bundle
from test_ddp import _free_port

from specgr.cli import main
from specgr.data.processed import Rows
from specgr.batching import length_batches
from specgr.distributed import gather_rows, get_world_size, init_from_env, launched, shard_batches
from specgr.evaluate import evaluate, run_recommender

WORLD = 2
# the only keys allowed to differ: timing, and the device's thread count (the workers run one thread each, the test
# process whatever the tests before it left)
TIMING = ("recs_per_s", "seconds", "rank_seconds", "world_size", "device")


def _rows(n=7):
    """Row r's history starts with r, so a list tells which row it came from."""
    rng = np.random.default_rng(0)
    history = np.stack([np.arange(n), rng.integers(0, 9, n)], 1)
    return Rows(np.arange(n), history, np.array([1 + r % 2 for r in range(n)]), (np.arange(n) * 3) % 10,
                np.zeros(n, dtype=np.int64))


def _toy(h, hl):
    """(B, 2 or 3) lists, wider for a batch that starts on an even row: a batch-dependent recommender (lists padded
    to the batch's widest) that still matches one process, since whole batches are sharded. Plus per-row counters."""
    k = 3 if int(h[0, 0]) % 2 == 0 else 2
    items = (h[:, :1] + torch.arange(k)) % 10
    return items, {"rounds": hl.float(), "row": h[:, 0]}


def _cli(bundle, data_root, work, tag: str, ports=()):
    """The two CLI doors on the tiny bundle; outputs named by tag. ports: one per door, as two torchrun launches
    would have (a group re-made on the port just freed can meet the old one's store)."""
    base = ["--checkpoint", str(bundle), "--data-root", str(data_root), "--device", "cpu", "--batch-size", "3"]
    doors = (["evaluate", "--method", "specgr++", "--split", "valid", *base, "--json", str(work / f"eval_{tag}.json")],
             ["recommend", *base, "--histories", str(work / "histories.jsonl"), "-k", "5", "--out",
              str(work / f"recs_{tag}.csv")])
    for i, argv in enumerate(doors):
        if ports:
            os.environ["MASTER_PORT"] = str(ports[i])
        assert main(argv) == 0


def _worker(rank: int, ports: list[int], out_dir: str, bundle: str, data_root: str):
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(ports[0]))
    torch.set_num_threads(1)
    with launched("cpu"):
        assert get_world_size() == WORLD
        rows = _rows()
        res = {"r7": evaluate(_toy, rows, 5, "toy", batch_size=2, ks=(1, 2), progress=False),
               "r1": evaluate(_toy, rows, 5, "toy", batch_size=2, ks=(1, 2), max_rows=1, progress=False),
               "run7": run_recommender(_toy, rows, batch_size=2, progress=False)[:2],
               "r7_by_length": evaluate(_toy, rows, 5, "toy", batch_size=2, ks=(1, 2), progress=False, by_length=True),
               "batches7": [i.tolist() for i, _ in shard_batches(length_batches(np.ones(7, int), 2, 2, False))],
               "batches1": [i.tolist() for i, _ in shard_batches(length_batches(np.ones(1, int), 2, 2, False))],
               # uneven shapes: rank 0 (1, 2), rank 1 (3, 4)
               "gathered": gather_rows(np.full((1 + 2 * rank, 2 + 2 * rank), rank, np.float32), fill=-1)}
    torch.save(res, f"{out_dir}/rank{rank}.pt")
    assert not dist.is_initialized()  # launched() destroyed the group it started
    # the CLI doors in torchrun's environment, each starting and destroying its own group
    _cli(bundle, data_root, Path(out_dir), f"rank{rank}", ports[1:])


@pytest.fixture(scope="module")
def bundle_env(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("shard")
    bundle = build_untrained_bundle(tiny_dataset, root / "bundle")
    rows = tiny_dataset.rows("test").subset(np.arange(5))  # 5 users: odd, so the shards differ in size
    with open(root / "histories.jsonl", "w") as f:
        for r in range(5):
            f.write(json.dumps({"user_id": f"u{r}", "history": rows.history[r, : rows.hist_len[r]].tolist()}) + "\n")
    return bundle, tiny_dataset.path.parent, root


@pytest.fixture(scope="module")
def sharded(bundle_env):
    bundle, data_root, work = bundle_env
    ports = [_free_port() for _ in range(3)]
    mp.spawn(_worker, args=(ports, str(work), str(bundle), str(data_root)), nprocs=WORLD, join=True)
    return [torch.load(work / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def one_process(bundle_env):
    """The CLI doors' outputs from one plain process: (evaluate's result, recommend's CSV)."""
    bundle, data_root, work = bundle_env
    _cli(bundle, data_root, work, "one")
    return json.loads((work / "eval_one.json").read_text()), pd.read_csv(work / "recs_one.csv")


def _same_result(got: dict, want: dict):
    """Equal but for the timing keys; as JSON text, where NaN (an empty group's metrics) equals NaN."""
    got, want = ({k: v for k, v in r.items() if k not in TIMING} for r in (got, want))
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def test_sharded_evaluate_equals_one_process(sharded):
    rows = _rows()
    want = evaluate(_toy, rows, 5, "toy", batch_size=2, ks=(1, 2), progress=False)
    want_ranked, want_extras, _ = run_recommender(_toy, rows, batch_size=2, progress=False)
    assert want["world_size"] == 1 and len(want["rank_seconds"]) == 1
    for r in sharded:
        _same_result(r["r7"], want)
        assert r["r7"]["world_size"] == WORLD and len(r["r7"]["rank_seconds"]) == WORLD
        assert r["r7"]["seconds"] == max(r["r7"]["rank_seconds"])  # recs/s: all rows / the slowest rank
        ranked, extras = r["run7"]
        np.testing.assert_array_equal(ranked, want_ranked)  # widths padded with -1 exactly as on one process
        assert extras.keys() == want_extras.keys()
        for k in want_extras:
            np.testing.assert_array_equal(extras[k], want_extras[k])
        np.testing.assert_array_equal(extras["row"], np.arange(7))  # every row exactly once, in row order
    want_by_length = evaluate(_toy, rows, 5, "toy", batch_size=2, ks=(1, 2), progress=False, by_length=True)
    for r in sharded:  # batches by history length: other batches than in row order, the same on 2 ranks as on 1
        _same_result(r["r7_by_length"], want_by_length)


def test_run_recommender_by_length_returns_row_order():
    """Rows sorted by history length (1 or 2 here) and cut to it come back in row order: each row's list starts with
    its own row id (`_toy`), and batches of one length see one column."""
    ranked, extras, _ = run_recommender(_toy, _rows(), batch_size=2, progress=False, by_length=True)
    np.testing.assert_array_equal(extras["row"], np.arange(7))
    np.testing.assert_array_equal(ranked[:, 0], np.arange(7))
    seen = []
    run_recommender(lambda h, hl: (seen.append(h.shape[1]), _toy(h, hl))[1], _rows(), batch_size=2, progress=False,
                    by_length=True)
    assert seen == [2, 2, 1, 1]  # longest first: rows 1, 3 | 5, 0 (width 2), then 2, 4 | 6 (one item)


def test_rows_split_without_padding_and_empty_shard_takes_part(sharded):
    # the one-process batches, split over the ranks: rows 0-3 on rank 0, rows 4-6 on rank 1
    assert [r["batches7"] for r in sharded] == [[[0, 1], [2, 3]], [[4, 5], [6]]]
    assert [r["batches1"] for r in sharded] == [[], [[0]]]  # 1 row over 2 ranks: rank 0 runs nothing
    want = evaluate(_toy, _rows(), 5, "toy", batch_size=2, ks=(1, 2), max_rows=1, progress=False)
    for r in sharded:
        _same_result(r["r1"], want)
        assert r["r1"]["n_rows"] == 1


def test_gather_rows_pads_trailing_dims_and_cuts_rows(sharded):
    want = np.full((4, 4), -1, np.float32)
    want[0, :2] = 0
    want[1:, :] = 1
    for r in sharded:
        np.testing.assert_array_equal(r["gathered"], want)


def test_cli_doors_under_two_ranks_equal_one_process(sharded, bundle_env, one_process):
    work = bundle_env[2]
    assert not (work / "eval_rank1.json").exists() and not (work / "recs_rank1.csv").exists()  # rank 0 writes
    got, (want, want_recs) = json.loads((work / "eval_rank0.json").read_text()), one_process
    assert got["world_size"] == WORLD and got["n_rows"] == want["n_rows"]
    _same_result(got, want)
    recs = pd.read_csv(work / "recs_rank0.csv")
    assert recs["user_id"].nunique() == 5
    pd.testing.assert_frame_equal(recs, want_recs)


def test_torchrun_launch_of_specgr_evaluate(bundle_env, one_process, tmp_path):
    """The real launcher: torchrun's environment, one JSON from rank 0, the one-process metrics."""
    bundle, data_root, _ = bundle_env
    out = tmp_path / "eval.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
           "-m", "specgr.cli", "evaluate", "--method", "specgr++", "--split", "valid", "--checkpoint", str(bundle),
           "--data-root", str(data_root), "--device", "cpu", "--batch-size", "3", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["world_size"] == WORLD
    _same_result(got, one_process[0])


def test_init_from_env_errors_name_the_fix(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match="launch with torchrun"):
        init_from_env("cpu")
    monkeypatch.setattr(dist, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no torch.distributed"):
        init_from_env("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_from_env("cpu") == torch.device("cpu")  # one process: nothing started
    assert not dist.is_initialized()


def test_cli_refuses_a_torchrun_launch_the_command_cannot_use(monkeypatch, capsys):
    """Under torchrun, a one-process command (or a train call whose --devices miss the launch) stops before any work,
    with the fix; the sharded commands pass the check (and then fail here on the missing checkpoint, not on it)."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    cases = [(["pipeline", "--dataset", "x"], "`specgr pipeline` runs in one process"),
             (["sid", "--dataset", "x"], "`specgr sid` runs in one process"),
             (["train", "aux", "--dataset", "x"], "`specgr train aux` runs in one process"),
             (["train", "tiger", "--dataset", "x"], "Fix: pass --devices 4"),
             (["train", "specgr++", "--dataset", "x", "--devices", "2", "--num-nodes", "4"], "Fix: pass --devices 1")]
    for argv, msg in cases:
        assert main(argv) == 2
        assert msg in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "no/such/bundle", "--method", "tiger"]) == 2
    assert "torchrun launched" not in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no check
    assert main(["train", "aux", "--dataset", "no-such-dataset", "--data-root", "no/such/root"]) == 2
    assert "torchrun" not in capsys.readouterr().err


def test_run_pipeline_refuses_a_torchrun_launch(monkeypatch, tmp_path):
    """The library door of `specgr pipeline`: under torchrun it stops before any stage, naming the fix."""
    from specgr.pipeline import PipelineConfig, run_pipeline

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="`run_pipeline` runs in one process.*Fix: run it without torchrun"):
        run_pipeline(PipelineConfig(dataset="x"), run_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
