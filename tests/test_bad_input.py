"""Bad input through the library and the CLI: one line that names the fix, no traceback, and `python -O` (which
strips asserts) changes nothing. The cases are in tests/bad_input_cases.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bad_input_cases import run_all
from conftest import build_untrained_bundle

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def bad_input_env(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return build_untrained_bundle(tiny_dataset, root / "bundle"), tiny_dataset.path.parent, root / "work"


@pytest.fixture(scope="module")
def outcomes(bad_input_env):
    return run_all(*bad_input_env)


def test_bad_input_gives_one_line_that_names_the_fix(outcomes):
    assert len(outcomes) >= 20
    for name, (status, message) in outcomes.items():
        assert status == 2, f"{name}: exit status {status}, message {message!r}"
        lines = message.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: {message!r}"
        assert "Fix:" in lines[0], f"{name}: the message names no fix: {lines[0]}"
        assert "Traceback" not in message and "AssertionError" not in message, name


def test_bad_input_messages_say_what_is_wrong(outcomes):
    said = {name: message for name, (_, message) in outcomes.items()}
    assert "-5" in said["max_rows_negative"] and "--max-rows" in said["max_rows_negative"]
    assert "'0'" in said["batch_size_zero"]
    assert "unknown item ids [100000]" in said["unknown_item_id"]
    assert "empty history" in said["empty_history"] and "empty history" in said["lib_empty_history"]
    assert "tiger.pt" in said["truncated_weights"] and "config.json" in said["broken_config"]
    assert "more than the catalog" in said["k_larger_than_catalog"]
    assert "--gamma: SpecGR knobs" in said["gamma_for_tiger"]
    assert "treshold" in said["lib_unknown_knob"] and "max_rounds=7" in said["lib_config_assert_knob"]


def test_bad_input_is_the_same_under_python_O(bad_input_env, outcomes):
    """Knob checks used to be asserts, which `python -O` removes: the same cases, the same messages."""
    bundle, data, work = bad_input_env
    run = subprocess.run([sys.executable, "-O", str(HERE / "bad_input_cases.py"), str(bundle), str(data),
                          str(work)], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(HERE)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == outcomes


def test_bad_input_vnew_keeps_the_ablations():
    """--vnew used to drop --no-redraft / --no-inductive."""
    from specgr.recommenders import specgr_config

    c = specgr_config({"threshold": -1.6, "draft_size": 100}, "aux", vnew=True, guided_redraft=False, inductive=False)
    assert (c.accept_topk_by, c.length_rule, c.min_len) == ("order", "prefix_len", 2)
    assert (c.guided_redraft, c.inductive, c.threshold, c.draft_size) == (False, False, -1.6, 100)
