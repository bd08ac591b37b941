"""Tuning (specgr.tune): coordinate search widens a grid until the optimum is interior, stops at a knob's domain bound,
and fails loudly when it cannot find an interior optimum; later passes revisit knobs that interact; the tuning metric
may be a sum of metrics; an unseen-item floor ranks settings below it after those that meet it."""

import pytest

from specgr.speculate import SpecGRConfig
from specgr.tune import EdgeError, coordinate_search, metric_fn, sweep, with_unseen_floor


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


def counted(f):
    """f, recording every config it is called on (to check that no point is scored twice)."""
    seen = []

    def score(c):
        seen.append((c.new_item_bonus, c.fusion_weight, c.threshold))
        return f(c)

    return score, seen


def test_second_pass_revisits_a_knob_that_depends_on_a_later_one():
    # the best bonus b follows the fusion weight w (b = w), and w wants 3: from w = 0 the first pass keeps b = 0
    # before it moves w to 3; the second pass then moves b to 3, the third finds nothing to change
    f = lambda c: -(c.new_item_bonus - c.fusion_weight) ** 2 / 4 - (c.fusion_weight - 3) ** 2  # noqa: E731
    knobs = ["new_item_bonus", "fusion_weight"]
    one, out1 = coordinate_search(f, SpecGRConfig(), knobs)
    assert (one.new_item_bonus, one.fusion_weight) == (0.0, 3.0) and out1["passes_run"] == 1
    two, out2 = coordinate_search(f, SpecGRConfig(), knobs, passes=2)
    assert (two.new_item_bonus, two.fusion_weight) == (3.0, 3.0) and out2["passes_run"] == 2
    assert [c["pass"] for c in out2["choices"]] == [2, 2] and {p["pass"] for p in out2["points"]} == {1, 2}
    assert out2["best_result"] == f(two) == 0.0
    score, seen = counted(f)
    five, out5 = coordinate_search(score, SpecGRConfig(), knobs, passes=5)
    assert (five.new_item_bonus, five.fusion_weight) == (3.0, 3.0) and out5["passes_run"] == 3
    assert len(seen) == len(set(seen)) < len(out5["points"])  # later passes re-read the cache


def test_passes_stop_when_a_pass_changes_nothing():
    score, seen = counted(lambda c: -(c.new_item_bonus - 2) ** 2 - (c.fusion_weight - 3) ** 2)
    best, out = coordinate_search(score, SpecGRConfig(), ["new_item_bonus", "fusion_weight"], passes=5)
    assert (best.new_item_bonus, best.fusion_weight) == (2.0, 3.0) and out["passes_run"] == 2
    assert len(seen) == len(set(seen))


def test_edge_check_applies_to_the_final_pass():
    # the optimum -3.8 is three steps below the starting grid's edge (-3.0) and each pass widens once: the first two
    # passes end on an edge, the third finds -3.8 interior
    f = lambda c: -(c.threshold + 3.8) ** 2  # noqa: E731
    with pytest.raises(EdgeError, match="edge"):
        coordinate_search(f, SpecGRConfig(), ["threshold"], max_widen=1)
    with pytest.raises(EdgeError, match="edge"):
        coordinate_search(f, SpecGRConfig(), ["threshold"], max_widen=1, passes=2)
    best, out = coordinate_search(f, SpecGRConfig(), ["threshold"], max_widen=1, passes=3)
    assert best.threshold == -3.8 and out["choices"][0]["interior"] and out["passes_run"] == 3


def test_metric_fn_sums_overall_metrics():
    result = {"overall": {"recall@50": 0.25, "ndcg@50": 0.125, "recall@10": 0.1}}
    assert metric_fn("recall@50")(result) == 0.25
    assert metric_fn("recall@50+ndcg@50")(result) == metric_fn(" recall@50 + ndcg@50 ")(result) == 0.375
    with pytest.raises(ValueError, match="ndcg@5.*Fix"):
        metric_fn("recall@50+ndcg@5")(result)
    with pytest.raises(ValueError, match="empty"):
        metric_fn("recall@50+")


def test_unseen_floor_ranks_settings_below_it_last():
    hi = {"overall": {"recall@50": 0.30}, "unseen": {"recall@50": 0.02}}  # better overall, new items traded away
    lo = {"overall": {"recall@50": 0.25}, "unseen": {"recall@50": 0.10}}
    worse = {"overall": {"recall@50": 0.20}, "unseen": {"recall@50": 0.01}}
    m = metric_fn("recall@50")
    assert with_unseen_floor(m, 0.0) is m  # off
    f = with_unseen_floor(m, 0.05)
    assert f(lo) == 0.25 and f(lo) > f(hi) > f(worse)  # below the floor: still ordered by the metric among themselves
    # in a search: the bonus that keeps new items wins although a bonus of 0 scores higher overall
    score = lambda c: {0.0: hi, 1.0: lo, 2.0: worse, 3.0: worse}[c.new_item_bonus]  # noqa: E731
    assert coordinate_search(score, SpecGRConfig(), ["new_item_bonus"], metric=m)[0].new_item_bonus == 0.0
    assert coordinate_search(score, SpecGRConfig(), ["new_item_bonus"], metric=f)[0].new_item_bonus == 1.0


def test_threshold_that_keeps_creeping_up_ends_at_accept_everything():
    """A metric that rises ever more slowly as γ falls (acceptance -> 1, as SpecGR_Aux vnew on Games in release 13)
    ends at γ = -inf once the widenings are spent: the knob's domain end, so interior; a second pass keeps it."""
    import math

    score = lambda c: 1.0 - math.exp(c.threshold)  # noqa: E731  (strictly rising as γ falls; the limit, 1.0, is best)
    best, out = coordinate_search(score, SpecGRConfig(), ["threshold"], max_widen=2, passes=2)
    assert best.threshold == -math.inf
    c = out["choices"][0]
    assert c["chosen"] == -math.inf and c["at_domain_bound"] and c["interior"]


def test_threshold_edge_with_a_worse_limit_still_fails():
    """Where γ = -inf scores worse than the grid's lowest value, the edge stays an edge: an error that names the fix."""
    score = lambda c: -abs(c.threshold + 9.0) if c.threshold > -1e9 else -100.0  # noqa: E731  (peak at -9, far out)
    with pytest.raises(EdgeError, match="Fix"):
        coordinate_search(score, SpecGRConfig(), ["threshold"], max_widen=1)


def test_learned_variant_starts_without_fusion():
    """A preset that sets fusion_weight still gets a learned variant it can fit (final_weights needs w = 0)."""
    from specgr.pipeline import variant_config
    from specgr.speculate.learned_rank import FEATURES

    start = variant_config(SpecGRConfig(fusion_weight=3.0), "learned", "aux")
    assert start.fusion_weight == 0.0 and start.length_rule == "prefix_len"
    assert start.replace(final_weights=(0.0,) * len(FEATURES)).final_weights is not None
