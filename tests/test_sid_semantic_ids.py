"""SemanticIDs: collision digits, token layout, trie queries vs brute force, inductive add, overflow, save/load."""

import numpy as np
import pytest
import torch

from specgr.sid.semantic_ids import BOS, EOS, OFFSET, PAD, SemanticIDs, SIDOverflowError


def random_codes(n, C, seed=0, hot=3):
    """Codes drawn from a small alphabet so prefixes are shared and collisions happen."""
    g = np.random.default_rng(seed)
    return g.integers(0, min(C, hot), size=(n, 3))


@pytest.fixture
def sids():
    return SemanticIDs.from_codes(random_codes(60, 5), n_in_sample=40, codebook_size=5, on_overflow="grow")


def test_layout_and_uniqueness(sids):
    assert (PAD, BOS, EOS, OFFSET) == (0, 1, 2, 3)
    C, C4 = sids.C, sids.collision_size
    assert sids.vocab_size == 3 + 3 * C + C4
    assert sids.codes.shape == sids.tokens.shape == (60, 4)
    for d in range(4):
        assert torch.equal(sids.tokens[:, d], 3 + d * C + sids.codes[:, d])
    assert len({tuple(r) for r in sids.codes.tolist()}) == sids.n_items
    assert int(sids.tokens.max()) < sids.vocab_size and int(sids.tokens.min()) >= OFFSET


def test_collision_digit_is_rank_in_id_order():
    codes3 = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0], [1, 1, 1]])
    s = SemanticIDs.from_codes(codes3, n_in_sample=3, codebook_size=4)
    assert s.codes[:, 3].tolist() == [0, 0, 1, 2, 1]
    assert s.prefix_len.tolist() == [4, 4, 4, 3, 3]


def test_prefix_len_rule():
    codes3 = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 2], [0, 2, 2], [1, 2, 2]])
    s = SemanticIDs.from_codes(codes3, n_in_sample=2, codebook_size=4)
    assert s.prefix_len.tolist() == [4, 4, 3, 2, 1, 0]


def test_add_items_keeps_old_ids(sids):
    before_codes, before_tok = sids.codes.clone(), sids.tokens.clone()
    new = random_codes(15, 5, seed=1)
    ids = sids.add_items(new)
    assert ids.tolist() == list(range(60, 75))
    assert torch.equal(sids.codes[:60], before_codes) and torch.equal(sids.tokens[:60], before_tok)
    assert len({tuple(r) for r in sids.codes.tolist()}) == 75
    # same result as building everything at once
    full = SemanticIDs.from_codes(np.concatenate([random_codes(60, 5), new]), 40, 5, on_overflow="grow")
    assert torch.equal(full.codes, sids.codes)
    assert torch.equal(full.prefix_len, sids.prefix_len)
    assert (sids.prefix_len[60:] <= 3).all()


def test_overflow_error_and_grow():
    codes3 = np.zeros((7, 3), dtype=np.int64)
    with pytest.raises(SIDOverflowError, match="on_overflow='grow'"):
        SemanticIDs.from_codes(codes3, 7, codebook_size=4)
    s = SemanticIDs.from_codes(codes3, 7, codebook_size=4, on_overflow="grow")
    assert s.collision_size == 7 and s.vocab_size == 3 + 12 + 7
    assert int(s.tokens.max()) == s.vocab_size - 1
    # adding to a full prefix: error by default, grow on request; never silently beyond the vocab
    e = SemanticIDs.from_codes(np.zeros((4, 3), dtype=np.int64), 4, codebook_size=4)
    with pytest.raises(SIDOverflowError):
        e.add_items(np.zeros((1, 3), dtype=np.int64))
    assert e.n_items == 4  # unchanged after the failed add
    e.add_items(np.zeros((2, 3), dtype=np.int64), on_overflow="grow")
    assert e.collision_size == 6 and int(e.tokens.max()) < e.vocab_size
    with pytest.raises(ValueError):
        SemanticIDs.from_codes(np.array([[0, 0, 4]]), 1, codebook_size=4)


def brute_allowed(sids, prefix, in_only=False):
    table = sids.tokens[: sids.n_in_sample] if in_only else sids.tokens
    L = len(prefix)
    out = set()
    for row in table.tolist():
        if row[:L] == list(prefix):
            out.add(row[L] if L < 4 else EOS)
    return out


def test_allowed_next_matches_brute_force(sids):
    g = np.random.default_rng(3)
    tok = sids.tokens
    for L in range(5):
        # real prefixes, random (often invalid) prefixes, and out-of-range tokens
        real = tok[g.integers(0, sids.n_items, 20), :L]
        rand = torch.from_numpy(np.stack([g.integers(lo, hi, 20) for lo, hi in
                                          (sids.digit_range(d) for d in range(L))], 1)
                                if L else np.zeros((20, 0), dtype=np.int64))
        junk = torch.from_numpy(g.integers(0, sids.vocab_size, (10, L)))
        prefs = torch.cat([real, rand.long(), junk])
        for in_only in (False, True):
            got = sids.allowed_next(prefs, in_sample_only=in_only)
            assert got.shape == (len(prefs), sids.vocab_size)
            for r, p in enumerate(prefs.tolist()):
                assert set(torch.nonzero(got[r]).flatten().tolist()) == brute_allowed(sids, p, in_only), (L, p)


def test_lookup_matches_brute_force(sids):
    assert torch.equal(sids.lookup(sids.tokens), torch.arange(sids.n_items))
    inn = sids.lookup(sids.tokens, in_sample_only=True)
    assert torch.equal(inn, torch.where(sids.in_sample_mask, torch.arange(sids.n_items), -1))
    g = np.random.default_rng(4)
    q = torch.from_numpy(np.stack([g.integers(*sids.digit_range(d), 200) for d in range(4)], 1))
    q = torch.cat([q, torch.tensor([[0, 0, 0, 0], [1, 2, 3, 4]])])
    table = {tuple(r): i for i, r in enumerate(sids.tokens.tolist())}
    assert sids.lookup(q).tolist() == [table.get(tuple(r), -1) for r in q.tolist()]


def test_prefix_match_mask_is_per_user(sids):
    g = np.random.default_rng(5)
    B, P = 6, 4
    for L in range(5):
        prefs = sids.tokens[torch.from_numpy(g.integers(0, sids.n_items, (B, P))), :L]
        prefs[0, 0] = 0  # an invalid token in a valid slot must match nothing
        valid = torch.from_numpy(g.random((B, P)) < 0.7)
        valid[1] = False
        m = sids.prefix_match_mask(prefs, valid)
        assert m.shape == (B, sids.n_items)
        for b in range(B):
            ps = {tuple(prefs[b, p].tolist()) for p in range(P) if valid[b, p]}
            want = [any(tuple(r[:L]) == p for p in ps) for r in sids.tokens.tolist()]
            assert m[b].tolist() == want, (L, b)
        m_in = sids.prefix_match_mask(prefs, valid, in_sample_only=True)
        assert torch.equal(m_in, m & sids.in_sample_mask)
    # default valid = all
    assert sids.prefix_match_mask(sids.tokens[None, :3, :2]).sum() >= 3


def test_prefix_items_lists_exactly_the_masked_items(sids):
    """The sparse twin of prefix_match_mask: per row the same items, once each, whatever the prefixes."""
    g = np.random.default_rng(6)
    B, P = 6, 5
    for L in (1, 2, 3):
        prefs = sids.tokens[torch.from_numpy(g.integers(0, sids.n_items, (B, P))), :L]
        prefs[0, 0] = 0  # an invalid token
        prefs[2, 1] = prefs[2, 0]  # a prefix given twice
        valid = torch.from_numpy(g.random((B, P)) < 0.8)
        valid[1] = False
        for in_only in (False, True):
            got = sids.prefix_items(prefs, valid, in_sample_only=in_only)
            mask = sids.prefix_match_mask(prefs, valid, in_sample_only=in_only)
            assert got.shape[0] == B
            for b in range(B):
                ids = [i for i in got[b].tolist() if i >= 0]
                assert len(ids) == len(set(ids)), (L, b)
                assert sorted(ids) == torch.nonzero(mask[b]).flatten().tolist(), (L, b, in_only)
    with pytest.raises(ValueError, match="1..3"):
        sids.prefix_items(sids.tokens[None, :2, :0])


def test_save_load_roundtrip(sids, tmp_path):
    sids.add_items(random_codes(5, 5, seed=9))
    sids.save(tmp_path / "s.npz")
    s2 = SemanticIDs.load(tmp_path / "s.npz")
    assert torch.equal(s2.codes, sids.codes) and torch.equal(s2.tokens, sids.tokens)
    assert torch.equal(s2.prefix_len, sids.prefix_len)
    assert (s2.n_in_sample, s2.C, s2.collision_size, s2.on_overflow) == (40, 5, sids.collision_size, "grow")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert z["codes"].dtype == np.int64


def test_to_device_keeps_working(sids):
    s = sids.to("cpu")
    assert s is sids and s.device.type == "cpu"
    if torch.cuda.is_available():
        s.to("cuda")
        assert s.allowed_next(s.tokens[:4, :2]).is_cuda
        assert torch.equal(s.lookup(s.tokens).cpu(), torch.arange(s.n_items))


def test_empty_inputs(sids):
    assert sids.prefix_match_mask(torch.zeros(2, 0, 2, dtype=torch.long)).sum() == 0
    assert sids.allowed_next(torch.zeros(0, 2, dtype=torch.long)).shape == (0, sids.vocab_size)
    assert sids.lookup(torch.zeros(0, 4, dtype=torch.long)).shape == (0,)
    assert sids.add_items(np.zeros((0, 3), dtype=np.int64)).numel() == 0
