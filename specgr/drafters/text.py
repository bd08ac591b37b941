"""SpecGR_Aux text drafter: a UniSRec-style model (inductive_ft mode, target domain only, no item-ID embeddings).

Item vector  = MoE adaptor over the FROZEN text embedding: sum_e g_e(x) * W_e(dropout(x) - b_e), 8 experts d_text->300,
               softmax gating (noisy gates while training).
Sequence     = SequenceEncoder (specgr.models.sequence, shared with SASRec) over the adapted history item vectors.
Score        = cosine(sequence, item). Training divides by tau = 0.07; drafting uses the raw cosine.

Because an item is represented by its text alone, any item with a text embedding can be drafted: `add_items(text_emb)`
adapts the new rows and appends them to the retrieval index. No retraining, inductive by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from specgr.drafters.base import EmbeddingDrafter
from specgr.utils import as_long
from specgr.models.sequence import SequenceEncoder, encoder_config
from specgr.retrieval import RetrievalIndex


@dataclass
class AuxConfig:
    """Model hyperparameters (UniSRec defaults as used by SpecGR_Aux)."""

    hidden: int = 300
    n_exps: int = 8
    adaptor_dropout: float = 0.2
    noisy_gating: bool = True
    n_layers: int = 2
    n_heads: int = 2
    inner: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    max_len: int = 20
    temperature: float = 0.07


class PWLayer(nn.Module):
    """Parametric whitening: x (..., d_in) -> W(dropout(x) - b) (..., d_out)."""

    def __init__(self, d_in: int, d_out: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(d_in))
        self.lin = nn.Linear(d_in, d_out, bias=False)
        nn.init.normal_(self.lin.weight, std=0.02)

    def forward(self, x):
        return self.lin(self.drop(x) - self.bias)


class MoEAdaptor(nn.Module):
    """Mixture of PW experts with (noisy) softmax gating. x (..., d_in) -> (..., d_out)."""

    def __init__(self, d_in: int, d_out: int, n_exps: int = 8, dropout: float = 0.2, noisy: bool = True):
        super().__init__()
        self.experts = nn.ModuleList(PWLayer(d_in, d_out, dropout) for _ in range(n_exps))
        self.w_gate = nn.Parameter(torch.zeros(d_in, n_exps))
        self.w_noise = nn.Parameter(torch.zeros(d_in, n_exps))
        self.noisy = noisy

    def gates(self, x):
        logits = x @ self.w_gate
        if self.noisy and self.training:
            # noise scale is learned per input (Shazeer et al. 2017), as in UniSRec
            std = F.softplus(x @ self.w_noise) + 1e-2
            logits = logits + torch.randn_like(logits) * std
        return logits.softmax(-1)  # (..., E)

    def forward(self, x):
        g = self.gates(x)
        out = torch.stack([e(x) for e in self.experts], dim=-2)  # (..., E, d_out)
        return (g.unsqueeze(-1) * out).sum(-2)


class TextSeqModel(nn.Module):
    """The UniSRec-style network. Holds the frozen text table (N, d_text) as a non-persistent buffer.

    item_vectors(ids (...,)) -> (..., hidden) adapted (not normalised) vectors; -1 -> zeros.
    encode(history (B, H), hist_len (B,)) -> (B, hidden) L2-normalised sequence vectors.
    item_table(ids=None) -> (n, hidden) L2-normalised item vectors (all items by default).
    """

    def __init__(self, cfg: AuxConfig, text_emb):
        super().__init__()
        self.cfg = cfg
        te = torch.as_tensor(np.asarray(text_emb) if not isinstance(text_emb, torch.Tensor) else text_emb,
                             dtype=torch.float32)
        self.d_text = te.shape[1]
        # frozen, not saved in state_dict: checkpoints stay small and the table comes from the dataset's embeddings
        self.register_buffer("text_emb", te, persistent=False)
        self.adaptor = MoEAdaptor(self.d_text, cfg.hidden, cfg.n_exps, cfg.adaptor_dropout, cfg.noisy_gating)
        self.encoder = SequenceEncoder(encoder_config(cfg))

    @property
    def n_items(self) -> int:
        return self.text_emb.shape[0]

    def add_text(self, text_emb) -> torch.Tensor:
        """Append (M, d_text) text embeddings; returns the new ids."""
        new = torch.as_tensor(np.asarray(text_emb) if not isinstance(text_emb, torch.Tensor) else text_emb,
                              dtype=torch.float32, device=self.text_emb.device)
        if new.ndim == 1:
            new = new[None]
        start = self.n_items
        self.text_emb = torch.cat([self.text_emb, new])
        return torch.arange(start, start + len(new))

    def item_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.adaptor(self.text_emb[ids.clamp(min=0)])
        return x.masked_fill((ids < 0).unsqueeze(-1), 0.0)

    def encode(self, history: torch.Tensor, hist_len: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.encoder(self.item_vectors(history), hist_len), dim=-1)

    def item_table(self, ids: torch.Tensor | None = None, chunk: int = 65536) -> torch.Tensor:
        if ids is None:
            # chunked so the 8 expert outputs of a 1M-item catalog are never alive at once
            outs = [self.adaptor(self.text_emb[s:s + chunk]) for s in range(0, self.n_items, chunk)]
            x = torch.cat(outs) if outs else self.text_emb.new_zeros(0, self.cfg.hidden)
        else:
            x = self.adaptor(self.text_emb[ids])
        return F.normalize(x, dim=-1)


class TextDrafter(EmbeddingDrafter):
    """SpecGR_Aux drafter: cosine top-k of the sequence vector over the adapted item table (all items, new included).

    drafter = TextDrafter(model, device="auto", backend="torch"); ids, scores = drafter.draft(history, hist_len, k)
    add_items(text_emb (M, d_text)) -> new ids (M,): draftable immediately.
    """

    def __init__(self, model: TextSeqModel, device="auto", backend: str = "torch"):
        super().__init__(device)
        self.model = model.to(self.device).eval()
        self.backend = backend
        self.rebuild_index()

    @torch.no_grad()
    def rebuild_index(self):
        """Re-adapt every item (call after changing the weights)."""
        self.index = RetrievalIndex(self.model.item_table().float(), backend=self.backend, device=self.device)

    @torch.no_grad()
    def query_embeddings(self, history, hist_len) -> torch.Tensor:
        return self.model.encode(as_long(history, self.device), as_long(hist_len, self.device)).float()

    @torch.no_grad()
    def add_items(self, text_emb) -> torch.Tensor:
        ids = self.model.add_text(text_emb)
        got = self.index.add(self.model.item_table(ids.to(self.device)).float())
        if not torch.equal(got.cpu(), ids.cpu()):
            raise RuntimeError("text drafter: index and text table out of sync")
        return ids

    def to(self, device):
        super().to(device)
        self.model.to(self.device)
        return self


# ------------------------------------------------------------------ checkpoint directories (specgr.checkpoint)
CKPT_NAME = "aux"


def save_aux(path, model: TextSeqModel, text_model: str | None = None, dataset_fingerprint: str | None = None,
             extra: dict | None = None, half: bool = False):
    """Write the model as component "aux" of a checkpoint directory: config {model, d_text, text_model}, weights
    without the text table (it is data: the dataset's embeddings of `text_model`, a non-persistent buffer)."""
    from specgr.checkpoint import save_checkpoint

    cfg = {CKPT_NAME: {"model": asdict(model.cfg), "d_text": model.d_text, "text_model": text_model}}
    return save_checkpoint(path, cfg, {CKPT_NAME: model.state_dict()}, None, dataset_fingerprint,
                           extra={CKPT_NAME: extra} if extra else None, half=half)


def aux_from_checkpoint(ckpt: dict, text_emb, device="auto", backend: str = "torch") -> TextDrafter:
    """A TextDrafter from `specgr.checkpoint.load_checkpoint(...)`'s result and the (N, d_text) text embeddings of
    the catalog (from the text model the component names)."""
    from specgr.checkpoint import component
    from specgr.config import from_dict

    c, sd = component(ckpt, CKPT_NAME, fix="train it with `specgr train aux --dataset <name>`")
    if np.shape(text_emb)[1] != c["d_text"]:
        raise ValueError(f"{ckpt['path']}: the text drafter reads {c['d_text']}-d text embeddings, these are "
                         f"{np.shape(text_emb)[1]}-d. Fix: use the embeddings of {c.get('text_model') or 'its'} "
                         "text model (`specgr prepare --text-model ...`).")
    model = TextSeqModel(from_dict(AuxConfig, c["model"]), text_emb)
    model.load_state_dict(sd)
    return TextDrafter(model, device=device, backend=backend)


def load_aux(path, ds=None, text_emb=None, device="auto", backend: str = "torch") -> TextDrafter:
    """The TextDrafter of a checkpoint directory written by `save_aux`. The text table comes from `text_emb`, or
    from `ds` (a ProcessedDataset, fingerprint-checked: the embeddings of the component's text model)."""
    from specgr.checkpoint import load_checkpoint

    ck = load_checkpoint(path, ds=ds)
    if text_emb is None:
        if ds is None:
            raise ValueError("load_aux needs the item text embeddings. Fix: pass ds (ProcessedDataset) or text_emb.")
        text_emb = ds.embeddings(ck["config"].get(CKPT_NAME, {}).get("text_model"))
    return aux_from_checkpoint(ck, text_emb, device, backend)
