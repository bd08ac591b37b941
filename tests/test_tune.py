"""Tuning (specgr.tune): coordinate search widens a grid until the optimum is interior, stops at a knob's domain bound,
and fails loudly when it cannot find an interior optimum."""

import pytest

from specgr.speculate import SpecGRConfig
from specgr.tune import EdgeError, coordinate_search, sweep


def test_widens_until_interior():
    score = lambda c: -(c.threshold + 3.8) ** 2 - (c.draft_size - 130) ** 2 / 1e4  # noqa: E731
    best, out = coordinate_search(score, SpecGRConfig(), ["threshold", "draft_size"])
    assert best.threshold == pytest.approx(-3.8) and best.draft_size in (100, 200)
    ch = {c["knob"]: c for c in out["choices"]}
    assert ch["threshold"]["interior"] and ch["threshold"]["widened"] >= 1  # -3.8 is outside the starting grid
    assert min(ch["threshold"]["grid"]) < best.threshold < max(ch["threshold"]["grid"])


def test_domain_bound_is_a_legitimate_optimum():
    best, out = coordinate_search(lambda c: -c.fusion_weight, SpecGRConfig(), ["fusion_weight"])
    assert best.fusion_weight == 0 and out["choices"][0]["at_domain_bound"] and out["choices"][0]["interior"]


def test_fails_loudly_on_an_edge():
    with pytest.raises(EdgeError, match="edge"):
        coordinate_search(lambda c: c.threshold, SpecGRConfig(), ["threshold"], max_widen=2)
    best, out = coordinate_search(lambda c: c.threshold, SpecGRConfig(), ["threshold"], max_widen=2, on_edge="warn")
    assert not out["choices"][0]["interior"]


def test_sweep_scores_every_point_once():
    seen = []
    rows = sweep(lambda c: seen.append((c.threshold, c.draft_size)) or c.threshold, SpecGRConfig(),
                 {"threshold": [-1.2, -1.6], "draft_size": [10, 20, 30]})
    assert len(rows) == 6 == len(set(seen)) and {r["draft_size"] for r in rows} == {10, 20, 30}
