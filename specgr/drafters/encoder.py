"""SpecGR++ self-drafting: the TIGER encoder itself embeds users and items (docs/METHOD.md §5).

    s = normalize(mean_{t: mask=1} P(Enc([BOS, SIDs of the history, EOS]))_t)      sequence (query), (B, p)
    i = normalize(mean_t         P(Enc([BOS, c1, c2, c3, c4, EOS]))_t)              item, (N, p)
    draft score = s . i (cosine, no temperature)

An item's embedding depends on its semantic id only, so a brand-new item is draftable as soon as it has a SID
(`EncoderDrafter.add_items`), with no retraining.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from specgr.data.tokenize import history_tokens
from specgr.drafters.base import EmbeddingDrafter
from specgr.utils import as_long
from specgr.retrieval import RetrievalIndex
from specgr.sid.semantic_ids import BOS, EOS


class Projection(nn.Module):
    """P: d_model -> p (with bias) on every encoder state, masked mean-pool over tokens, L2-normalise.

    P is affine and the pool is a convex combination, so mean(P(h)) == P(mean(h)) exactly: we pool first and project
    once per sequence (T times fewer FLOPs, same numbers as the paper's per-token formulation).
    """

    def __init__(self, d_model: int, p: int = 64):
        super().__init__()
        self.linear = nn.Linear(d_model, p, bias=True)

    @property
    def dim(self) -> int:
        return self.linear.out_features

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states (B, T, d), mask (B, T) 1 on real tokens -> (B, p) unit vectors."""
        m = mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, d)
        return F.normalize(self.linear(pooled).float(), dim=-1)


def sequence_embeddings(model, proj: Projection, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Query side. input_ids, attention_mask (B, T) from `specgr.data.tokenize.history_tokens` -> (B, p).

    Differentiable (training calls it); wrap in torch.no_grad() / `eval_mode` for inference.
    """
    input_ids, attention_mask = input_ids.long(), attention_mask.long()
    return proj(model.encode(input_ids, attention_mask), attention_mask)


def item_input(sid_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 4) SID tokens -> input_ids (N, 6) = [BOS, c1..c4, EOS] and an all-ones mask (N, 6)."""
    sid_tokens = sid_tokens.long()
    N = sid_tokens.shape[0]
    bos = torch.full((N, 1), BOS, dtype=torch.long, device=sid_tokens.device)
    eos = torch.full((N, 1), EOS, dtype=torch.long, device=sid_tokens.device)
    ids = torch.cat([bos, sid_tokens, eos], 1)
    return ids, torch.ones_like(ids)


def item_embeddings(model, proj: Projection, sid_tokens: torch.Tensor, batch: int | None = 4096) -> torch.Tensor:
    """Item side, from the semantic id alone. sid_tokens (N, 4) -> (N, p), computed in chunks of `batch` rows
    (None = one pass). Differentiable when grad is enabled (stage 1 embeds the batch's targets this way); for a whole
    catalog use `encode_item_table` (no grad, eval mode)."""
    dev = next(model.parameters()).device
    sid_tokens = torch.as_tensor(sid_tokens).to(dev)
    if sid_tokens.shape[0] == 0:
        return torch.zeros(0, proj.dim, device=dev)
    step = sid_tokens.shape[0] if batch is None else int(batch)
    out = []
    for s in range(0, sid_tokens.shape[0], step):
        ids, mask = item_input(sid_tokens[s:s + step])
        out.append(proj(model.encode(ids, mask), mask))
    return torch.cat(out)


@contextlib.contextmanager
def eval_mode(*modules):
    """Temporarily put modules in eval mode (dropout off) and disable grad; restores each module's training flag."""
    flags = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, f in zip(modules, flags):
            m.train(f)


def encode_item_table(model, proj: Projection, sid_tokens: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """The drafting table: every item embedded once, eval mode, no grad. (N, 4) -> (N, p) float32."""
    with eval_mode(model, proj):
        return item_embeddings(model, proj, sid_tokens, batch=batch).float()


class EncoderDrafter(EmbeddingDrafter):
    """Drafter protocol over the TIGER encoder (specgr.drafters.base).

    model: TIGER; proj: Projection; sids: SemanticIDs of the catalog (histories are tokenised with `sids.tokens`).
    item_table: (N, p) precomputed item embeddings (the frozen stage-2 table, which inference uses for every item);
    None = encode all `sids.tokens` now. backend: RetrievalIndex backend. Queries run in eval mode, no grad.
    """

    def __init__(self, model, proj: Projection, sids, item_table: torch.Tensor | None = None, device="auto",
                 backend: str = "torch", batch: int = 4096):
        super().__init__(device)
        self.model, self.proj, self.sids, self.batch = model, proj, sids, int(batch)
        self.model.to(self.device)
        self.proj.to(self.device)
        if item_table is None:
            item_table = encode_item_table(model, proj, self._tokens(), batch=self.batch)
        if item_table.shape[0] != sids.n_items:
            raise ValueError(f"item_table has {item_table.shape[0]} rows, sids has {sids.n_items} items")
        self.index = RetrievalIndex(item_table.detach().float(), backend=backend, device=self.device, metric="ip")

    def _tokens(self) -> torch.Tensor:
        return torch.as_tensor(self.sids.tokens).to(self.device)

    def query_embeddings(self, history, hist_len) -> torch.Tensor:
        """history (B, H) item ids (-1 padded), hist_len (B,) -> (B, p) unit vectors."""
        history, hist_len = as_long(history, self.device), as_long(hist_len, self.device)
        ids, mask = history_tokens(history, hist_len, self._tokens())
        out = []
        with eval_mode(self.model, self.proj):
            for s in range(0, ids.shape[0], self.batch):
                out.append(sequence_embeddings(self.model, self.proj, ids[s:s + self.batch], mask[s:s + self.batch]))
        return torch.cat(out).float() if out else torch.zeros(0, self.proj.dim, device=self.device)

    def add_items(self, sid_tokens_new: torch.Tensor | None = None, *, codes3=None) -> torch.Tensor:
        """Make new items draftable from their semantic ids alone (no retraining). Returns their ids (M,).

        Either codes3 (M, 3): registers them in `self.sids` (collision digits assigned there) and embeds them; or
        sid_tokens_new (M, 4) tokens of items already appended to `sids` (e.g. `sids.add_items` was called by the
        pipeline). Ids continue the catalog: n_items, n_items+1, ...
        """
        if codes3 is not None:
            new_ids = self.sids.add_items(codes3)
            sid_tokens_new = torch.as_tensor(self.sids.tokens)[new_ids.to(torch.as_tensor(self.sids.tokens).device)]
        if sid_tokens_new is None:
            raise ValueError("pass sid_tokens_new (M, 4) or codes3 (M, 3)")
        emb = encode_item_table(self.model, self.proj, torch.as_tensor(sid_tokens_new).to(self.device), self.batch)
        return self.index.add(emb)


# ------------------------------------------------------------------ checkpoint directories (specgr.checkpoint)
CKPT_NAME = "specgr_pp"


def save_specgr_pp(path, model, proj: Projection, item_table: torch.Tensor, sids=None,
                   dataset_fingerprint: str | None = None, extra: dict | None = None, half: bool = False,
                   train_config: dict | None = None):
    """Write SpecGR++ as component "specgr_pp" of a checkpoint directory: its own TIGER (the verifier), the projection
    and the frozen (N, p) item table, all in one state dict {model.*, proj.*, item_table} with the config that builds
    them {model, vocab_size, proj_dim, n_items}."""
    from specgr.checkpoint import save_checkpoint

    cfg = {CKPT_NAME: {"model": model.cfg.to_dict(), "vocab_size": model.vocab_size, "proj_dim": proj.dim,
                       "n_items": int(item_table.shape[0])}}
    if train_config is not None:
        cfg[CKPT_NAME]["train"] = train_config
    sd = {**{f"model.{k}": v for k, v in model.state_dict().items()},
          **{f"proj.{k}": v for k, v in proj.state_dict().items()}, "item_table": item_table.detach().float()}
    return save_checkpoint(path, cfg, {CKPT_NAME: sd}, sids, dataset_fingerprint,
                           extra={CKPT_NAME: extra} if extra else None, half=half)


def _strip(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def specgr_pp_from_checkpoint(ckpt: dict, device="cpu"):
    """(model, proj, item_table) from `specgr.checkpoint.load_checkpoint(...)`'s result, in eval mode on `device`.

    Reads the format of `save_specgr_pp` and the two earlier ones: bundles exported before it kept the table in a
    separate component "specgr_pp_table"; stage directories kept the TIGER as a separate component "tiger"."""
    from specgr.checkpoint import component
    from specgr.models.tiger import TIGER, TigerConfig, tiger_from_checkpoint

    c, sd = component(ckpt, CKPT_NAME, fix="train SpecGR++ with `specgr train specgr++ --dataset <name>`")
    if "model" in c:
        model = TIGER(TigerConfig.from_dict(c["model"]), c["vocab_size"])
        model.load_state_dict(_strip(sd, "model."))
        model = model.to(device).eval()
    else:  # an earlier stage directory
        model = tiger_from_checkpoint(ckpt, device)
    proj = Projection(model.cfg.d_model, c["proj_dim"])
    proj.load_state_dict(_strip(sd, "proj."))
    table = sd["item_table"] if "item_table" in sd else ckpt["state_dicts"]["specgr_pp_table"]["table"]
    return model, proj.to(device).eval(), table.float().to(device)


def load_specgr_pp(path, ds=None, device="cpu"):
    """(model, proj, item_table, sids) from a checkpoint directory written by `save_specgr_pp`; ds checks the
    dataset fingerprint. Build the drafter with EncoderDrafter(model, proj, sids, item_table)."""
    from specgr.checkpoint import load_checkpoint

    ck = load_checkpoint(path, ds=ds, device=device)
    return (*specgr_pp_from_checkpoint(ck, device), ck["sids"])
