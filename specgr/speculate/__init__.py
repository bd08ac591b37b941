"""Speculative inference: draft -> verify -> guided re-draft (docs/METHOD.md §7).

    from specgr.speculate import SpecGR, SpecGRConfig
    rec = SpecGR(model, drafter, sids, SpecGRConfig(draft_size=50, num_beams=30, threshold=-1.4), device="cuda")
    res = rec.recommend(history, hist_len)        # res.items (B, K), res.sources, res.n_rounds, ...
    res = rec.recommend_rows(ds.rows("test"))     # whole split, timed

`ReferenceSpecGR` is the one-user executable specification; `TigerOnly` is the constrained-beam baseline;
`GraphedRecommender` replays either batched recommender as one CUDA graph per batch.
"""

from specgr.speculate.batched import SpecGR, TigerOnly
from specgr.speculate.config import SpecGRConfig
from specgr.speculate.graphed import GraphedRecommender
from specgr.speculate.reference import ReferenceSpecGR
from specgr.speculate.trace import (SOURCE_ACCEPTED, SOURCE_BEAM, SOURCE_FILL, SOURCE_NAMES, SOURCE_NONE, RoundTrace,
                                    SpecGRResult, UserTrace)

__all__ = ["SpecGR", "SpecGRConfig", "GraphedRecommender", "ReferenceSpecGR", "TigerOnly", "SpecGRResult", "UserTrace",
           "RoundTrace", "SOURCE_ACCEPTED", "SOURCE_FILL", "SOURCE_BEAM", "SOURCE_NONE", "SOURCE_NAMES"]
