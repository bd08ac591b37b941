"""SpecGR inference: the batched loop returns exactly the one-user reference's lists, and the paper's invariants hold.

Tiny random TIGER + random semantic ids (C=8, 300 items, 220 in-sample) + a random-embedding drafter: continuous
scores, so there are no float ties and lists must match item for item. CPU, a few seconds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from specgr.drafters.base import EmbeddingDrafter
from specgr.models.tiger import TIGER, tiger_preset
from specgr.retrieval import RetrievalIndex
from specgr.sid.semantic_ids import SemanticIDs
from specgr.speculate import (SOURCE_ACCEPTED, SOURCE_BEAM, SOURCE_FILL, SOURCE_NONE, ReferenceSpecGR, SpecGR,
                              SpecGRConfig, TigerOnly)

N, N_IN, C, H = 300, 220, 8, 20


class RandomDrafter(EmbeddingDrafter):
    """query = mean of the history items' random embeddings; exact torch index (deterministic)."""

    def __init__(self, emb):
        super().__init__("cpu")
        self.index = RetrievalIndex(emb, backend="torch", device="cpu")

    def query_embeddings(self, history, hist_len):
        e = self.index.embeddings()
        m = (history >= 0).float()
        return (e[history.clamp(min=0)] * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)


class PlainDrafter(RandomDrafter):
    """Same drafter seen only through the Drafter protocol (no `index` attribute: the batched loop calls draft())."""

    def __init__(self, emb):
        self._inner = RandomDrafter(emb)

    @property
    def n_items(self):
        return self._inner.n_items

    def draft(self, history, hist_len, k, allowed=None, exclude=None):
        return self._inner.draft(history, hist_len, k, allowed=allowed, exclude=exclude)


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    sids = SemanticIDs.from_codes(torch.randint(0, C, (N, 3), generator=g), N_IN, C, on_overflow="grow")
    torch.manual_seed(0)
    model = TIGER(tiger_preset("tiny"), sids.vocab_size).eval()
    drafter = RandomDrafter(torch.randn(N, 16, generator=g))
    B = 10
    hl = torch.randint(1, H + 1, (B,), generator=g)
    hist = torch.randint(0, N, (B, H), generator=g)
    hist[torch.arange(H)[None] >= hl[:, None]] = -1
    return model, drafter, sids, hist, hl


def small(**kw) -> SpecGRConfig:
    base = dict(draft_size=8, num_beams=5, threshold=-3.6, top_k=10)
    base.update(kw)
    return SpecGRConfig(**base)


def run_both(world, cfg, drafter=None):
    model, d, sids, hist, hl = world
    d = drafter or d
    ref = ReferenceSpecGR(model, d, sids, cfg).recommend(hist, hl, trace=True)
    bat = SpecGR(model, d, sids, cfg).recommend(hist, hl, trace=True)
    return ref, bat


def assert_same(ref, bat):
    assert torch.equal(ref.items, bat.items.cpu())
    assert torch.equal(ref.sources, bat.sources.cpu())
    torch.testing.assert_close(ref.scores, bat.scores.cpu(), rtol=1e-5, atol=1e-5)
    for f in ("n_rounds", "n_accepted", "n_drafted"):
        assert torch.equal(getattr(ref, f), getattr(bat, f).cpu()), f


def assert_no_duplicates(res):
    for row in res.items.tolist():
        real = [i for i in row if i >= 0]
        assert len(real) == len(set(real))
        assert all(i == -1 for i in row[len(real):]), "padding only at the tail"


# 15 weights, one per learned_rank.FEATURES entry, all non-zero so that every feature moves the order
LEARNED_W = (1.3, 0.8, 0.6, 0.3, -0.2, 0.5, 0.1, 0.4, 0.7, -0.3, 0.2, -0.5, 0.9, -0.4, 0.35)

CONFIGS = {
    "paper": small(),
    "few-accepted": small(draft_size=3, num_beams=8, threshold=-3.2),  # < K accepted: fill from rejects + beams
    "many-accepted": small(threshold=-3.9),  # early exits in round 2-3
    "big-draft": small(draft_size=20, num_beams=10, threshold=-3.7, top_k=25),
    "vnew": SpecGRConfig.official_vnew(draft_size=8, num_beams=5, threshold=-3.6, top_k=10),
    "vnew-aux": SpecGRConfig.official_vnew("aux", draft_size=8, num_beams=5, threshold=-3.5, top_k=10),
    "unguided-3-rounds": small(guided_redraft=False, max_rounds=3, threshold=-3.4),
    "transductive": small(inductive=False),
    # beyond the paper: new-item bonus, fused final ranking, history exclusion (each alone and together)
    "new-item-bonus": small(new_item_bonus=0.7, threshold=-3.5),
    "fused": small(fusion_weight=1.5, threshold=-3.3),
    "exclude-history": small(exclude_history=True, threshold=-3.3),
    "fair-all": small(new_item_bonus=0.7, fusion_weight=1.5, exclude_history=True, draft_size=5, threshold=-3.3),
    # static shapes: finished users masked in place instead of compacted away (no host sync in the loop)
    "static-paper": small(compact=False),
    "static-many-accepted": small(threshold=-3.9, compact=False),
    "static-vnew": SpecGRConfig.official_vnew(draft_size=8, num_beams=5, threshold=-3.6, top_k=10, compact=False),
    "static-fair-all": small(new_item_bonus=0.7, fusion_weight=1.5, exclude_history=True, draft_size=5,
                             threshold=-3.3, compact=False),
    # guided rounds drafting from the prefixes' item ranges instead of a (users x N) mask: the same drafts
    "ranges-paper": small(draft_ranges=True),
    "ranges-big-draft": small(draft_size=20, num_beams=10, threshold=-3.7, top_k=25, draft_ranges=True),
    "ranges-vnew": SpecGRConfig.official_vnew(draft_size=8, num_beams=5, threshold=-3.6, top_k=10, draft_ranges=True),
    "ranges-transductive": small(inductive=False, draft_ranges=True),
    "ranges-static-fair-all": small(new_item_bonus=0.7, fusion_weight=1.5, exclude_history=True, draft_size=5,
                                    threshold=-3.3, compact=False, draft_ranges=True),
    # the learned final ranking: drafted items and fill beams scored by weights over their features
    "learned-few-accepted": small(final_weights=LEARNED_W, draft_size=3, num_beams=8, threshold=-3.2,
                                  length_rule="prefix_len", min_len=1),
    "learned-many-accepted": small(final_weights=LEARNED_W, threshold=-3.9, new_item_bonus=0.5),
    "static-learned-history": small(final_weights=LEARNED_W, exclude_history=True, draft_size=5, threshold=-3.3,
                                    compact=False),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_batched_equals_reference(world, name):
    ref, bat = run_both(world, CONFIGS[name])
    assert_same(ref, bat)
    assert_no_duplicates(bat)
    # both traces describe the same run
    for a, b in zip(ref.traces, bat.traces):
        assert a.n_rounds == b.n_rounds and a.n_accepted == b.n_accepted
        for ra, rb in zip(a.rounds, b.rounds):
            np.testing.assert_array_equal(ra.drafted, rb.drafted)
            np.testing.assert_array_equal(ra.accepted, rb.accepted)
            assert (ra.beam_tokens is None) == (rb.beam_tokens is None)
            if ra.beam_tokens is not None:
                np.testing.assert_array_equal(ra.beam_tokens, rb.beam_tokens)


def test_settings_cover_both_regimes(world):
    """The settings above really exercise fill-up (< K accepted) and early exit (>= K before round 4)."""
    K = 10
    _, few = run_both(world, CONFIGS["few-accepted"])
    _, many = run_both(world, CONFIGS["many-accepted"])
    assert (few.n_accepted < K).sum() >= 3 and (few.sources == SOURCE_BEAM).any() and (few.sources == SOURCE_FILL).any()
    assert ((many.n_accepted >= K) & (many.n_rounds < 4)).sum() >= 3


def test_protocol_only_drafter_matches(world):
    """A drafter seen only through draft() (no fast path) gives the same lists."""
    model, d, sids, hist, hl = world
    cfg = CONFIGS["paper"]
    plain = PlainDrafter(d.index.embeddings())
    assert_same(SpecGR(model, d, sids, cfg).recommend(hist, hl), SpecGR(model, plain, sids, cfg).recommend(hist, hl))


def test_user_chunked_drafting_matches(world):
    """Bounding the (users x N) prefix mask (1M-item catalogs) drafts in user chunks: same lists."""
    model, d, sids, hist, hl = world
    cfg = CONFIGS["paper"]
    chunked = SpecGR(model, d, sids, cfg.replace(draft_chunk_elems=3 * N)).recommend(hist, hl)
    assert_same(SpecGR(model, d, sids, cfg).recommend(hist, hl), chunked)


def test_range_drafting_matches_the_catalog_scan(world):
    """Guided rounds drafting from the prefixes' item ranges give the catalog scan's lists, also in user chunks and
    where the prefixes hold fewer items than δ (round 4: a few items per 3-digit prefix); None picks one by cost."""
    model, d, sids, hist, hl = world
    cfg = small(draft_size=20, num_beams=4, threshold=-3.7, top_k=40)
    scan = SpecGR(model, d, sids, cfg.replace(draft_ranges=False)).recommend(hist, hl, trace=True)
    assert any(len(r.drafted) < 20 for t in scan.traces for r in t.rounds[3:]), "round 4 should run out of items"
    for kw in (dict(draft_ranges=True), dict(draft_ranges=True, draft_chunk_elems=3 * N), dict(draft_ranges=None)):
        assert_same(scan, SpecGR(model, d, sids, cfg.replace(**kw)).recommend(hist, hl))


def test_range_drafting_by_default_unless_the_prefixes_hold_more_than_the_catalog(world, monkeypatch):
    """draft_ranges=None: ranges where β × w <= N (w: the most items a prefix of that length holds), the scan where
    not, and never for a drafter without an embedding index. Here w = 46, 11, 4 for 1-3 digits and N = 300."""
    model, d, sids, hist, hl = world
    lengths = []
    real = SemanticIDs.prefix_items
    monkeypatch.setattr(SemanticIDs, "prefix_items", lambda self, p, *a, **kw: lengths.append(p.shape[2]) or
                        real(self, p, *a, **kw))
    for beta, want in ((4, {1, 2, 3}), (10, {2, 3})):  # 4 x 46 <= 300 < 10 x 46
        assert (beta * sids.max_prefix_items(1) <= N) == (1 in want)
        lengths.clear()
        SpecGR(model, d, sids, small(draft_size=20, num_beams=beta, threshold=-3.7, top_k=40)).recommend(hist, hl)
        assert set(lengths) == want
    lengths.clear()
    SpecGR(model, PlainDrafter(d.index.embeddings()), sids, small(draft_ranges=True)).recommend(hist, hl)
    assert lengths == []


def test_per_user_prefixes_batch_invariance(world):
    """Prefix masks are per user: a batch result equals each user run alone, and shuffling users changes nothing."""
    model, d, sids, hist, hl = world
    rec = SpecGR(model, d, sids, CONFIGS["paper"])
    full = rec.recommend(hist, hl)
    for u in (0, 3, 7):
        one = rec.recommend(hist[u:u + 1], hl[u:u + 1])
        assert torch.equal(one.items[0], full.items[u])
    perm = torch.randperm(len(hl), generator=torch.Generator().manual_seed(1))
    shuf = rec.recommend(hist[perm], hl[perm])
    assert torch.equal(shuf.items, full.items[perm])


def test_gamma_minus_inf_accepts_all_in_round_one(world):
    model, d, sids, hist, hl = world
    cfg = small(threshold=float("-inf"), draft_size=12, top_k=10)
    res = SpecGR(model, d, sids, cfg).recommend(hist, hl, trace=True)
    assert (res.n_rounds == 1).all() and (res.n_accepted == 12).all() and (res.n_drafted == 12).all()
    assert (res.sources == SOURCE_ACCEPTED).all()
    for t, row in zip(res.traces, res.items.tolist()):
        r = t.rounds[0]
        best = r.drafted[np.argsort(-r.verify_scores, kind="stable")[:10]]
        assert row == best.tolist()  # top-K accepted by V


def test_gamma_plus_inf_accepts_none(world):
    model, d, sids, hist, hl = world
    cfg = small(threshold=float("inf"))
    ref, bat = run_both(world, cfg)
    assert_same(ref, bat)
    assert (bat.n_accepted == 0).all() and (bat.n_rounds == 4).all()
    assert ((bat.sources == SOURCE_FILL) | (bat.sources == SOURCE_BEAM)).all()  # full lists from the fill-up
    assert (bat.items >= 0).all()
    # scores are sorted, and the best beam / best reject both made it in
    assert (bat.scores[:, :-1] >= bat.scores[:, 1:]).all()


def test_trace_consistent_with_final_list(world):
    model, d, sids, hist, hl = world
    res = SpecGR(model, d, sids, CONFIGS["few-accepted"]).recommend(hist, hl, trace=True)
    for u, t in enumerate(res.traces):
        drafted, accepted = t.all_drafted(), t.all_accepted()
        assert len(set(drafted.tolist())) == len(drafted)  # never drafted twice
        assert t.n_rounds == res.n_rounds[u] and t.n_accepted == res.n_accepted[u] and t.n_drafted == res.n_drafted[u]
        assert 0 <= t.acceptance_rate <= 1 and "accepted" in t.summary()
        assert t.items.tolist() == [i for i in res.items[u].tolist() if i >= 0]
        for item, src in zip(t.items.tolist(), t.sources):
            if src == "accepted":
                assert item in accepted
            elif src == "fill":
                assert item in drafted and item not in accepted
            else:
                assert src == "beam" and item not in drafted
        np.testing.assert_array_equal(t.is_new, t.items >= N_IN)
        if t.n_accepted < 10:  # fill-up: every accepted item is in the list
            assert set(accepted.tolist()) <= set(t.items.tolist())
        # guided rounds draft only under the previous round's beam prefixes
        for prev, cur in zip(t.rounds, t.rounds[1:]):
            L = cur.prefix_len
            if L:
                pref = {tuple(p[:L]) for p in prev.beam_tokens.tolist()}
                for item in cur.drafted.tolist():
                    assert tuple(sids.tokens[item, :L].tolist()) in pref
        # verification scores agree with the accept flags
        for r in t.rounds:
            np.testing.assert_array_equal(r.accepted, r.verify_scores > -3.2)


def test_accept_topk_by_order_keeps_drafting_order(world):
    model, d, sids, hist, hl = world
    cfg = small(threshold=-3.9, accept_topk_by="order")
    res = SpecGR(model, d, sids, cfg).recommend(hist, hl, trace=True)
    for u, t in enumerate(res.traces):
        if t.n_accepted >= 10:
            first = t.all_accepted()[:10]
            assert set(res.items[u].tolist()) == set(first.tolist())
            assert (res.sources[u] == SOURCE_ACCEPTED).all()


def test_inductive_false_never_drafts_unseen(world):
    model, d, sids, hist, hl = world
    res = SpecGR(model, d, sids, small(inductive=False)).recommend(hist, hl, trace=True)
    for t in res.traces:
        assert (t.all_drafted() < N_IN).all()
    assert (res.items < N_IN).all()
    ind = SpecGR(model, d, sids, small()).recommend(hist, hl, trace=True)
    assert any((t.all_drafted() >= N_IN).any() for t in ind.traces)  # the inductive run does draft new items


def test_k_larger_than_pool_pads(world):
    model, d, sids, hist, hl = world
    cfg = small(draft_size=3, num_beams=2, max_rounds=2, threshold=float("inf"), top_k=20)
    ref, bat = run_both(world, cfg)
    assert_same(ref, bat)
    assert (bat.items[:, -1] == -1).all() and (bat.sources[:, -1] == SOURCE_NONE).all()
    assert_no_duplicates(bat)


def test_semantic_knn_and_encoder_drafters_plug_in(world):
    from specgr.drafters.encoder import EncoderDrafter, Projection
    from specgr.drafters.knn import SemanticKNNDrafter

    model, d, sids, hist, hl = world
    knn = SemanticKNNDrafter(d.index.embeddings(), device="cpu", backend="torch")
    ref, bat = run_both(world, CONFIGS["paper"], drafter=knn)
    assert_same(ref, bat)
    for t, h in zip(bat.traces, hist.tolist()):  # the KNN drafter never drafts the user's own history
        assert not set(t.all_drafted().tolist()) & set(h)
    torch.manual_seed(0)
    enc_drafter = EncoderDrafter(model, Projection(model.cfg.d_model, 16), sids, device="cpu")
    ref, bat = run_both(world, CONFIGS["vnew"], drafter=enc_drafter)  # batched reuses its own encoder pass
    assert_same(ref, bat)


def test_tiger_only_and_recommend_rows(world):
    from specgr.data.processed import Rows

    model, d, sids, hist, hl = world
    B = len(hl)
    rows = Rows(np.arange(B), hist.numpy(), hl.numpy(), np.zeros(B, np.int64), np.zeros(B, np.int64))
    tiger = TigerOnly(model, sids).recommend_rows(rows, batch_size=4, k=10, progress=False)
    assert tiger.items.shape == (B, 10) and (tiger.items < N_IN).all() and (tiger.sources == SOURCE_BEAM).all()
    assert_no_duplicates(tiger)
    rec = SpecGR(model, d, sids, CONFIGS["paper"])
    res = rec.recommend_rows(rows, batch_size=3, progress=False)
    assert torch.equal(res.items, rec.recommend(hist, hl).items)
    assert res.timing["n_rows"] == B and res.timing["recs_per_s"] > 0


def test_length_batches_hand_case():
    from specgr.batching import length_batches

    hl = np.array([20, 1, 6, 5, 2, 11])
    plain = length_batches(hl, 20, 4, by_length=False)
    assert [(i.tolist(), w) for i, w in plain] == [([0, 1, 2, 3], 20), ([4, 5], 20)]
    # sorted (stable) by length, longest first; widths rounded up to a quarter of 20 (5): max 20 -> 20, max 2 -> 5
    assert [(i.tolist(), w) for i, w in length_batches(hl, 20, 4, by_length=True)] == [([0, 5, 2, 3], 20),
                                                                                       ([4, 1], 5)]
    assert length_batches(np.array([1, 2]), 20, 4, True)[0][1] == 5  # at least one step
    assert length_batches(np.array([3]), 3, 4, True)[0][1] == 3  # never wider than the histories


def test_batch_width_rounds_up_to_a_quarter_of_the_window():
    from specgr.batching import batch_width

    assert [batch_width([n], 20) for n in (1, 5, 6, 11, 16, 20)] == [5, 5, 10, 15, 20, 20]
    assert batch_width([2, 3], 3) == 3 and batch_width([1], 3) == 1  # a window of 3: steps of 1


@pytest.mark.parametrize("which", ["specgr", "tiger"])
def test_recommend_rows_by_length_gives_the_same_lists(world, which):
    """Batches of similar lengths, cut to their width, give every row its lists, in row order (CPU, fp32)."""
    from specgr.data.processed import Rows
    from specgr.batching import length_batches

    model, d, sids, hist, hl = world
    B = len(hl)
    rows = Rows(np.arange(B), hist.numpy(), hl.numpy(), np.zeros(B, np.int64), np.zeros(B, np.int64))
    rec = SpecGR(model, d, sids, CONFIGS["paper"]) if which == "specgr" else TigerOnly(model, sids, num_beams=10)
    plain = rec.recommend_rows(rows, batch_size=3, k=10, progress=False)
    cut = rec.recommend_rows(rows, batch_size=3, k=10, progress=False, by_length=True)
    assert_same(plain, cut)
    assert cut.timing["n_rows"] == B
    assert any(w < H for _, w in length_batches(hl.numpy(), H, 3, True))  # some batch was cut


def test_new_switches_do_what_they_say(world):
    """History exclusion keeps history items out of every list; the bonus raises new items' acceptance."""
    _, _, sids, hist, hl = world
    _, bat = run_both(world, CONFIGS["exclude-history"])
    for b in range(len(hl)):
        assert not set(bat.items[b].tolist()) & set(hist[b, :hl[b]].tolist())
    _, plain = run_both(world, small(threshold=-3.5))
    _, bonus = run_both(world, CONFIGS["new-item-bonus"])
    new_acc = lambda r: sum(int((t.rounds[0].accepted & (t.rounds[0].drafted >= sids.n_in_sample)).sum())  # noqa: E731
                            for t in r.traces)
    assert new_acc(bonus) > new_acc(plain)


@pytest.mark.parametrize("name", ["paper", "vnew-aux", "big-draft"])
def test_guided_rounds_verify_like_teacher_forcing(world, name):
    """Guided rounds score drafts on top of the beam prefix (docs/METHOD.md §6): the V in the trace equals a full
    teacher-forced pass over the same drafts (ReferenceSpecGR and SpecGR share the path, so both are covered)."""
    from specgr.speculate import steps

    model, d, sids, hist, hl = world
    cfg = CONFIGS[name]
    res = SpecGR(model, d, sids, cfg).recommend(hist, hl, trace=True)
    guided = 0
    for b, tr in enumerate(res.traces):
        _, _, st = steps.encode(model, sids, hist[b:b + 1], hl[b:b + 1])
        for rt in tr.rounds:
            ids = torch.as_tensor(rt.drafted)[None]
            full = steps.verify(model, sids, st, ids, cfg.length_rule, cfg.min_len)[0]
            np.testing.assert_allclose(rt.verify_scores, full.numpy(), rtol=0, atol=1e-5)
            guided += cfg.uses_prefixes(rt.round)
    assert guided >= len(hl)


def test_reference_rejects_drafts_outside_the_prefixes(world):
    """The prefix reuse needs every guided draft under a beam prefix (the Drafter protocol); the reference checks it."""

    class IgnoresAllowed(PlainDrafter):
        def draft(self, history, hist_len, k, allowed=None, exclude=None):
            return self._inner.draft(history, hist_len, k, exclude=exclude)

    model, d, sids, hist, hl = world
    with pytest.raises(ValueError, match="allowed beam prefixes"):
        ReferenceSpecGR(model, IgnoresAllowed(d.index.embeddings()), sids, small(threshold=0.0)).recommend(
            hist[:1], hl[:1])


def test_compaction_default_follows_the_device():
    """compact=None: static shapes on CUDA (no host sync in the loop), compaction on CPU; explicit values win."""
    assert SpecGRConfig().compacts("cpu") and not SpecGRConfig().compacts("cuda")
    assert not SpecGRConfig(compact=False).compacts("cpu") and SpecGRConfig(compact=True).compacts("cuda")


def test_graphed_recommender_refuses_what_it_cannot_capture(world):
    """Clear errors with a fix: a CPU recommender, a compacting loop."""
    from specgr.speculate.graphed import GraphedRecommender

    model, drafter, sids, _, _ = world
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedRecommender(SpecGR(model, drafter, sids, small(compact=False)), batch_size=8)
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedRecommender(TigerOnly(model, sids), batch_size=8)


@pytest.mark.parametrize("name", ["static-paper", "static-learned-history", "most-accepted", "all-in-round-1"])
def test_stopping_a_static_batch_when_no_user_is_live_keeps_its_lists(world, name):
    """What the graphed loop's early exit does (`GraphedRecommender`): the phases of the static loop, stopped after
    the first round in which no user of the batch is live, give the lists of the loop that runs every round."""
    model, drafter, sids, hist, hl = world
    cfg = {"most-accepted": small(compact=False, threshold=-4.2),  # every user done after round 2 or 3
           "all-in-round-1": small(compact=False, threshold=float("-inf"), draft_size=10)}.get(name) or CONFIGS[name]
    rec = SpecGR(model, drafter, sids, cfg)
    with torch.inference_mode():
        full = rec._recommend(hist, hl)
        lp = rec._begin(hist, hl, None)
        for rnd in range(1, lp.rounds + 1):
            rec._round(lp, rnd)
            if not rec._n_live(lp):
                break
        else:
            rec._fill(lp)
        stopped = rec._end(lp)
    assert_same(full, stopped)
    assert torch.equal(full.scores, stopped.scores)
    if name in ("most-accepted", "all-in-round-1"):  # the case under test happens: rounds were skipped
        assert rnd < lp.rounds and int(full.n_rounds.max()) == rnd


@pytest.mark.parametrize("name", ["static-paper", "learned-history-many-accepted", "most-accepted", "many-accepted"])
@pytest.mark.parametrize("sizes", ["fewest", "live-plus-one"])
def test_shrinking_a_static_batch_to_its_live_users_keeps_its_lists(world, name, sizes):
    """What the graphed loop's shrinking does (`GraphedRecommender(shrink=True)`): after each round the static loop is
    cut to rows that hold its live users (`SpecGR._shrink`: live ones first, then finished ones), on the fewest
    power-of-two rows that fit them or on one more row than they need; the lists are those of the loop that runs
    every round on the whole batch."""
    model, drafter, sids, hist, hl = world
    cfg = {"most-accepted": small(compact=False, threshold=-4.2),
           "many-accepted": small(compact=False, threshold=-3.9),
           "learned-history-many-accepted": small(compact=False, threshold=-3.9, final_weights=LEARNED_W,
                                                  exclude_history=True, new_item_bonus=0.5)}.get(name) or CONFIGS[name]
    rec = SpecGR(model, drafter, sids, cfg)
    B, cut_to = hist.shape[0], []
    with torch.inference_mode():
        full = rec._recommend(hist, hl)
        lp = rec._begin(hist, hl, None)
        for rnd in range(1, lp.rounds + 2):  # the rounds, then the fill-up
            if rnd > 1:
                n = int(rec._n_live(lp))
                if n == 0:
                    break
                size = 1 << (n - 1).bit_length() if sizes == "fewest" else n + 1
                if size < lp.rows.numel():
                    lp = rec._shrink(lp, size)
                    cut_to.append(size)
                    assert int((lp.n_acc[lp.rows] < lp.K).sum()) == n  # every live user moved
            rec._round(lp, rnd) if rnd <= lp.rounds else rec._fill(lp)
        shrunk = rec._end(lp)
    assert_same(full, shrunk)
    assert torch.equal(full.scores, shrunk.scores)
    if name != "static-paper":  # the case under test happens: later rounds ran on fewer rows
        assert cut_to and cut_to[-1] < B, cut_to


@pytest.mark.parametrize("after_round", [1, 2])
def test_a_graphed_move_writes_what_shrinking_returns(world, after_round):
    """`GraphedRecommender` moves a batch to fewer rows by gathering its state into the smaller graphs' input buffers
    in place (`_gather_into`, captured as a graph); on the CPU the gather must equal `SpecGR._shrink`, for contiguous
    buffers and a non-contiguous one."""
    from specgr.speculate.graphed import _gather_into, _tensors

    model, drafter, sids, hist, hl = world
    rec = SpecGR(model, drafter, sids, small(compact=False, threshold=-3.9))
    with torch.inference_mode():
        lp = rec._begin(hist, hl, None)
        for rnd in range(1, after_round + 1):
            rec._round(lp, rnd)
        want = rec._shrink(lp, 4)
        dst = rec._shrink(lp, 4)
        dst = dataclasses.replace(dst, state=dataclasses.replace(
            dst.state, cross_kv=[(k.transpose(2, 3).contiguous().transpose(2, 3), v) for k, v in dst.state.cross_kv]))
        assert not dst.state.cross_kv[0][0].is_contiguous()
        for t in _tensors((dst.rows, dst.state, (dst.beam, dst.adv))):
            t.zero_()
        _gather_into((dst.rows, dst.state, (dst.beam, dst.adv)), (lp.rows, lp.state, (lp.beam, lp.adv)),
                     rec._kept(lp, 4), hist.shape[0])
    got, exp = list(_tensors((dst.rows, dst.state, (dst.beam, dst.adv)))), list(_tensors(
        (want.rows, want.state, (want.beam, want.adv))))
    assert len(got) == len(exp) > 10
    assert all(torch.equal(g, e) for g, e in zip(got, exp))


def test_shrinking_refuses_a_compacting_loop(world):
    model, drafter, sids, hist, hl = world
    rec = SpecGR(model, drafter, sids, small(compact=True))
    with torch.inference_mode(), pytest.raises(ValueError, match="compact=False"):
        rec._shrink(rec._begin(hist, hl, None), 4)


@pytest.mark.gpu
@pytest.mark.parametrize("which", ["specgr", "specgr-fused", "specgr-ranges", "specgr-many-accepted",
                                   "specgr-shrinks", "specgr-no-shrink", "specgr-whole", "tiger"])
def test_graphed_recommender_equals_eager(world, which):
    """A CUDA-graph replay returns the eager lists bit for bit, on a full batch and on a padded last batch (10 rows
    in batches of 8: the second holds 2 real rows and 6 copies); with early exit and shrinking (phases, the default),
    early exit alone ("specgr-no-shrink") and neither (one graph, "specgr-whole"). "specgr-many-accepted": batches
    stop before the last round; "specgr-shrinks": later rounds run on fewer rows (4 or 2)."""
    from specgr.speculate.graphed import GraphedRecommender

    import copy

    model, _, sids, hist, hl = world
    model = copy.deepcopy(model)  # .to("cuda") moves a module in place: keep the fixture's on the CPU
    drafter = RandomDrafter(world[1].index.embeddings().clone()).to("cuda")
    if which == "tiger":
        eager = TigerOnly(model, sids, num_beams=10, device="cuda")
    else:
        extra = {"specgr-fused": dict(fusion_weight=0.5, new_item_bonus=1.0),
                 "specgr-ranges": dict(draft_ranges=True),
                 "specgr-many-accepted": dict(threshold=-4.2),
                 "specgr-shrinks": dict(threshold=-3.9)}.get(which, {})
        eager = SpecGR(model, drafter, sids, small(compact=False, **extra), device="cuda")
        with pytest.raises(ValueError, match="compact=False"):
            GraphedRecommender(SpecGR(model, drafter, sids, small(compact=True), device="cuda"), batch_size=8)
    graphed = GraphedRecommender(eager, batch_size=8, early_exit=which != "specgr-whole",
                                 shrink=which != "specgr-no-shrink")

    class Rows:
        history, hist_len = hist.numpy(), hl.numpy()

    a = eager.recommend_rows(Rows, batch_size=8, k=10, progress=False)
    b = graphed.recommend_rows(Rows, k=10, progress=False)
    b2 = graphed.recommend_rows(Rows, k=10, progress=False)  # replays only
    for got in (b, b2):
        assert torch.equal(a.items, got.items) and torch.equal(a.sources, got.sources)
        assert torch.allclose(a.scores, got.scores, equal_nan=True)
        assert torch.equal(a.n_rounds, got.n_rounds) and torch.equal(a.n_accepted, got.n_accepted)
    assert len(graphed._captured) == 1  # one capture served every batch
    if which == "specgr-many-accepted":  # a batch stopped early: the case under test happened
        assert graphed.rounds_replayed and min(graphed.rounds_replayed) < eager.cfg.max_rounds  # {rounds: batches}
    if which == "specgr-shrinks":  # {(round, rows): batches}: a round ran on fewer rows than the batch
        assert graphed.sizes == [8, 4, 2] and min(rows for _, rows in graphed.round_rows) < 8, graphed.round_rows
    if which == "specgr-no-shrink":
        assert graphed.sizes == [8] and {rows for _, rows in graphed.round_rows} == {8}
    # by length: a capture per batch width, the eager loop's lists on the same batches, in row order

    class Short:  # histories of at most 5 items: batches cut to a quarter of the width
        hist_len = hl.clamp(max=5).numpy()
        history = torch.where(torch.arange(H)[None] < hl.clamp(max=5)[:, None], hist, -1).numpy()

    a3 = eager.recommend_rows(Short, batch_size=8, k=10, progress=False, by_length=True)
    b3 = graphed.recommend_rows(Short, k=10, progress=False, by_length=True)
    assert torch.equal(a3.items, b3.items) and torch.allclose(a3.scores, b3.scores, equal_nan=True)
    assert sorted(graphed._captured) == [(5, 10), (20, 10)]
    # one pool: the second capture may reuse the first's beam states. Each replays right after the other's replays
    b4 = graphed.recommend_rows(Rows, k=10, progress=False)  # the first capture again, after the second
    assert torch.equal(a.items, b4.items) and torch.allclose(a.scores, b4.scores, equal_nan=True)
    b5 = graphed.recommend_rows(Short, k=10, progress=False, by_length=True)
    assert torch.equal(a3.items, b5.items) and torch.allclose(a3.scores, b5.scores, equal_nan=True)


@pytest.mark.gpu
def test_graphed_recommenders_release_their_memory(world):
    """Capturing and dropping graphed recommenders one after another holds no more GPU memory each time: a graph's
    pool goes with it, and the warm-up runs share one side stream (cuBLAS keeps a workspace per stream)."""
    import copy
    import gc

    from specgr.speculate.graphed import GraphedRecommender

    model, _, sids, hist, hl = world
    model = copy.deepcopy(model)
    drafter = RandomDrafter(world[1].index.embeddings().clone()).to("cuda")

    def capture_and_drop() -> int:
        g = GraphedRecommender(SpecGR(model, drafter, sids, small(compact=False), device="cuda"), batch_size=8)
        g.recommend(hist[:8], hl[:8], k=10)
        del g
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        return torch.cuda.memory_reserved()

    first = capture_and_drop()
    assert all(capture_and_drop() <= first for _ in range(3))


def test_decoder_positions_count_on_a_hand_trace():
    """benchmarks/decoder_positions.py: the loop's positions and the distinct-prefix floor of a two-round trace."""
    from specgr.speculate.trace import RoundTrace, UserTrace

    mod = _bench_module("decoder_positions")
    tok = np.array([[1, 2, 3, 0], [1, 2, 4, 0], [1, 5, 6, 0], [7, 8, 9, 0]])
    z = np.zeros(3)
    r1 = RoundTrace(1, 0, np.array([0, 1, 2]), z, z, z.astype(bool), beam_tokens=np.array([[1], [7]]))
    r2 = RoundTrace(2, 1, np.array([3]), z[:1], z[:1], z[:1].astype(bool), beam_tokens=np.array([[7, 8]]))
    tr = UserTrace(rounds=[r1, r2])
    # round 1: the empty prefix + 3 drafts x 3 inputs; round 2: 2 beams + 1 draft x 2 inputs
    # distinct: (), 1, 12, 123, 124, 15, 156 from round 1; 7, 78, 789 from round 2 (beam prefixes 1 and 7 are in it)
    # within one round: round 1 shares 1 and 12 among its drafts (1 + 6 inputs), round 2 has one draft (2 + 2)
    assert mod.count(tr, tok, n_in_sample=4) == {"loop": 14, "within_round": 11, "distinct_prefixes": 10,
                                                 "guiding_beam": 3}
    # items 2 and 3 unseen: their V has 3 digits, so 156 and 789 are not needed
    assert mod.count(tr, tok, n_in_sample=2) == {"loop": 14, "within_round": 11, "distinct_prefixes": 8,
                                                 "guiding_beam": 3}
    # pruning by bounds (γ -1.4): item 0 stays above γ (all of its inputs); item 1 is decided after one digit (-7/4
    # is below γ and below the fill-up cutoff -1.5); item 2 after two (-6/4 = the cutoff: could still enter the fill,
    # so 15 is decoded; -7/4 after three); item 3 all. Pruned: (), 1, 7 (beams) + 12, 123, 15, 78, 789
    lp = np.array([[-0.1] * 4, [-7.0, 0, 0, 0], [-1.0, -5.0, -1.0, 0], [-0.5] * 4])
    tr.items, tr.scores, tr.sources = np.array([0, 2]), np.array([-0.1, -1.5]), ["accepted", "fill"]
    assert mod.count(tr, tok, 4, lp, threshold=-1.4)["pruned_prefixes"] == 8
    tr.sources = ["accepted", "accepted"]  # no fill-up: only acceptance decides, and 15 is not needed
    assert mod.count(tr, tok, 4, lp, threshold=-1.4)["pruned_prefixes"] == 7


def test_learned_final_ranking_scores_by_its_features(world):
    """With final_weights the final list is ordered by weights · features: the trace's final scores are exactly that
    product for every drafted item, the list's scores come from them (or from fill beams), and zero weights on all but
    V reproduce V's order (the paper's ranking) on the accepted items."""
    from specgr.speculate.learned_rank import FEATURES

    model, d, sids, hist, hl = world
    cfg = CONFIGS["learned-few-accepted"]
    res = SpecGR(model, d, sids, cfg).recommend(hist, hl, trace=True)
    assert (res.sources == SOURCE_BEAM).any(), "the setting must exercise the fill beams"
    for t in res.traces:
        finals = {int(i): float(f) for r in t.rounds for i, f in zip(r.drafted, r.final_scores)}
        for item, score, src in zip(t.items.tolist(), t.scores.tolist(), t.sources):
            if src != "beam":
                assert score == pytest.approx(finals[item], abs=1e-5)
        assert np.all(np.diff(t.scores) <= 1e-6), "sorted by the learned score"
    only_v = tuple(1.0 if f == "V" else 0.0 for f in FEATURES)
    a = SpecGR(model, d, sids, small(final_weights=only_v, length_rule="prefix_len", min_len=1,
                                     threshold=-3.9)).recommend(hist, hl)
    b = SpecGR(model, d, sids, small(length_rule="prefix_len", min_len=1, threshold=-3.9)).recommend(hist, hl)
    assert torch.equal(a.items, b.items)


def test_final_weights_are_checked():
    with pytest.raises(ValueError, match="Fix: fit them"):
        SpecGRConfig(final_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="fusion_weight=0"):
        SpecGRConfig(final_weights=LEARNED_W, fusion_weight=1.0)
    assert SpecGRConfig(final_weights=list(LEARNED_W)).final_weights == LEARNED_W  # JSON lists: hashable tuples


def _bench_module(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_speculate_writes_the_run_of_record_keys(tmp_path):
    """benchmarks/bench_speculate.py end to end on a random tiny model, CPU: the JSON of issue 15's run of record,
    with the batched loop's lists equal to the one-user reference's (exact on the CPU), so no row is listed as
    differing, and the config it ran."""
    mod = _bench_module("bench_speculate")
    path = tmp_path / "bench.json"
    out = mod.main(["--random-model", "--preset", "tiny", "--n-items", "300", "--rows", "16", "--ref-rows", "8",
                    "--batch-size", "8", "--device", "cpu", "--latency-users", "2", "--gamma", "-1.4",
                    "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(out))
    assert out["reference_agreement"] == 1.0 and out["reference_differing_rows"] == []
    assert out["reference_same_sets"] == 1.0 and out["reference_overlap"] == 1.0
    assert out["config"]["draft_size"] == 50 and out["config"]["num_beams"] == 30 and out["config"]["threshold"] == -1.4
    assert out["batched"]["rows"] == 16 and out["reference"]["rows"] == 8
    assert out["batched"]["recs_per_s"] > 0 and out["tiger_beam"]["recs_per_s"] > 0
    assert 0 < out["batched"]["mean_rounds"] <= out["config"]["max_rounds"]
    assert set(out["cpu_latency"]) == {"specgr", "tiger_beam"} and out["cpu_latency"]["specgr"]["users"] == 2
    assert out["relu_epilogue"] is True and out["cudnn_cross_attention"] is False  # the defaults, recorded


def test_bench_warms_up_every_width_the_run_uses():
    from specgr.batching import length_batches

    mod = _bench_module("bench_speculate")
    hl = np.array([20, 1, 6, 5, 2, 11, 3, 1, 12])  # by length, longest first: 20, 12, 11 | 6, 5, 3 | 2, 1, 1
    hist = np.where(np.arange(20)[None] < hl[:, None], 7, -1)
    for by_length in (False, True):
        warm = mod.warm_up_batches(hist, hl, 3, by_length)
        used = {w for _, w in length_batches(hl, 20, 3, by_length)}
        assert sorted(h.shape[1] for h, _ in warm) == sorted(used)
        assert all(n.max() <= h.shape[1] for h, n in warm)  # every warm-up row fits its width
    assert sorted(used) == [5, 10, 20]


def test_bench_speculate_without_a_reference():
    """--ref-rows 0: a speed-only run (release 24's switch comparisons) with no reference and no agreement keys; the
    kernel switches are recorded (on a CPU they change nothing)."""
    mod = _bench_module("bench_speculate")
    out = mod.main(["--random-model", "--preset", "tiny", "--n-items", "300", "--rows", "8", "--ref-rows", "0",
                    "--batch-size", "8", "--device", "cpu", "--latency-users", "0", "--no-relu-epilogue",
                    "--cudnn-cross-attention", "--by-length"])
    assert not any(k.startswith(("reference", "speedup")) for k in out)
    assert out["batched"]["rows"] == 8 and out["relu_epilogue"] is False and out["cudnn_cross_attention"]
    assert out["by_length"] is True


def test_bench_speculate_keeps_the_timed_runs_when_the_reference_is_cut_short(tmp_path, monkeypatch):
    """The JSON holds the batched and beam-search results before the slow one-user reference starts, so a run killed
    by a time limit during the reference still leaves them (release 27's call 6 lost a whole run that way)."""
    mod = _bench_module("bench_speculate")
    timed = mod.timed

    def reference_killed(rec, rows, batch_size, k, by_length=False):
        if batch_size == 1:  # the one-user reference
            raise KeyboardInterrupt
        return timed(rec, rows, batch_size, k, by_length)

    monkeypatch.setattr(mod, "timed", reference_killed)
    path = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        mod.main(["--random-model", "--preset", "tiny", "--n-items", "300", "--rows", "8", "--ref-rows", "4",
                  "--batch-size", "8", "--device", "cpu", "--latency-users", "0", "--json", str(path)])
    out = json.loads(path.read_text())
    assert out["batched"]["rows"] == 8 and out["tiger_beam"]["rows"] == 8 and "reference" not in out


def test_speed_vs_gamma_pairs_the_graph_modes(tmp_path):
    """benchmarks/speed_vs_gamma.py: one row per γ with every graph mode (release 19's files, which have no
    graph_shrink key, read as early exit), -inf last, the ratio to beam search from the runs' own numbers; runs of
    another setup or without graphs are refused."""
    mod = _bench_module("speed_vs_gamma")

    def run(gamma, exit_, recs, beam, replayed=None, shrink=None, **over):
        d = {"model": "ckpt", "rows": "valid[:8]", "drafter": "encoder", "gpu": "toy", "batch_size": 4, "compile": True,
             "cuda_graph": True, "graph_early_exit": exit_,
             "config": {"threshold": gamma, "draft_size": 5, "num_beams": 3},
             "batched": {"recs_per_s": recs, "acceptance_rate": 0.5, "mean_rounds": 2.0, "recall@5": 0.2},
             "tiger_beam": {"recs_per_s": beam, "recall@5": 0.3}}
        if exit_:
            d["batched"]["batch_rounds_replayed"] = replayed
        if shrink is not None:
            d["graph_shrink"] = True
            d["batched"]["batch_row_rounds"] = shrink
        d.update(over)
        p = tmp_path / f"{gamma}_{exit_}_{len(list(tmp_path.iterdir()))}.json"
        p.write_text(json.dumps(d))  # -inf is written as -Infinity, which json reads back
        return str(p)

    files = [run(-1.4, True, 10.0, 20.0, 4.0), run(-1.4, False, 11.0, 22.0), run(float("-inf"), True, 30.0, 20.0, 1.0),
             run(float("-inf"), False, 11.0, 20.0), run(-1.4, True, 12.0, 20.0, 4.0, shrink=2.5)]
    rows = mod.rows_by_gamma(files)
    assert [r["gamma"] for r in rows] == [-1.4, float("-inf")]
    assert rows[0]["early_exit"] == 10.0 and rows[0]["one_graph"] == 11.0 and rows[0]["beam"] == 62 / 3
    assert rows[0]["shrink"] == 12.0 and rows[0]["batch_row_rounds"] == 2.5 and "shrink" not in rows[1]
    assert rows[0]["early_exit_vs_beam"] == pytest.approx(10 / (62 / 3)) and rows[1]["early_exit_vs_beam"] == 1.5
    assert rows[0]["shrink_vs_beam"] == pytest.approx(12 / (62 / 3))
    assert rows[1]["batch_rounds_replayed"] == 1.0 and rows[0]["recall"] == 0.2 and rows[0]["beam_recall"] == 0.3
    mod.plot(rows, "toy", str(tmp_path / "plot.png"))
    assert (tmp_path / "plot.png").stat().st_size > 0
    with pytest.raises(ValueError, match="mix setups"):
        mod.rows_by_gamma(files + [run(-2.0, True, 1.0, 1.0, 2.0, drafter="aux")])
    with pytest.raises(ValueError, match="not a --cuda-graph run"):
        mod.rows_by_gamma([run(-2.0, True, 1.0, 1.0, 2.0, cuda_graph=False)])


def test_range_gpu_ms_counts_each_kernel_once_in_its_innermost_range():
    """The per-phase GPU time of the profiles (bench_speculate.range_gpu_ms): kernels (faked on a CPU profile) go to
    the innermost `specgr.*` range that launched them, once; the rest to "(outside)"; per batch."""
    import torch.profiler as tp
    from torch.profiler import record_function

    mod = _bench_module("bench_speculate")
    with tp.profile(activities=[tp.ProfilerActivity.CPU]) as prof:
        for _ in range(2):  # two "batches"
            with record_function("specgr.outer"):
                x = torch.ones(4, 4) @ torch.ones(4, 4)
                with record_function("specgr.inner"):
                    x = x.relu()
            x = x.neg()
    fake_us = {"aten::mm": 1000, "aten::relu": 10, "aten::neg": 5}
    for e in prof.events():
        if e.name in fake_us:
            e.append_kernel("kernel", 0, fake_us[e.name])
    got = mod.range_gpu_ms(prof, 2)
    assert got == {"specgr.outer": {"gpu_ms": 1.0, "calls": 1.0}, "specgr.inner": {"gpu_ms": 0.01, "calls": 1.0},
                   "(outside)": {"gpu_ms": 0.005, "calls": 0.0}}


def test_bench_agreement_on_hand_cases():
    """bench_speculate.agreement: identical lists, the same items reordered, one item swapped for another."""
    agreement = _bench_module("bench_speculate").agreement
    ref = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    got = torch.tensor([[1, 2, 3, 4], [2, 1, 3, 4], [1, 2, 3, 9]])
    out = agreement(ref, got, "x")
    assert out.pop("x_differing_rows") == [1, 2]
    assert out == pytest.approx({"x_agreement": 1 / 3, "x_same_sets": 2 / 3, "x_overlap": (4 + 4 + 3) / 12})
