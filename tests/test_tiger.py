"""TIGER model: tokenisation, equality with Hugging Face's T5 forward, shared-encoder decoding, KV-cache steps."""

import pytest
import torch

from specgr.data.tokenize import BOS, EOS, PAD, history_tokens, target_labels, tokenize_rows
from specgr.models.tiger import RECOMPILE_LIMIT, TIGER, EncoderState, TigerConfig, tiger_preset
from specgr.sid.semantic_ids import SemanticIDs




def random_sids(n=30, n_in=22, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SemanticIDs.from_codes(torch.randint(0, C, (n, 3), generator=g), n_in, C, on_overflow="grow")


def tiny_model(vocab, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = TigerConfig(**{**tiger_preset("tiny").to_dict(), **kw})
    return TIGER(cfg, vocab).eval()


def random_batch(B=4, T=14, V=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, T), generator=g)
    lens = torch.randint(3, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None] < lens[:, None]).long()
    return ids * mask, mask


def test_presets_param_counts():
    # computed parameter counts of the paper's TIGER configs (docs/METHOD.md §3)
    with torch.device("meta"):  # shapes only, no init cost
        assert TIGER(tiger_preset("games"), 579).n_params == 1_873_728
        assert TIGER(tiger_preset("amazon2023-phones"), 1155).n_params == 13_260_800
    with pytest.raises(KeyError):
        tiger_preset("nope")


def test_history_tokens_round_trip():
    sids = random_sids()
    hist = torch.tensor([[3, 7, 1, -1, -1], [0, -1, -1, -1, -1], [5, 6, 7, 8, 9]])
    hl = (hist >= 0).sum(1)
    ids, mask = history_tokens(hist, hl, sids.tokens)
    assert ids.shape == (3, 22) and mask.shape == (3, 22)
    assert torch.equal(history_tokens(hist, sids)[0], ids)  # ARCHITECTURE.md call form
    for b in range(3):
        n = int(hl[b])
        row = ids[b]
        assert row[0] == BOS and row[1 + 4 * n] == EOS and (row[2 + 4 * n:] == PAD).all()
        assert int(mask[b].sum()) == 2 + 4 * n and torch.equal(mask[b].bool(), row != PAD)
        back = sids.lookup(row[1:1 + 4 * n].view(n, 4))
        assert torch.equal(back, hist[b, :n])
    lab = target_labels(torch.tensor([4, 0]), sids)
    assert torch.equal(lab[:, :4], sids.tokens[[4, 0]]) and (lab[:, 4] == EOS).all()


def test_tokenize_rows_compact(tiny_dataset):
    rows = tiny_dataset.rows("train")
    codes3 = torch.randint(0, 6, (tiny_dataset.n_items, 3), generator=torch.Generator().manual_seed(0))
    sids = SemanticIDs.from_codes(codes3, tiny_dataset.n_in_sample, 6, on_overflow="grow")
    t = tokenize_rows(rows, sids)
    assert t["input_ids"].dtype == torch.int16 and t["input_ids"].shape == (len(rows), 2 + 4 * rows.history.shape[1])
    ids, _ = history_tokens(rows.history, rows.hist_len, sids.tokens)
    assert torch.equal(t["input_ids"].long(), ids)
    assert torch.equal(t["labels"].long()[:, :4], sids.tokens[torch.as_tensor(rows.target)])


@pytest.mark.parametrize("ff", ["relu", "gated-gelu"])
def test_matches_hf_t5(ff):
    V = 30
    m = tiny_model(V, feed_forward=ff)
    ids, mask = random_batch(V=V)
    labels = torch.randint(3, V, (ids.shape[0], 5))
    with torch.no_grad():
        ref = m.t5(input_ids=ids, attention_mask=mask, labels=labels)
        enc = m.encode(ids, mask)
        assert torch.allclose(enc, ref.encoder_last_hidden_state, atol=1e-5)
        assert torch.allclose(m(ids, mask, labels), ref.loss, atol=1e-5)
        dec_in = m.t5._shift_right(labels)
        lp = m.decoder_logprobs(enc, mask, dec_in[:, None])[:, 0]
        assert torch.allclose(lp, torch.log_softmax(ref.logits, -1), atol=1e-4)


def test_decoder_logprobs_shared_encoder_equals_per_row():
    """R candidates per user decoded against one copy of its encoder states == each candidate decoded alone."""
    V = 30
    m = tiny_model(V)
    ids, mask = random_batch(B=3, V=V)
    g = torch.Generator().manual_seed(3)
    dec = torch.randint(3, V, (3, 5, 4), generator=g)
    dec[..., 0] = 0
    with torch.no_grad():
        enc = m.encode(ids, mask)
        lp = m.decoder_logprobs(enc, mask, dec)
        assert lp.shape == (3, 5, 4, V)
        for b in range(3):
            for r in range(5):
                one = m.decoder_logprobs(enc[b:b + 1], mask[b:b + 1], dec[b:b + 1, r:r + 1])
                assert torch.allclose(lp[b, r], one[0, 0], atol=1e-5)
        # a precomputed EncoderState gives the same numbers; index() selects users
        st = m.encoder_state(enc, mask)
        assert isinstance(st, EncoderState)
        assert torch.allclose(m.decoder_logprobs(st, None, dec), lp, atol=1e-6)
        sub = st.index(torch.tensor([2, 0]))
        assert torch.allclose(m.decoder_logprobs(sub, None, dec[[2, 0]]), lp[[2, 0]], atol=1e-6)
        tok = torch.randint(3, V, (3, 5, 4), generator=g)
        tl = m.decoder_token_logprobs(enc, mask, dec, tok)
        assert torch.allclose(tl, lp.gather(-1, tok[..., None])[..., 0], atol=1e-5)


def test_decode_step_kv_cache_matches_full_pass():
    V = 30
    m = tiny_model(V)
    ids, mask = random_batch(B=2, V=V)
    seq = torch.randint(3, V, (2, 3, 4))
    seq[..., 0] = 0
    with torch.no_grad():
        st = m.encoder_state(m.encode(ids, mask), mask)
        full = m.decoder_logprobs(st, None, seq)
        past = None
        for t in range(4):
            lp, past = m.decode_step(st, seq[..., t], past)
            assert torch.allclose(lp, full[:, :, t], atol=1e-5)


def test_training_step_reduces_loss():
    V = 30
    m = tiny_model(V, dropout=0.1).train()
    ids, mask = random_batch(B=8, V=V)
    labels = torch.randint(3, V, (8, 5))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = m(ids, mask, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first
    # tied embeddings stay tied; the relative bias receives gradients through the SDPA mask
    assert m.t5.lm_head.weight is m.t5.shared.weight
    assert m.t5.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.grad is not None


@pytest.mark.gpu
def test_bf16_training_and_beam_on_gpu():
    """bf16 autocast training steps (SDPA with a learnable bias mask) and fp32-vs-bf16 beam agreement on CUDA."""
    from specgr.models.beam import beam_search

    dev = torch.device("cuda")
    sids = random_sids(n=500, n_in=400, C=12, seed=2).to(dev)
    torch.manual_seed(0)
    m = TIGER(tiger_preset("games"), sids.vocab_size).to(dev).train()
    g = torch.Generator().manual_seed(0)
    hist = torch.randint(0, 500, (256, 20), generator=g).to(dev)
    ids, mask = history_tokens(hist, sids)
    labels = target_labels(torch.randint(0, 400, (256,), generator=g).to(dev), sids)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
    losses = []
    for _ in range(20):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(ids, mask, labels)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    m.eval()
    with torch.no_grad():
        ref, _, _ = beam_search(m, ids[:32], mask[:32], sids, width=50)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got, _, _ = beam_search(m, ids[:32], mask[:32], sids, width=50)
    top10 = [len(set(a[:10].tolist()) & set(b[:10].tolist())) for a, b in zip(ref, got)]
    assert sum(top10) / len(top10) >= 8  # bf16 may swap near-ties only


def test_token_logprobs_chunked_and_with_cache(monkeypatch):
    """decoder_token_logprobs == log_softmax gathered, whatever the logits chunk; with a cache == the full pass."""
    import specgr.models.tiger as tiger_mod

    V = 30
    m = tiny_model(V)
    ids, mask = random_batch(B=3, V=V)
    g = torch.Generator().manual_seed(4)
    tok = torch.randint(3, V, (3, 5, 4), generator=g)
    dec = torch.cat([torch.zeros(3, 5, 1, dtype=torch.long), tok[..., :3]], -1)
    with torch.no_grad():
        st = m.encoder_state(m.encode(ids, mask), mask)
        full = m.decoder_logprobs(st, None, dec).gather(-1, tok[..., None])[..., 0]
        monkeypatch.setitem(tiger_mod.TOKEN_LOGPROB_CHUNK, "cpu", 7)  # 60 positions: 9 chunks, the last one short
        assert torch.allclose(m.decoder_token_logprobs(st, None, dec, tok), full, atol=1e-5)
        for Lp in (1, 2, 3):  # a cache of the first Lp inputs, then the rest decoded on top of it
            _, past = m._decode(st, dec[..., :Lp])
            got = m.decoder_token_logprobs(st, None, dec[..., Lp:], tok[..., Lp:], past=past)
            assert torch.allclose(got, full[..., Lp:], atol=1e-5)


@pytest.mark.parametrize("Lk", [1, 4, 16, 17])
def test_small_key_attention_equals_sdpa(Lk):
    """Attention over <= SMALL_KEYS keys runs as two matmuls; it must equal the fused kernel (and Lk = 17 uses it)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    m = TIGER(TigerConfig(d_model=32, d_ff=64, n_layers=1, n_heads=2, d_kv=16, dropout=0.0), vocab_size=40).eval()
    q = torch.randn(3, 2, 5, 16)
    k, v = torch.randn(3, 2, 17, 16), torch.randn(3, 2, 17, 16)
    mask = torch.randn(3, 1, 5, Lk)
    if Lk > 1:
        mask[0, :, :, 0] = float("-inf")  # a masked key, as padding and the causal mask give
    got = m._sdpa(q, k[:, :, :Lk], v[:, :, :Lk], mask)
    want = F.scaled_dot_product_attention(q, k[:, :, :Lk], v[:, :, :Lk], attn_mask=mask, scale=1.0)
    torch.testing.assert_close(got, want.transpose(1, 2).reshape(3, 5, 32), rtol=1e-5, atol=1e-5)


def test_inference_before_training_leaves_the_model_trainable():
    """The relative-position buckets are cached per shape: a cache entry made under torch.inference_mode (as every
    recommender runs) must not reach a later pass that autograd records ("Inference tensors cannot be saved for
    backward")."""
    m = tiny_model(30)
    ids, mask = random_batch()[:2]
    with torch.inference_mode():
        m.encode(ids, mask)
    m.encode(ids, mask).sum().backward()  # the same shape, now with gradients
    assert m.t5.shared.weight.grad is not None


def test_cuda_kernel_switches_leave_cpu_results_unchanged():
    """TIGER.relu_epilogue and cudnn_cross_attention pick CUDA kernels only: on the CPU, in fp32 and under bf16
    autocast, the token log-probs are bit-identical with them on (the attention over T = 30 > SMALL_KEYS states takes
    the fused branch that cudnn_cross_attention changes on CUDA)."""
    m = tiny_model(30)
    ids, mask = random_batch(T=30)
    g = torch.Generator().manual_seed(2)
    tok = torch.randint(3, 30, (4, 5, 4), generator=g)
    dec_in = torch.cat([torch.zeros_like(tok[..., :1]), tok[..., :3]], -1)

    def run(on: bool, autocast: bool):
        m.relu_epilogue = m.cudnn_cross_attention = on
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            state = m.encoder_state(m.encode(ids, mask), mask)
            return m.decoder_token_logprobs(state, None, dec_in, tok)

    assert m.relu_epilogue and not m.cudnn_cross_attention  # the defaults (release 25)
    for autocast in (False, True):
        assert torch.equal(run(True, autocast), run(False, autocast))


def test_compiling_raises_the_recompile_limit_never_lowers_it(monkeypatch):
    """Dynamo runs a function's structures past its recompile limit (8 by default) eagerly, without a word, and the
    decoder has more than 8: compiling raises the limit for the process, and never lowers one set higher."""
    m = tiny_model(30)
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)
    m.compile_decoder()  # torch.compile is lazy: nothing compiles here
    assert torch._dynamo.config.recompile_limit == RECOMPILE_LIMIT > 8
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1000)
    m.compile_encoder()
    assert torch._dynamo.config.recompile_limit == 1000


def gpu_decoding_case(sid_seed: int, seed: int):
    """A random eval-mode games-size TIGER on CUDA, 64 users' histories and 7 candidates each: model, ids (64, T),
    mask (64, T), tok (64, 7, 4) candidate SID tokens, dec_in (64, 7, 4) their teacher-forced decoder inputs."""
    dev = torch.device("cuda")
    sids = random_sids(n=500, n_in=400, C=12, seed=sid_seed).to(dev)
    torch.manual_seed(0)
    m = TIGER(tiger_preset("games"), sids.vocab_size).to(dev).eval()
    g = torch.Generator().manual_seed(seed)
    hist = torch.randint(0, 500, (64, 20), generator=g).to(dev)
    ids, mask = history_tokens(hist, sids)
    tok = sids.tokens[torch.randint(0, 500, (64, 7), generator=g).to(dev)]
    dec_in = torch.cat([torch.zeros_like(tok[..., :1]), tok[..., :3]], -1)
    return m, ids, mask, tok, dec_in


def assert_compiled_matches_eager(run, compile_it) -> list:
    """run() -> tensors, in fp32 and under bf16 autocast, before and after compile_it(): the same within 1e-4 in fp32
    and within bf16 rounding under autocast. Returns the compiled fp32 outputs."""
    def both():
        fp32 = run()
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            return fp32, run()

    eager, eager_bf16 = both()
    compile_it()
    got, got_bf16 = both()
    for a, b in zip(eager, got):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    for a, b in zip(eager_bf16, got_bf16):
        torch.testing.assert_close(b.float(), a.float(), atol=0.1, rtol=0.05)
    return got


@pytest.mark.gpu
def test_compiled_encoder_matches_eager_on_gpu():
    """compile_encoder (torch.compile of the encoder pass): the same encoder states as eager encoding, in fp32 and
    under bf16 autocast (within bf16 rounding), on two batch shapes (dynamic shapes)."""
    m, ids, mask, _, _ = gpu_decoding_case(sid_seed=3, seed=1)

    def run():
        with torch.no_grad():
            return [m.encode(ids[:n], mask[:n]) for n in (ids.shape[0], 2)]

    assert_compiled_matches_eager(run, m.compile_encoder)
    assert m._compiled_encode is not None


@pytest.mark.gpu
def test_compiled_decoder_matches_eager_on_gpu():
    """compile_decoder (torch.compile, its own small-key attention, the compiled token log-probs): the same token
    log-probs as eager decoding, with and without a cache, in fp32 and under bf16 autocast (within bf16 rounding)."""
    m, ids, mask, tok, dec_in = gpu_decoding_case(sid_seed=3, seed=1)

    def run():
        with torch.no_grad():
            state = m.encoder_state(m.encode(ids, mask), mask)
            full = m.decoder_token_logprobs(state, None, dec_in, tok)
            _, past = m._decode(state, dec_in[..., :2])  # cache of 2 positions, then decode the last 2
            tail = m.decoder_token_logprobs(state, None, dec_in[..., 2:], tok[..., 2:],
                                            past=[(k, v) for k, v in past])
        return full, tail

    got = assert_compiled_matches_eager(run, m.compile_decoder)
    torch.testing.assert_close(got[1], got[0][..., 2:], atol=1e-4, rtol=1e-4)  # the cache path = teacher forcing


@pytest.mark.gpu
def test_relu_epilogue_matches_a_separate_relu_on_gpu():
    """TIGER.relu_epilogue (on by default: the feed-forward's ReLU in its first GEMM's epilogue): only for inference
    under CUDA autocast, and there the same feed-forward output and token log-probs as a separate ReLU, up to the GEMM
    kernel's bf16 rounding, eager and compiled."""
    m, ids, mask, tok, dec_in = gpu_decoding_case(sid_seed=5, seed=3)
    ff = m.t5.decoder.block[0].layer[2].DenseReluDense
    x = torch.randn(3, 40, m.cfg.d_model, device="cuda")

    def run(on: bool):
        m.relu_epilogue = on
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            state = m.encoder_state(m.encode(ids, mask), mask)
            return m._ff(ff, x).float(), m.decoder_token_logprobs(state, None, dec_in, tok)

    assert m.relu_epilogue  # on by default
    assert not m._relu_epilogue(ff, x)  # fp32: the plain path
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert m._relu_epilogue(ff, x)
        assert not m._relu_epilogue(ff, x.cpu())
        m.train()
        assert not m._relu_epilogue(ff, x)  # training keeps autograd's plain ops
        m.eval()
    calls, lin_relu = [], m._lin_relu
    m._lin_relu = lambda lin, h: calls.append(h.shape) or lin_relu(lin, h)  # count the fused path's uses
    separate, fused = run(False), run(True)
    del m._lin_relu
    assert len(calls) == 1 + 2 * m.cfg.n_layers  # the one feed-forward, then each encoder and decoder layer's
    for a, b in zip(separate, fused):
        torch.testing.assert_close(b, a, atol=0.05, rtol=0.02)
    m.compile_decoder()
    for a, b in zip(fused, run(True)):
        torch.testing.assert_close(b, a, atol=0.05, rtol=0.02)


@pytest.mark.gpu
def test_cudnn_cross_attention_matches_the_efficient_kernel_on_gpu():
    """TIGER.cudnn_cross_attention (opt-in): decoding's cross-attention runs cuDNN's kernel at inference on CUDA, with
    the same token log-probs as the memory-efficient kernel up to bf16 rounding, eager and compiled."""
    m, ids, mask, tok, dec_in = gpu_decoding_case(sid_seed=6, seed=4)

    def run(on: bool):
        m.cudnn_cross_attention = on
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            state = m.encoder_state(m.encode(ids, mask), mask)
            return m.decoder_token_logprobs(state, None, dec_in, tok)

    efficient = run(False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        cudnn = run(True)
    ops = {e.name for e in prof.events()}
    assert "aten::_scaled_dot_product_cudnn_attention" in ops
    torch.testing.assert_close(cudnn, efficient, atol=0.05, rtol=0.02)
    m.compile_decoder()
    torch.testing.assert_close(run(True), cudnn, atol=0.05, rtol=0.02)


@pytest.mark.gpu
def test_cudnn_cross_attention_gives_one_query_the_output_it_has_in_a_block_on_gpu():
    """cuDNN's attention rounds a lone query differently from the same query in a longer block at 78-82 keys (release
    26, scripts/gpu/53_attention_query_sweep.py); the one-user reference and the batched loop read a draft's first
    digit from calls of either size, so TIGER gives a lone query a second copy: bit-equal outputs."""
    m, *_ = gpu_decoding_case(sid_seed=6, seed=4)
    m.cudnn_cross_attention = True
    g = torch.Generator(device="cuda").manual_seed(0)
    h, dk = m.cfg.n_heads, m.cfg.d_kv
    q = torch.randn(1, 150, h, dk, device="cuda", generator=g, dtype=torch.bfloat16).transpose(1, 2)
    k, v = (torch.randn(1, 82, h, dk, device="cuda", generator=g, dtype=torch.bfloat16).transpose(1, 2)
            for _ in range(2))
    mask = torch.zeros(1, 1, 1, 82, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        block, alone = m._sdpa(q, k, v, mask, cross=True), m._sdpa(q[:, :, :1], k, v, mask, cross=True)
    assert torch.equal(alone, block[:, :1])


@pytest.mark.gpu
def test_fp32_linear_outputs_on_gpu():
    """TIGER.fp32_linear under bf16 autocast: the same maths as fp32 (within bf16 input rounding), eager and compiled
    alike, and a user's log-probs barely depend on how many users share the batch (no bf16 rounding of outputs)."""
    m, ids, mask, tok, dec_in = gpu_decoding_case(sid_seed=4, seed=2)
    # the tolerances below hold for the memory-efficient cross-attention; under cuDNN's (release 27, a trial default)
    # compiled and eager decoding put 1 of these 1,792 log-probs 0.004 apart
    m.cudnn_cross_attention = False

    def run(rows):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            state = m.encoder_state(m.encode(ids[rows], mask[rows]), mask[rows])
            return m.decoder_token_logprobs(state, None, dec_in[rows], tok[rows]).float()

    with torch.no_grad():
        state = m.encoder_state(m.encode(ids, mask), mask)
        fp32 = m.decoder_token_logprobs(state, None, dec_in, tok)
    m.fp32_linear = True
    whole, one = run(slice(None)), run(slice(0, 1))
    torch.testing.assert_close(whole, fp32, atol=0.1, rtol=0.02)  # bf16-rounded inputs only
    assert (whole[:1] - one).abs().max().item() < 1e-3
    m.compile_decoder()
    torch.testing.assert_close(run(slice(None)), whole, atol=1e-3, rtol=1e-3)
