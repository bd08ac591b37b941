"""Beam search: full-width constrained beam == exhaustive ranking; unconstrained can emit non-items; step primitive."""

import pytest
import torch

from specgr.models.beam import beam_search, expand_beams
from specgr.models.scoring import exhaustive_scores
from specgr.models.tiger import TIGER, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs




def setup(n=30, n_in=22, C=4, B=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    sids = SemanticIDs.from_codes(torch.randint(0, C, (n, 3), generator=g), n_in, C, on_overflow="grow")
    torch.manual_seed(seed)
    model = TIGER(tiger_preset("tiny"), sids.vocab_size).eval()
    hist = torch.randint(0, n, (B, 5), generator=g)
    from specgr.data.tokenize import history_tokens

    ids, mask = history_tokens(hist, sids)
    return sids, model, ids, mask


def test_full_width_constrained_beam_equals_exhaustive():
    sids, model, ids, mask = setup()
    N = sids.n_items
    items, scores, tokens = beam_search(model, ids, mask, sids, width=N)
    with torch.no_grad():
        ex = exhaustive_scores(model, model.encode(ids, mask), mask, sids)
    ex_scores, ex_items = ex.sort(1, descending=True)
    assert torch.equal(items, ex_items)  # every item, in exactly the exhaustive order
    assert torch.allclose(scores, ex_scores, atol=1e-4)
    assert torch.equal(tokens, sids.tokens[items])


def test_narrow_beam_returns_valid_items_and_padding():
    sids, model, ids, mask = setup()
    items, scores, tokens = beam_search(model, ids, mask, sids, width=8, k=5)
    assert items.shape == (ids.shape[0], 5) and (items >= 0).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    # wider than the catalog: the extra slots are empty (-1, -inf)
    items, scores, _ = beam_search(model, ids, mask, sids, width=sids.n_items + 7)
    assert ((items == -1) == torch.isinf(scores)).all()
    assert ((items >= 0).sum(1) == sids.n_items).all()
    # in-sample only (classic TIGER setting)
    items, _, _ = beam_search(model, ids, mask, sids, width=sids.n_items, in_sample_only=True)
    got = items[items >= 0]
    assert (got < sids.n_in_sample).all() and ((items >= 0).sum(1) == sids.n_in_sample).all()


def test_unconstrained_beam_can_return_non_items():
    sids, model, ids, mask = setup()
    items, scores, tokens = beam_search(model, ids, mask, sids, width=40, constrained=False)
    assert torch.isfinite(scores).all()  # every slot holds a sequence
    assert (items == -1).any()  # a random model emits ids that match no item
    ok = items >= 0
    assert torch.equal(sids.lookup(tokens[ok]), items[ok])


def test_expand_beams_step():
    B, W, V = 2, 3, 6
    lp = torch.log_softmax(torch.randn(B, W, V), -1)
    sc = torch.tensor([[0.0, -1.0, -2.0], [0.0, -0.5, float("-inf")]])
    toks = torch.arange(B * W * 2).view(B, W, 2)
    valid = torch.tensor([[True, True, True], [True, True, False]])
    allowed = torch.rand(B, W, V) > 0.3
    nt, ns, nv, parent = expand_beams(lp, sc, toks, 4, allowed, valid, return_parent=True)
    assert nt.shape == (B, 4, 3) and ns.shape == (B, 4)
    cand = (sc[..., None] + lp).masked_fill(~allowed | ~valid[..., None], float("-inf"))
    for b in range(B):
        ref = cand[b].flatten().topk(4).values
        assert torch.allclose(ns[b], ref)
        for j in range(4):
            if nv[b, j]:
                p, t = int(parent[b, j]), int(nt[b, j, -1])
                assert torch.equal(nt[b, j, :2], toks[b, p]) and allowed[b, p, t] and valid[b, p]
    # start state: one empty beam
    nt, ns, nv = expand_beams(lp[:, :1], torch.zeros(B, 1), torch.zeros(B, 1, 0, dtype=torch.long), 10)
    assert nt.shape == (B, 10, 1) and nv[:, :V].all() and not nv[:, V:].any()


def test_beam_digit_logprobs_are_teacher_forced():
    """Beam.logprobs (per digit) == the teacher-forced log-probs of the beams' tokens; they sum to the scores."""
    from specgr.models.beam import Beam, beam_step
    from specgr.models.scoring import digit_logprobs

    sids, model, ids, mask = setup()
    with torch.no_grad():
        st = model.encoder_state(model.encode(ids, mask), mask)
        beam = Beam.start(ids.shape[0], "cpu")
        for L in range(1, 5):
            beam = beam_step(model, sids, st, beam, 6)
            assert beam.logprobs.shape == beam.tokens.shape and (beam.past is None) == (L == 4)
            ok = beam.valid
            assert torch.isinf(beam.logprobs[~ok]).all()
            torch.testing.assert_close(beam.logprobs.sum(-1)[ok], beam.scores[ok], rtol=0, atol=1e-5)
            full = torch.cat([beam.tokens, beam.tokens.new_full((*beam.tokens.shape[:2], 4 - L), 3)], -1)
            tf = digit_logprobs(model, st, None, full)[..., :L]
            torch.testing.assert_close(beam.logprobs[ok], tf[ok], rtol=0, atol=1e-5)
        sub = beam.index(torch.tensor([2, 0]))
        assert torch.equal(sub.logprobs, beam.logprobs[[2, 0]])
