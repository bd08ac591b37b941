"""Tuning SpecGR's knobs on the valid split: one sweep implementation for `specgr sweep` and the pipeline's tune stage.

`sweep` scores every point of a grid; `coordinate_search` tunes one knob at a time from a starting config and, when the
best value sits on the edge of its grid, widens the grid in that direction and tries again, so that every chosen value
is interior (or on the edge of the knob's domain, e.g. a weight of 0), or fails loudly. With `passes` > 1 it goes
over the knobs again (until a pass changes nothing), since a knob tuned early may move once a later one has. Tuning
sees the valid split only; the test split is scored once, afterwards, with the chosen values.

    score = lambda cfg: evaluate(make_fn(cfg), valid_rows, ...)
    best, rec = coordinate_search(score, SpecGRConfig(), ["threshold", "draft_size", "num_beams"],
                                  metric=metric_fn("recall@50+ndcg@50"), passes=2)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

# how each knob's grid is widened past an edge, and where its domain ends
#   step: additive step (None = multiplicative factor `factor`); lo/hi: domain bounds (None = unbounded)
@dataclass(frozen=True)
class Knob:
    grid: tuple
    step: float | None = None
    factor: float = 2.0
    lo: float | None = None
    hi: float | None = None
    integer: bool = False

    def beyond(self, v, direction: int):
        """The next value past v (direction +1 up, -1 down), or None at the domain bound."""
        if math.isinf(v):  # an infinite end of the domain (threshold -inf): nothing lies past it
            return None
        if self.step is not None:
            n = round(v + direction * self.step, 6)
        elif v == 0:
            n = self.grid[1] if direction > 0 and len(self.grid) > 1 else None
        else:
            n = v * self.factor if direction > 0 else v / self.factor
        if n is None:
            return None
        if self.integer:
            n = int(math.ceil(n)) if direction > 0 else int(math.floor(n))
            if n == v:
                n = v + direction
        if (self.lo is not None and n < self.lo) or (self.hi is not None and n > self.hi):
            return None
        return n


# an infinite domain end (threshold: lo = -inf, where every draft is accepted) is probed once the widenings are spent
# with the best value still on that edge: a metric that keeps creeping up as γ falls (acceptance -> 1) ends at the
# limit itself, a legitimate optimum; where the limit scores worse, the edge stays an edge (an error, as before)
KNOBS = {
    "threshold": Knob((-1.0, -1.4, -1.8, -2.2, -2.6, -3.0), step=0.4, lo=-math.inf),
    "draft_size": Knob((20, 50, 100), factor=2.0, lo=1, hi=800, integer=True),
    "num_beams": Knob((10, 30, 50), factor=2.0, lo=1, hi=400, integer=True),
    "new_item_bonus": Knob((0.0, 1.0, 2.0, 3.0), step=1.0, lo=0.0),
    "fusion_weight": Knob((0.0, 1.0, 3.0, 10.0), factor=3.0, lo=0.0),
}


def _distance(a, b) -> float:
    """|a - b|, and 0 for equal values (infinite ones too: -inf - -inf is nan)."""
    return 0.0 if a == b else abs(a - b)


class EdgeError(ValueError):
    pass


def sweep(score, base, grid: dict) -> list[dict]:
    """Every combination of `grid` ({knob: values}) applied to `base` (a SpecGRConfig): [{knob: value, ...,
    "result": score(cfg)}]. `score(cfg)` returns anything (e.g. the evaluator's result dict)."""
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        cfg = base.replace(**dict(zip(names, values)))
        out.append({**dict(zip(names, values)), "result": score(cfg)})
    return out


def metric_fn(name: str):
    """The tuning metric `name` as a function of an evaluator result: a key of result["overall"] ("recall@50"), or a
    sum of such keys ("recall@50+ndcg@50"), so that one number can require several metrics to improve together."""
    keys = [k.strip() for k in name.split("+")]
    if not all(keys):
        raise ValueError(f"tune metric {name!r} has an empty term. Fix: write e.g. 'recall@50' or 'recall@50+ndcg@50'.")

    def metric(result) -> float:
        overall = result["overall"]
        missing = [k for k in keys if k not in overall]
        if missing:
            raise ValueError(f"tune metric {name!r}: {missing} not in the result's overall metrics "
                             f"{sorted(overall)}. Fix: set tune.metric to one of these, or a '+'-joined sum of them.")
        return float(sum(overall[k] for k in keys))

    return metric


# what a setting below the unseen floor loses: more than any '+'-sum of metrics in [0, 1] can make up, so it ranks
# after every setting that meets the floor, and among the others still by its metric
BELOW_FLOOR = 1000.0


def with_unseen_floor(metric, floor: float, key: str = "recall@50"):
    """`metric`, except that a result whose result["unseen"][key] is below `floor` ranks after every result that
    meets it (floor <= 0: `metric` itself)."""
    if floor <= 0:
        return metric

    def floored(result) -> float:
        return metric(result) - (BELOW_FLOOR if result["unseen"][key] < floor else 0.0)

    return floored


def coordinate_search(score, base, knobs: list[str], metric=lambda r: r, grids: dict | None = None,
                      max_widen: int = 4, on_edge: str = "error", passes: int = 1):
    """Tune `knobs` one at a time, in order, each from the best values found so far; repeat the round over all knobs
    up to `passes` times, stopping early once a whole pass leaves every knob where it was.

    score(cfg) -> result; metric(result) -> float to maximise. grids overrides KNOBS[k].grid (the starting grid); every
    pass starts each knob from that grid plus its current value. Identical configs are scored once (later passes
    mostly re-read the cache). Returns (best config, record): record["points"] has one row per scored point and pass
    {"knob", "value", "result", "pass"}; record["choices"] one row per knob from the last pass {"knob", "chosen",
    "grid", "interior", "at_domain_bound", "widened", "pass"}; record["passes_run"]; record["best_result"], the result
    of the best config. on_edge="error" raises EdgeError when a finally chosen value is still on its grid's edge after
    `max_widen` widenings (in its last pass); "warn" records it and goes on.
    """
    if on_edge not in ("error", "warn"):
        raise ValueError(f"on_edge must be 'error' or 'warn', got {on_edge!r}")
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    for k in knobs:
        if k not in KNOBS:
            raise ValueError(f"unknown knob {k!r}; tunable: {sorted(KNOBS)}")
    cache: dict = {}
    table, choices = [], []
    cur = base

    def point(cfg):
        key = tuple(sorted(cfg.to_dict().items()))
        if key not in cache:
            cache[key] = score(cfg)
        return cache[key]

    passes_run = 0
    for pass_no in range(1, passes + 1):
        passes_run, choices, changed = pass_no, [], False
        for k in knobs:
            spec = KNOBS[k]
            grid = sorted(set((grids or {}).get(k, spec.grid)) | {getattr(cur, k)})
            results = {v: point(cur.replace(**{k: v})) for v in grid}
            widen, at_bound = 0, False
            while True:
                # ties keep the value closest to the current one, so a pass with nothing to gain changes nothing
                best = max(grid, key=lambda v: (metric(results[v]), -_distance(v, getattr(cur, k))))
                edge = 0 if len(grid) < 2 else (-1 if best == grid[0] else (1 if best == grid[-1] else 0))
                if edge == 0:
                    break
                nxt = spec.beyond(best, edge)
                if nxt is None:  # the knob's own domain ends here: a legitimate optimum
                    at_bound = True
                    break
                if widen >= max_widen:
                    limit = spec.lo if edge < 0 else spec.hi
                    if limit is not None and math.isinf(limit) and limit not in results:
                        r = point(cur.replace(**{k: limit}))
                        if metric(r) >= metric(results[best]):  # saturating: the limit is the optimum
                            grid, results[limit], best, at_bound = sorted(set(grid) | {limit}), r, limit, True
                    break
                widen += 1
                grid = sorted(set(grid) | {nxt})
                results[nxt] = point(cur.replace(**{k: nxt}))
            for v in grid:
                table.append({"knob": k, "value": v, "result": results[v], "pass": pass_no})
            choices.append({"knob": k, "chosen": best, "grid": grid, "interior": edge == 0 or at_bound,
                            "at_domain_bound": at_bound, "widened": widen, "pass": pass_no})
            changed |= best != getattr(cur, k)
            cur = cur.replace(**{k: best})
        if not changed:
            break
    # only the final choices must be interior: an edge in an earlier pass is revisited (and widened) by the next
    for c in choices:
        if not c["interior"] and on_edge == "error":
            raise EdgeError(f"tuning {c['knob']}: the best value {c['chosen']} is still on the edge of {c['grid']} "
                            f"after {c['widened']} widenings (pass {c['pass']}). Fix: widen the starting grid "
                            f"(tune.grids.{c['knob']}) or allow more widenings (tune.max_widen).")
    return cur, {"points": table, "choices": choices, "passes_run": passes_run, "best_result": point(cur)}
