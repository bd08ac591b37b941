"""Verifier scores: batched == per user, paper / prefix_len length rules against a hand computation."""

import pytest
import torch

from specgr.data.tokenize import history_tokens
from specgr.models.beam import Beam, beam_advance, beam_step
from specgr.models.scoring import length_normalized, score_candidates
from specgr.models.tiger import TIGER, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs




@pytest.fixture(scope="module")
def env():
    g = torch.Generator().manual_seed(0)
    n, n_in, C = 30, 20, 4
    sids = SemanticIDs.from_codes(torch.randint(0, C, (n, 3), generator=g), n_in, C, on_overflow="grow")
    torch.manual_seed(0)
    model = TIGER(tiger_preset("tiny"), sids.vocab_size).eval()
    ids, mask = history_tokens(torch.randint(0, n, (4, 6), generator=g), sids)
    with torch.no_grad():
        enc = model.encode(ids, mask)
    # different candidate lists per user, with -1 pads in the middle and at the end
    cand = torch.tensor([[0, 25, 3, -1, 21, 19],
                         [29, -1, -1, -1, -1, -1],
                         [5, 6, 7, 8, 9, 22],
                         [-1, 1, 28, 2, -1, -1]])
    return sids, model, enc, mask, cand


def hand_score(model, enc_b, mask_b, tokens4, m):
    dec = torch.cat([torch.zeros(1, dtype=torch.long), tokens4[:3]])[None, None]
    lp = model.decoder_logprobs(enc_b[None], mask_b[None], dec)[0, 0]  # (4, V)
    return sum(lp[t, tokens4[t]] for t in range(m)) / m


def test_batched_equals_per_user_and_paper_rule(env):
    sids, model, enc, mask, cand = env
    v = score_candidates(model, enc, mask, cand, sids.tokens, sids.n_in_sample)
    assert v.shape == cand.shape
    assert torch.isinf(v[cand < 0]).all() and torch.isfinite(v[cand >= 0]).all()
    with torch.no_grad():
        for b in range(len(cand)):
            keep = cand[b] >= 0
            one = score_candidates(model, enc[b:b + 1], mask[b:b + 1], cand[b:b + 1, keep], sids.tokens,
                                   sids.n_in_sample)
            assert torch.allclose(one[0], v[b, keep], atol=1e-5)
            for r in torch.nonzero(keep).flatten().tolist():
                x = int(cand[b, r])
                m = 4 if x < sids.n_in_sample else 3  # paper: unseen items average over 3 digits
                ref = hand_score(model, enc[b], mask[b], sids.tokens[x], m)
                assert abs(float(ref) - float(v[b, r])) < 1e-5
    # chunked == unchunked; a SemanticIDs works in place of the token table; EncoderState in place of enc
    assert torch.allclose(score_candidates(model, enc, mask, cand, sids, sids.n_in_sample, chunk=2), v, atol=1e-6)
    st = model.encoder_state(enc, mask)
    assert torch.allclose(score_candidates(model, st, None, cand, sids.tokens, sids.n_in_sample), v, atol=1e-6)


def test_prefix_len_rule(env):
    sids, model, enc, mask, cand = env
    for min_len in (1, 2, 3):
        v = score_candidates(model, enc, mask, cand, sids.tokens, sids.n_in_sample, length_rule="prefix_len",
                             prefix_len=sids.prefix_len, min_len=min_len)
        with torch.no_grad():
            for b, r in torch.nonzero(cand >= 0).tolist():
                x = int(cand[b, r])
                m = max(int(sids.prefix_len[x]), min_len)
                ref = hand_score(model, enc[b], mask[b], sids.tokens[x], m)
                assert abs(float(ref) - float(v[b, r])) < 1e-5
    with pytest.raises(ValueError):
        score_candidates(model, enc, mask, cand, sids.tokens, sids.n_in_sample, length_rule="prefix_len")


def test_length_normalized_is_the_mean_of_the_first_m_digits():
    """Hand case: digits after the m-th never count, even -inf ones; a -inf digit among the first m gives -inf; the
    sum is the cumulative sum's, up to rounding (on the CPU torch accumulates cumulative sums in float64)."""
    lp = torch.tensor([[-1.0, -2.0, -3.0, float("-inf")], [-0.5, float("-inf"), -1.0, -1.0],
                       [-0.1, -0.2, -0.3, -0.4]])
    m = torch.tensor([3, 4, 1])
    v = length_normalized(lp, m)
    assert torch.equal(v, torch.tensor([-2.0, float("-inf"), -0.1]))
    x = torch.randn(64, 50, 4)
    mm = torch.randint(1, 5, (64, 50))
    torch.testing.assert_close(length_normalized(x, mm), x.cumsum(-1).gather(-1, (mm - 1)[..., None])[..., 0] / mm)


def test_empty_candidates(env):
    sids, model, enc, mask, _ = env
    v = score_candidates(model, enc, mask, torch.zeros(4, 0, dtype=torch.long), sids.tokens, sids.n_in_sample)
    assert v.shape == (4, 0)


@pytest.mark.parametrize("L", [0, 1, 2, 3])  # the beam before verification in rounds 1, 2, 3, 4
def test_prefix_reuse_equals_teacher_forced(L):
    """Guided drafts scored on top of their parent beam (its digit log-probs + KV cache) == the full teacher-forced V,
    for both length rules (prefix_len with min_len < L takes fewer digits than the reused prefix); and with the beam's
    next decoder step shared (`beam_advance`: the digit after the prefix read from it; L = 0 is round 1's empty beam,
    whose only prefix every item extends)."""
    g = torch.Generator().manual_seed(L)
    n, n_in, C, B, W, R = 200, 150, 5, 4, 4, 40
    sids = SemanticIDs.from_codes(torch.randint(0, C, (n, 3), generator=g), n_in, C, on_overflow="grow")
    torch.manual_seed(L)
    model = TIGER(tiger_preset("tiny"), sids.vocab_size).eval()
    ids, mask = history_tokens(torch.randint(0, n, (B, 6), generator=g), sids)
    with torch.no_grad():
        st = model.encoder_state(model.encode(ids, mask), mask)
        beam = Beam.start(B, "cpu")
        for _ in range(L):
            beam = beam_step(model, sids, st, beam, W)
    # every item under the user's beam prefixes, in random order, with -1 pads in between
    allowed = sids.prefix_match_mask(beam.tokens, beam.valid)
    cand = torch.full((B, R), -1)
    for b in range(B):
        items = allowed[b].nonzero()[:, 0]
        items = items[torch.randperm(len(items), generator=g)][:R // 2]
        slots = torch.randperm(R, generator=g)[:len(items)]
        cand[b, slots] = items
    assert (cand >= 0).sum() > 2 * B
    rules = [("paper", 3)] + [("prefix_len", m) for m in (1, 2, 3)]
    with torch.no_grad():
        adv = beam_advance(model, st, beam)
    for rule, min_len in rules:
        kw = dict(length_rule=rule, prefix_len=sids.prefix_len, min_len=min_len)
        full = score_candidates(model, st, None, cand, sids.tokens, n_in, **kw)
        for chunk in (None, 7):
            for advance in ([None, adv] if L else [adv]):  # (without it, an empty beam is not reused: no cache yet)
                got = score_candidates(model, st, None, cand, sids.tokens, n_in, chunk=chunk, beam=beam,
                                       advance=advance, **kw)
                assert torch.isinf(got[cand < 0]).all() and torch.isfinite(got[cand >= 0]).all()
                torch.testing.assert_close(got, full, rtol=0, atol=1e-5)
    # the beam step from the shared advance == the beam step that decodes it itself
    with torch.no_grad():
        a, b = beam_step(model, sids, st, beam, W, advance=adv), beam_step(model, sids, st, beam, W)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.scores, b.scores) and torch.equal(a.logprobs, b.logprobs)


@pytest.mark.gpu
def test_bf16_scoring_matches_fp32_on_gpu(env):
    sids, model, enc, mask, cand = env
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = TIGER(tiger_preset("games"), sids.vocab_size).eval().to(dev)
    g = torch.Generator().manual_seed(1)
    ids, mask = history_tokens(torch.randint(0, sids.n_items, (64, 20), generator=g), sids)
    ids, mask = ids.to(dev), mask.to(dev)
    cand = torch.randint(-1, sids.n_items, (64, 80), generator=g).to(dev)
    with torch.no_grad():
        ref = score_candidates(model, model.encode(ids, mask), mask, cand, sids.tokens, sids.n_in_sample)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got = score_candidates(model, model.encode(ids, mask), mask, cand, sids.tokens, sids.n_in_sample)
        half = model.to(torch.bfloat16)
        got2 = score_candidates(half, half.encode(ids, mask), mask, cand, sids.tokens, sids.n_in_sample)
    ok = cand >= 0
    assert torch.isinf(got[~ok]).all()
    assert (got[ok] - ref[ok]).abs().max() < 0.05
    assert (got2[ok] - ref[ok]).abs().max() < 0.15
