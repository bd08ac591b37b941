"""TIGER: a T5 encoder-decoder over semantic-ID tokens, as SpecGR uses it (docs/METHOD.md §3).

Parameters live in a Hugging Face `T5ForConditionalGeneration` (the paper's model: relative position buckets,
RMS LayerNorm, no biases, ReLU FFN, tied input/output embeddings, decoder start = PAD 0), so the state dict is the
HF one and `model.t5` can be used with any HF tooling. The forward passes, however, are our own compact
re-implementation of T5's maths on those parameters (tests/test_tiger.py checks equality with HF's forward):

  * every attention goes through `F.scaled_dot_product_attention` (T5 does not scale q·k: scale=1.0; the relative
    position bias and the padding mask are folded into one additive mask);
  * `decoder_logprobs` decodes R candidate sequences per user against that user's encoder states WITHOUT expanding
    or re-encoding them: the cross-attention of all R*L decoder positions of one user is a single attention call
    over its T encoder states (cross-attention has no position bias in T5, so this is exact);
  * cross-attention keys/values are computed once per user (`encoder_state`) and reused by every decoder call of
    the SpecGR loop and every beam-search step;
  * `decode_step` decodes one new token per beam with a self-attention KV cache (beam search);
  * it does not depend on HF's internal forward code, which changes between transformers releases.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from specgr.sid.semantic_ids import BOS, EOS, PAD  # noqa: E402,F401  (the one token layout)
DECODER_START = PAD  # as in T5
# cuDNN's attention builds an execution plan per new input shape (milliseconds of host time each); decoding calls it
# with a new shape every round, so we keep to the flash / memory-efficient / math kernels (profile in RESULTS.md)
SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
# opt-in for decoding's cross-attention at inference on CUDA (`TIGER.cudnn_cross_attention`), in this priority order:
# faster in the verifier's large passes on an H100, where CUDA graphs replay it without the per-shape plan building
CUDNN_FIRST = [SDPBackend.CUDNN_ATTENTION, *SDPA_BACKENDS]
SMALL_KEYS = 16  # at most this many keys (and no dropout): attention as two plain matmuls (see TIGER._sdpa)
# decoder positions per logits chunk in `TIGER._token_logprobs`: on CPU chunks that stay in cache (2x faster than one
# chunk at V~1,100); on a GPU few, large chunks (few kernel launches; 32768 x V~1,100 fp32 = 144 MB)
TOKEN_LOGPROB_CHUNK = {"cpu": 2048, "cuda": 32768}
RECOMPILE_LIMIT = 64  # compiled structures per function and process (`TIGER.compile_decoder`)


def _allow_recompiles() -> None:
    """Raise Dynamo's per-function recompile limit to RECOMPILE_LIMIT (never lower it): a compiled decoder or encoder
    then stays compiled for every input structure the process meets."""
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)


@dataclass
class TigerConfig:
    d_model: int = 64
    d_ff: int = 1024
    n_layers: int = 4  # encoder layers = decoder layers
    n_heads: int = 4
    d_kv: int = 64  # per-head dim (T5: independent of d_model)
    dropout: float = 0.1
    feed_forward: str = "relu"  # T5 feed_forward_proj: "relu", "gelu", "gated-gelu", ...
    rel_buckets: int = 32  # T5 defaults
    rel_max_distance: int = 128
    # beyond the paper, off by default (0): > 0 adds each history item's frozen text embedding (this width), projected
    # to d_model, to the input embeddings of its SID tokens, as LIGER (Yang et al. 2024) feeds item text to its
    # encoder; an ID-only TIGER knows an item by its code alone (docs/METHOD.md §9)
    text_dim: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TigerConfig":
        from specgr.config import from_dict  # strict: unknown keys are an error, never silently dropped

        return from_dict(cls, d)


# the paper's per-dataset configs (docs/METHOD.md §3) + the TIGER paper's Beauty config + a tiny one for tests
PRESETS: dict[str, TigerConfig] = {
    "games": TigerConfig(d_model=64, d_ff=1024, n_layers=4, n_heads=4),
    "office": TigerConfig(d_model=128, d_ff=1024, n_layers=6, n_heads=6),
    "phones": TigerConfig(d_model=128, d_ff=2048, n_layers=8, n_heads=6),
    "tiger": TigerConfig(d_model=128, d_ff=1024, n_layers=4, n_heads=6),  # Rajput et al. 2023 (Beauty)
    "tiny": TigerConfig(d_model=32, d_ff=64, n_layers=2, n_heads=2, d_kv=16, dropout=0.0),
}
DATASET_PRESETS = {
    "amazon2018-game": "games", "amazon2023-games": "games", "amazon2023-office": "office",
    "amazon2023-phones": "phones", "amazon2014-beauty": "tiger",
}


def tiger_preset(name: str) -> TigerConfig:
    """A preset by name ("games", "office", "phones", "tiger", "tiny") or by dataset name ("amazon2018-game", ...)."""
    key = DATASET_PRESETS.get(name, name)
    if key not in PRESETS:
        raise KeyError(f"no TIGER preset {name!r}; have {sorted(PRESETS)} and datasets {sorted(DATASET_PRESETS)}")
    return TigerConfig(**asdict(PRESETS[key]))


def _rel_bucket(rel: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's relative position buckets (memory_pos - query_pos -> bucket), copied from Mesh TensorFlow / HF."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.clamp(rel, max=0)
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (torch.log(rel.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, rel, large)


def _sid_keys(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(..., 4) SID tokens -> (...,) int64, one key per token group (base vocab_size; < 2^63 for vocabularies
    below 2^15)."""
    t = tokens.long()
    return ((t[..., 0] * vocab_size + t[..., 1]) * vocab_size + t[..., 2]) * vocab_size + t[..., 3]


@dataclass
class EncoderState:
    """A batch of encoded users, ready for decoding: computed once, reused by every decoder call.

    cross_kv: per decoder layer (k, v), each (B, n_heads, T, d_kv); mask: (B, 1, 1, T) additive (0 / -inf).
    """

    cross_kv: list
    mask: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    def index(self, idx: torch.Tensor) -> "EncoderState":
        """Select users (idx (B',) long) -- e.g. the still-active users of a batched SpecGR loop."""
        return EncoderState([(k[idx], v[idx]) for k, v in self.cross_kv], self.mask[idx])


class TIGER(nn.Module):
    """T5 generative retrieval model. vocab_size = SemanticIDs.vocab_size (PAD=0, BOS=1, EOS=2, digit tokens)."""

    def __init__(self, cfg: TigerConfig, vocab_size: int):
        super().__init__()
        from transformers import T5Config, T5ForConditionalGeneration

        self.cfg, self.vocab_size = cfg, int(vocab_size)
        t5cfg = T5Config(vocab_size=self.vocab_size, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff,
                         num_layers=cfg.n_layers, num_decoder_layers=cfg.n_layers, num_heads=cfg.n_heads,
                         relative_attention_num_buckets=cfg.rel_buckets,
                         relative_attention_max_distance=cfg.rel_max_distance, dropout_rate=cfg.dropout,
                         feed_forward_proj=cfg.feed_forward, pad_token_id=PAD, eos_token_id=EOS,
                         decoder_start_token_id=DECODER_START, tie_word_embeddings=True, use_cache=False)
        self.t5 = T5ForConditionalGeneration(t5cfg)
        # one shared embedding for encoder input, decoder input and output (we read it as t5.shared); tie explicitly so
        # the state dict and optimizer never see separate copies, whatever the transformers version does by default
        self.t5.set_input_embeddings(self.t5.shared)
        self.t5.lm_head.weight = self.t5.shared.weight
        self._buckets: dict = {}
        self._compiled_decode = None  # compile_decoder()
        self._compiled_chunk_logprobs = None  # compile_decoder()
        self._compiled_encode = None  # compile_encoder()
        # inference under autocast only: linear layers take bf16 inputs but return fp32 (docs/RESULTS.md §4); `_lin`
        self.fp32_linear = False
        # two kernels for inference on CUDA under autocast, each faster on an H100 (docs/RESULTS.md §4, release 24:
        # +6% and +3.6% recs/s for SpecGR++, +6% and +3% for beam search). The feed-forward's ReLU in its first GEMM's
        # epilogue (`_lin_relu`) is on: alone it kept the batched loop's agreement with its one-user reference (0.887
        # against release 23's 0.891, release 25) ...
        self.relu_epilogue = True
        # ... decoding's cross-attention (R x L queries per user against its T encoder states) in cuDNN's fused kernel
        # before the memory-efficient one (`CUDNN_FIRST`) is opt-in. With `_sdpa`'s one-query fix its lists agree with
        # the one-user reference's as often (0.902 of 2,048 rows against 0.897, release 27), and it is 2-6% faster
        # in CUDA graphs, but 4-13% slower in the eager loop, which the CLI and the app run
        self.cudnn_cross_attention = False
        if cfg.text_dim > 0:
            self.text_proj = nn.Linear(cfg.text_dim, cfg.d_model, bias=False)
            # std 1 on a unit-norm text vector: each output has variance 1, the scale T5 initialises token embeddings to
            nn.init.normal_(self.text_proj.weight, std=1.0)
            # the lookup table (`set_item_text`): buffers, so a checkpoint carries the texts it was trained with; fp16,
            # the precision the embeddings travel in anyway (half the checkpoint), read as the weights' dtype
            self.register_buffer("text_keys", torch.zeros(0, dtype=torch.long))
            self.register_buffer("text_emb", torch.zeros(0, cfg.text_dim, dtype=torch.float16))

    # ------------------------------------------------------------------ small pieces
    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    @staticmethod
    def _norm(ln: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """T5LayerNorm (RMS norm, no mean, no bias) as one fused kernel instead of HF's five elementwise ops."""
        return F.rms_norm(x, (x.shape[-1],), ln.weight, ln.variance_epsilon)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.cfg.dropout, self.training) if self.cfg.dropout > 0 else x

    def _lin(self, lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """lin(x) (no bias), (..., d_in) -> (..., d_out); with `fp32_linear` at inference under autocast, the output
        is not rounded to bf16, whose rounding depends on the batch shape's GEMM kernel. Measured on an H100
        (docs/RESULTS.md §4): 2 more of 256 lists equal the one-user reference's, 19% slower compiled; off by
        default."""
        if not self.fp32_linear or self.training or not torch.is_autocast_enabled(x.device.type):
            return lin(x)
        dt = torch.get_autocast_dtype(x.device.type)
        with torch.autocast(x.device.type, enabled=False):  # bf16 x bf16 -> fp32 accumulation -> fp32 output
            y = torch.mm(x.reshape(-1, x.shape[-1]).to(dt), lin.weight.to(dt).t(), out_dtype=torch.float32)
        return y.view(*x.shape[:-1], y.shape[-1])

    def _heads(self, lin: nn.Linear, x: torch.Tensor, n: int, L: int) -> torch.Tensor:
        """(n, L, d) -> (n, h, L, d_kv)."""
        return self._lin(lin, x).view(n, L, self.cfg.n_heads, self.cfg.d_kv).transpose(1, 2)

    def _sdpa(self, q, k, v, mask, cross: bool = False) -> torch.Tensor:
        """(n, h, Lq, dk) attention -> (n, Lq, h*dk). scale=1: T5 does not scale q·k. `mask` is additive; pass it in
        q's dtype (`_compute_dtype`) so that no layer re-casts it. cross: the decoder's cross-attention, which runs
        cuDNN's kernel first at inference on CUDA (`cudnn_cross_attention`)."""
        p = self.cfg.dropout if self.training else 0.0
        if p == 0.0 and k.shape[2] <= SMALL_KEYS:
            # decoding attends over 1-4 keys per sequence; the fused kernels tile that as 64x64 blocks of mostly
            # padding (52% of the GPU time of a SpecGR batch, docs/RESULTS.md §4), so this is the same maths on
            # exactly the keys there are, all in fp32 (under bf16 autocast, bf16 scores of |q.k| ~ 10 round by ~0.06
            # and reorder near-tied candidates): compiled decoding (`compile_decoder`) sums broadcast products, which
            # Inductor fuses into reductions (the batched GEMMs of (Lq x d_kv) @ (d_kv x Lk) tiles took 25% of a
            # SpecGR batch's GPU time); eager decoding runs two fp32 batched matmuls
            if torch.compiler.is_compiling():
                s = (q.float()[..., :, None, :] * k.float()[..., None, :, :]).sum(-1) + mask.float()
                o = (torch.softmax(s, -1)[..., None] * v.float()[..., None, :, :]).sum(-2)
            else:
                with torch.autocast(q.device.type, enabled=False):
                    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) + mask.float()
                    o = torch.matmul(torch.softmax(s, -1), v.float())
            o = o.to(v.dtype)
        elif cross and self.cudnn_cross_attention and not self.training and q.device.type == "cuda":
            # a lone query (one per user: the beam's first step, from the empty prefix) takes another cuDNN path, whose
            # output differs from the same query's in any longer block at 78-82 keys (histories of 19-20 items, 20
            # filling the window; not at 66 or 41). The batched loop reads a draft's first digit from that step and the
            # one-user reference from its block of drafts, so their lists differed on those rows. A second copy of the
            # query keeps every call on one path (release 26: scripts/gpu/53_attention_query_sweep.py,
            # 54_cudnn_fallback.py)
            lq = q.shape[2]
            qq = torch.cat([q, q], 2) if lq == 1 else q
            with sdpa_kernel(CUDNN_FIRST, set_priority=True):
                o = F.scaled_dot_product_attention(qq, k, v, attn_mask=mask.to(q.dtype), scale=1.0)[:, :, :lq]
        else:
            with sdpa_kernel(SDPA_BACKENDS):
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype), dropout_p=p, scale=1.0)
        n, h, L, dk = o.shape
        return o.transpose(1, 2).reshape(n, L, h * dk)

    def _ff(self, ff: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """T5DenseActDense / T5DenseGatedActDense on already-normalised x (..., d) -> (..., d)."""
        if hasattr(ff, "wi_0"):  # gated
            h = ff.act(self._lin(ff.wi_0, x)) * self._lin(ff.wi_1, x)
        elif self._relu_epilogue(ff, x):
            h = self._lin_relu(ff.wi, x)
        else:
            h = ff.act(self._lin(ff.wi, x))
        return self._lin(ff.wo, self._drop(h))

    def _relu_epilogue(self, ff: nn.Module, x: torch.Tensor) -> bool:
        """Whether `_ff` runs its first layer and ReLU as one GEMM (`_lin_relu`): inference on CUDA under autocast,
        a ReLU feed-forward, `relu_epilogue` on (the default), and not `fp32_linear` (whose fp32 outputs it would
        round)."""
        return (self.relu_epilogue and not self.training and not self.fp32_linear and x.device.type == "cuda"
                and torch.is_autocast_enabled("cuda") and isinstance(ff.act, nn.ReLU))

    def _lin_relu(self, lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """relu(lin(x)) (no bias), (..., d_in) -> (..., d_out) in the autocast dtype, as one cuBLASLt GEMM whose
        epilogue applies the ReLU (`torch._addmm_activation`, with a zero bias, which the epilogue needs). Compiled
        decoding otherwise writes the (n, d_ff) product, then reads and writes it again in a separate ReLU kernel: the
        widest tensor of a decoder pass. The ReLU commutes with the rounding to bf16, so only the GEMM's own
        kernel choice can change a bit, which the batched loop's agreement with its reference shows (docs/RESULTS.md
        §4, releases 24-25)."""
        dt = torch.get_autocast_dtype(x.device.type)
        with torch.autocast(x.device.type, enabled=False):
            w = lin.weight.to(dt)
            h = torch._addmm_activation(w.new_zeros(w.shape[0]), x.reshape(-1, x.shape[-1]).to(dt), w.t())
        return h.view(*x.shape[:-1], h.shape[-1])

    def _rel_bias(self, attn: nn.Module, Lq: int, Lk: int, bidirectional: bool, offset: int = 0) -> torch.Tensor:
        """(1, h, Lq, Lk) relative position bias of query positions offset..offset+Lq-1 against keys 0..Lk-1."""
        dev = attn.relative_attention_bias.weight.device
        # compiled code keeps no Python cache. A tensor made under inference_mode cannot enter a pass that autograd
        # records (the embedding saves its indices): one entry per mode, so inference before training stays harmless
        key = None if torch.compiler.is_compiling() else \
            (Lq, Lk, offset, bidirectional, dev, torch.is_inference_mode_enabled())
        b = None if key is None else self._buckets.get(key)
        if b is None:
            rel = torch.arange(Lk, device=dev)[None, :] - (torch.arange(Lq, device=dev)[:, None] + offset)
            b = _rel_bucket(rel, bidirectional, self.cfg.rel_buckets, self.cfg.rel_max_distance)
            if key is not None:
                self._buckets[key] = b
        return attn.relative_attention_bias(b).permute(2, 0, 1)[None]

    def _compute_dtype(self) -> torch.dtype:
        """The dtype attention runs in: the autocast dtype when autocast is on for the weights' device, else theirs."""
        w = self.t5.shared.weight
        if torch.is_autocast_enabled(w.device.type):
            return torch.get_autocast_dtype(w.device.type)
        return w.dtype

    @staticmethod
    def _pad_mask(attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) 1/0 -> (B, 1, 1, T) additive float mask."""
        m = torch.zeros(attention_mask.shape, dtype=torch.float32, device=attention_mask.device)
        return m.masked_fill(attention_mask == 0, float("-inf"))[:, None, None, :]

    # ------------------------------------------------------------------ item text (TigerConfig.text_dim > 0)
    def set_item_text(self, sid_tokens: torch.Tensor, text_emb) -> "TIGER":
        """sid_tokens (N, 4) and text_emb (N, text_dim), row i = item i: the table `encode` looks history items up in
        (kept in fp16).

        Items are found by their SID tokens, so every caller's token layout (`specgr.data.tokenize.history_tokens`)
        works unchanged. Call it again after adding items to the catalog; an item missing from it gets no text term.
        """
        if text_emb is None:
            raise ValueError("tiger.text_dim > 0 needs the catalog's text embeddings. Fix: pass item_text (the "
                             "pipeline passes ProcessedDataset.embeddings(text_model)), or set tiger.text_dim to 0.")
        if self.cfg.text_dim <= 0:
            raise ValueError("this TIGER has no text input (text_dim = 0). Fix: set tiger.text_dim to the text "
                             "embedding width, or do not call set_item_text.")
        tok = torch.as_tensor(sid_tokens).long().cpu()
        emb = torch.as_tensor(text_emb).float().cpu()
        if emb.ndim != 2 or emb.shape[1] != self.cfg.text_dim:
            raise ValueError(f"text embeddings of shape {tuple(emb.shape)} for tiger.text_dim = {self.cfg.text_dim}."
                             f" Fix: set tiger.text_dim to the text model's width ({emb.shape[-1]}).")
        if tok.ndim != 2 or tok.shape[1] != 4 or len(tok) != len(emb):
            raise ValueError(f"sid_tokens {tuple(tok.shape)} must be (N, 4) with one row per text embedding "
                             f"({len(emb)}). Fix: pass the SID table and embeddings of the same catalog.")
        keys = _sid_keys(tok, self.vocab_size)
        keys, order = keys.sort()
        if len(keys) > 1 and bool((keys[1:] == keys[:-1]).any()):
            raise ValueError("two items share a semantic ID. Fix: build SIDs with their collision digit.")
        dev = self.text_proj.weight.device
        self.text_keys, self.text_emb = keys.to(dev), emb[order].half().to(dev)
        return self

    def _item_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T = 2 + 4H) [BOS, 4 tokens per item, EOS, PAD...] -> (B, T, d_model): each item's projected
        text embedding at its 4 positions; 0 at BOS, EOS and PAD (their token groups match no item)."""
        if self.text_keys.numel() == 0:
            raise ValueError("this TIGER reads item texts (text_dim > 0) but has none. Fix: call "
                             "model.set_item_text(sid_tokens, text_embeddings) before encoding.")
        B, T = input_ids.shape
        if (T - 2) % 4:
            raise ValueError(f"encoder input of length {T}: expected 2 + 4 tokens per item "
                             "(specgr.data.tokenize.history_tokens).")
        keys = _sid_keys(input_ids[:, 1:T - 1].reshape(B, (T - 2) // 4, 4), self.vocab_size)  # (B, H)
        idx = torch.searchsorted(self.text_keys, keys).clamp(max=self.text_keys.numel() - 1)
        hit = (self.text_keys[idx] == keys).unsqueeze(-1)
        e = self.text_proj(self.text_emb[idx].to(self.text_proj.weight.dtype)) * hit  # (B, H, d)
        return F.pad(e.repeat_interleave(4, dim=1), (0, 0, 1, 1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the text table's size is the checkpoint's catalog size, unknown at construction: take it from the state dict
        if self.cfg.text_dim > 0:
            for name in ("text_keys", "text_emb"):
                if prefix + name in state_dict:
                    like = state_dict[prefix + name]
                    setattr(self, name, torch.empty_like(like, device=self.text_proj.weight.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ encoder
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T), attention_mask (B, T) -> enc (B, T, d_model); compiled after `compile_encoder()`."""
        if self._compiled_encode is None or self.training:
            return self._encode_eager(input_ids, attention_mask)
        return self._compiled_encode(input_ids.long(), attention_mask)

    def compile_encoder(self) -> "TIGER":
        """Run the encoder pass at inference through torch.compile from now on, with dynamic shapes. A batch of
        1,024 Games histories (82 tokens each) encodes in 5.0 ms instead of 8.8 on an H100, bf16 (docs/RESULTS.md §4,
        release 20; not profiled further). The pass is small (d_model 64) matmuls between elementwise kernels (RMS
        norms, residuals, ReLU, casts), which compilation can fuse. Encoding is once per user, for SpecGR and beam
        search alike. Returns self."""
        _allow_recompiles()
        self._compiled_encode = torch.compile(self._encode_eager, dynamic=True)
        return self

    def _encode_eager(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`encode`, not compiled."""
        input_ids = input_ids.long()
        B, T = input_ids.shape
        enc = self.t5.encoder
        x = self.t5.shared(input_ids)
        if self.cfg.text_dim > 0:
            x = x + self._item_text(input_ids)
        x = self._drop(x)
        # position bias (shared by all layers, from layer 0) + padding mask, folded into one additive mask
        mask = self._rel_bias(enc.block[0].layer[0].SelfAttention, T, T, True) + self._pad_mask(attention_mask)
        mask = mask.to(self._compute_dtype())  # once, not once per layer
        for blk in enc.block:
            sa, ff = blk.layer[0], blk.layer[1]
            h = self._norm(sa.layer_norm, x)
            a = sa.SelfAttention
            o = self._sdpa(self._heads(a.q, h, B, T), self._heads(a.k, h, B, T), self._heads(a.v, h, B, T), mask)
            x = x + self._drop(self._lin(a.o, o))
            x = x + self._drop(self._ff(ff.DenseReluDense, self._norm(ff.layer_norm, x)))
        return self._drop(self._norm(enc.final_layer_norm, x))

    def encoder_state(self, enc: torch.Tensor, enc_mask: torch.Tensor) -> EncoderState:
        """Per-layer cross-attention keys/values of the encoder output: (B, T, d) -> EncoderState."""
        B, T, _ = enc.shape
        kv, dt = [], self._compute_dtype()  # attention reads them in dt: cast once here, not in every decoder pass
        for blk in self.t5.decoder.block:
            ca = blk.layer[1].EncDecAttention
            kv.append((self._heads(ca.k, enc, B, T).to(dt), self._heads(ca.v, enc, B, T).to(dt)))
        return EncoderState(kv, self._pad_mask(enc_mask).to(self._compute_dtype()))

    def _state(self, enc, enc_mask) -> EncoderState:
        return enc if isinstance(enc, EncoderState) else self.encoder_state(enc, enc_mask)

    # ------------------------------------------------------------------ decoder
    def compile_decoder(self) -> "TIGER":
        """Run every decoder pass (`_decode`: beam steps, verification, teacher forcing) through torch.compile from
        now on, with dynamic shapes: it fuses the pass's small elementwise kernels (casts, norms, residuals), which
        dominate decoding a 2M-parameter model over 1-4 tokens (docs/RESULTS.md §4). The first calls of each new
        input structure compile (seconds to a minute). The verifier's token log-probs (`_token_logprobs`) are
        compiled too. Returns self.

        Dynamo compiles at most `torch._dynamo.config.recompile_limit` structures of a function per process, 8 by
        default, and runs later ones eagerly without a word. The decoder has more than 8 (with or without a cache,
        with or without returning one, one token or several, one user or many, ...): the batched loop, beam search
        and the one-user loop of one process met the limit (docs/RESULTS.md §4, release 23). This raises the limit
        to `RECOMPILE_LIMIT` for the process."""
        _allow_recompiles()
        self._compiled_decode = torch.compile(self._decode_eager, dynamic=True)
        self._compiled_chunk_logprobs = torch.compile(self._chunk_logprobs, dynamic=True)
        return self

    def _decode(self, state: EncoderState, tokens: torch.Tensor, past: list | None = None, want_cache: bool = True):
        """`_decode_eager`, compiled after `compile_decoder()`."""
        if self._compiled_decode is None or self.training:
            return self._decode_eager(state, tokens, past, want_cache)
        # contiguous tokens: one stride, fewer recompilations
        return self._compiled_decode(state, tokens.contiguous(), past, want_cache)

    def _decode_eager(self, state: EncoderState, tokens: torch.Tensor, past: list | None = None,
                      want_cache: bool = True):
        """tokens (B, R, L): R sequences per user, positions Lp..Lp+L-1 (Lp = cached length).

        past: the self-attention cache, per layer (k, v) (B*R, h, Lp, d_kv).

        Returns hidden (B, R, L, d) after the final LayerNorm and the new self-attention cache: per layer (k, v),
        each (B*R, h, Lp+L, d_kv); None with want_cache=False (a verification pass, whose cache nobody reads).
        """
        B, R, L = tokens.shape
        n = B * R
        dec = self.t5.decoder
        x = self._drop(self.t5.shared(tokens.reshape(n, L).long()))
        Lp = 0 if past is None else past[0][0].shape[2]
        bias = self._rel_bias(dec.block[0].layer[0].SelfAttention, L, Lp + L, False, offset=Lp)
        causal = torch.ones(L, Lp + L, dtype=torch.bool, device=x.device).tril(diagonal=Lp)
        self_mask = bias.masked_fill(~causal, float("-inf")).to(self._compute_dtype())
        new_past = []
        for i, blk in enumerate(dec.block):
            sa, ca, ff = blk.layer[0], blk.layer[1], blk.layer[2]
            h = self._norm(sa.layer_norm, x)
            a = sa.SelfAttention
            q, k, v = self._heads(a.q, h, n, L), self._heads(a.k, h, n, L), self._heads(a.v, h, n, L)
            if past is not None:
                k, v = torch.cat([past[i][0], k], 2), torch.cat([past[i][1], v], 2)
            if want_cache:
                new_past.append((k, v))
            x = x + self._drop(self._lin(a.o, self._sdpa(q, k, v, self_mask)))
            # cross-attention: all R*L positions of a user in one query block against that user's T states
            h = self._norm(ca.layer_norm, x)
            c = ca.EncDecAttention
            q = self._lin(c.q, h).view(B, R * L, self.cfg.n_heads, self.cfg.d_kv).transpose(1, 2)
            ck, cv = state.cross_kv[i]
            o = self._sdpa(q, ck, cv, state.mask, cross=True).view(n, L, -1)
            x = x + self._drop(self._lin(c.o, o))
            x = x + self._drop(self._ff(ff.DenseReluDense, self._norm(ff.layer_norm, x)))
        x = self._drop(self._norm(dec.final_layer_norm, x))
        return x.view(B, R, L, -1), (new_past if want_cache else None)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied output embedding with T5's d_model**-0.5 rescale (tie_word_embeddings=True).

        In eval mode the projection runs in fp32 even under autocast: bf16 logits are rounded to steps of 1/16 at
        |logit| ~ 10, coarse enough to reorder near-tied candidates between batch shapes (the batched SpecGR loop
        against its one-user reference, docs/RESULTS.md §4), and it is a small share of a decoder pass. Training
        keeps the autocast dtype, as measured for the trainer.
        """
        x = hidden * (self.cfg.d_model ** -0.5)
        if self.training or not torch.is_autocast_enabled(x.device.type):
            return F.linear(x, self.t5.shared.weight)
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.t5.shared.weight.float())

    def decoder_logits(self, enc, enc_mask, dec_input: torch.Tensor) -> torch.Tensor:
        """enc (B, T, d) or EncoderState; enc_mask (B, T); dec_input (B, R, L) -> logits (B, R, L, V)."""
        B, R, L = dec_input.shape
        if R == 0 or L == 0:
            return torch.zeros(B, R, L, self.vocab_size, device=dec_input.device)
        hidden, _ = self._decode(self._state(enc, enc_mask), dec_input, want_cache=False)
        return self._logits(hidden)

    def decoder_logprobs(self, enc, enc_mask, dec_input: torch.Tensor) -> torch.Tensor:
        """Log-softmax (fp32) at every decoder position.

        enc (B, T, d) or an EncoderState (then enc_mask is ignored); enc_mask (B, T); dec_input (B, R, L) with
        dec_input[..., 0] = decoder start (PAD). Rows of one user share its encoder states (no re-encode, no
        expansion). Returns (B, R, L, V): [b, r, t] is the distribution of the token after dec_input[b, r, :t+1].
        """
        return torch.log_softmax(self.decoder_logits(enc, enc_mask, dec_input).float(), -1)

    def decoder_token_logprobs(self, enc, enc_mask, dec_input: torch.Tensor, targets: torch.Tensor,
                               past: list | None = None) -> torch.Tensor:
        """log p(targets[..., t] | dec_input[..., :t+1]) -> (B, R, L) fp32.

        enc (B, T, d) or an EncoderState; dec_input, targets (B, R, L). past: an optional self-attention cache per
        (B*R) row (per layer (k, v) (B*R, h, Lp, d_kv)), then dec_input holds positions Lp..Lp+L-1 (prefix reuse of
        the SpecGR loop, `specgr.models.scoring.prefix_digit_logprobs`). No cache is returned: a verification pass's
        cache has no reader.
        """
        B, R, L = dec_input.shape
        if R == 0 or L == 0:
            return torch.zeros(B, R, L, device=dec_input.device)
        hidden, _ = self._decode(self._state(enc, enc_mask), dec_input, past, want_cache=False)
        return self._token_logprobs(hidden, targets)

    def _token_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """hidden (..., d), targets (...) -> log-softmax of the logits at the targets (...), fp32.

        Only (TOKEN_LOGPROB_CHUNK[device], V) logits exist at a time: the full (B, R, L, V) logits of a verify call
        (and their fp32 copy under autocast) are never materialised. After `compile_decoder()` each chunk runs
        compiled: the logits' max, exp, sum and the target's gather become one fused reduction over the logits, in place
        of four eager kernels (max, subtract, exp, sum) that each pass over them (docs/RESULTS.md §4, release 21).
        """
        h = hidden.reshape(-1, hidden.shape[-1])
        t = targets.reshape(-1, 1).long()
        out = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
        n = TOKEN_LOGPROB_CHUNK.get(h.device.type, TOKEN_LOGPROB_CHUNK["cuda"])
        chunk = self._chunk_logprobs if self._compiled_chunk_logprobs is None or self.training \
            else self._compiled_chunk_logprobs
        for i in range(0, h.shape[0], n):
            out[i:i + n] = chunk(h[i:i + n], t[i:i + n])
        return out.view(targets.shape)

    def _chunk_logprobs(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """h (n, d) hidden states, t (n, 1) long targets -> (n,) fp32 log-softmax at the targets. The logsumexp runs in
        fp32 and in place on the fresh fp32 logits (max, subtract, exp, sum: no further (n, V) temporaries)."""
        lg = self._logits(h)
        lg = lg.float() if lg.dtype != torch.float32 else lg  # a fresh tensor either way: safe to edit in place
        tgt = lg.gather(1, t)[:, 0]
        mx = lg.amax(1, keepdim=True)
        return tgt - (lg.sub_(mx).exp_().sum(1).log_() + mx[:, 0])

    def decode_step(self, state: EncoderState, last_tokens: torch.Tensor, past: list | None):
        """One decoding step for W beams per user with a KV cache.

        last_tokens (B, W): the newest token of each beam (DECODER_START at step 0); past: cache from the previous
        step (per layer (k, v) (B*W, h, Lp, d_kv)), already re-ordered to the current beams, or None.
        Returns logprobs (B, W, V) fp32 and the updated cache.
        """
        hidden, past = self._decode(state, last_tokens[..., None], past)
        return torch.log_softmax(self._logits(hidden[:, :, 0]).float(), -1), past

    # ------------------------------------------------------------------ training loss
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy over the label positions (4 SID tokens + EOS, as the paper; -100 = ignored).

        input_ids (B, T), attention_mask (B, T), labels (B, 5) -> the mean over non-ignored tokens (reduction="mean")
        or the per-token losses (B, 5) (reduction="none"; what the trainer needs for per-digit losses and for an exact
        mean across data-parallel ranks).
        """
        enc = self.encode(input_ids, attention_mask)
        if reduction == "none":
            return self.token_losses(enc, attention_mask, labels, label_smoothing)
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        return self.generation_loss(enc, attention_mask, labels, label_smoothing)

    def generation_loss(self, enc: torch.Tensor, enc_mask: torch.Tensor, labels: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
        """forward's loss on already computed encoder states (enc (B, T, d), enc_mask (B, T), labels (B, 5)), for
        trainers that share one encoder pass between several losses (SpecGR++). Mean over non-ignored tokens."""
        losses = self.token_losses(enc, enc_mask, labels, label_smoothing)
        return losses.sum() / (labels != -100).sum().clamp(min=1)

    def token_losses(self, enc: torch.Tensor, enc_mask: torch.Tensor, labels: torch.Tensor,
                     label_smoothing: float = 0.0) -> torch.Tensor:
        """Per-token cross-entropy (B, 5) fp32 of labels (B, 5) (4 SID tokens + EOS; -100 = ignored, loss 0 there).

        The decoder input is T5's right shift of the labels with decoder start = PAD. Per-position losses let the
        trainer report the loss of each SID digit separately.
        """
        labels = labels.long()
        dec_in = torch.zeros_like(labels)  # T5 right shift with decoder start = PAD
        dec_in[:, 1:] = labels[:, :-1].clamp(min=0)
        logits = self.decoder_logits(enc, enc_mask, dec_in[:, None])[:, 0]  # (B, 5, V)
        ce = F.cross_entropy(logits.float().reshape(-1, self.vocab_size), labels.reshape(-1), ignore_index=-100,
                             reduction="none", label_smoothing=label_smoothing)
        return ce.view(labels.shape)


# ---------------------------------------------------------------------- checkpoints (specgr.checkpoint layout)
CKPT_NAME = "tiger"


def save_tiger(path, model: TIGER, sids=None, dataset_fingerprint: str | None = None, extra: dict | None = None,
               half: bool = False, train_config: dict | None = None):
    """Write the model as component "tiger" of a checkpoint directory (plus SIDs and dataset fingerprint)."""
    from specgr.checkpoint import save_checkpoint

    cfg = {CKPT_NAME: {"model": model.cfg.to_dict(), "vocab_size": model.vocab_size}}
    if train_config is not None:
        cfg[CKPT_NAME]["train"] = train_config
    return save_checkpoint(path, cfg, {CKPT_NAME: model.state_dict()}, sids, dataset_fingerprint,
                           extra={CKPT_NAME: extra} if extra else None, half=half)


def tiger_from_checkpoint(ckpt: dict, device="cpu") -> TIGER:
    """A TIGER (eval mode) from `specgr.checkpoint.load_checkpoint(...)`'s result."""
    c = ckpt["config"][CKPT_NAME]
    model = TIGER(TigerConfig.from_dict(c["model"]), c["vocab_size"])
    model.load_state_dict(ckpt["state_dicts"][CKPT_NAME])
    return model.to(device).eval()


def load_tiger(path, ds=None, device="cpu") -> tuple[TIGER, object]:
    """(model, sids) from a checkpoint directory; ds (ProcessedDataset) checks the dataset fingerprint."""
    from specgr.checkpoint import load_checkpoint

    ck = load_checkpoint(path, ds=ds, device=device, names=[CKPT_NAME])
    return tiger_from_checkpoint(ck, device), ck["sids"]
