"""SASRec (Kang & McAuley 2018), the ID-based baseline, in the Drafter protocol shape, with its checkpoint format.

SASRec here is ID-based and transductive: it has embeddings for the in-sample items only (ids 0..n_in_sample-1, the
softmax output table, tied with the input table), plus one shared UNK row for any other item that shows up in a
history (items that were never a train target, or items added later). It cannot recommend unseen items. The sequence
side is the shared `specgr.models.sequence.SequenceEncoder`.

    drafter = SASRecDrafter(SASRec(SASRecConfig(), n_in_sample), n_items)
    save_sasrec(path, drafter.model, n_items, ds.fingerprint); drafter = load_sasrec(path, ds=ds)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from specgr.drafters.base import EmbeddingDrafter
from specgr.utils import as_long
from specgr.models.sequence import SequenceEncoder, encoder_config
from specgr.retrieval import RetrievalIndex


@dataclass
class SASRecConfig:
    hidden: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner: int = 256
    dropout: float = 0.3
    attn_dropout: float = 0.3
    max_len: int = 20
    temperature: float = 1.0  # logits = <seq, item> / temperature (plain SASRec: 1)


class SASRec(nn.Module):
    """ID-based SASRec. Item table rows: 0..n_in_sample-1 in-sample items, then UNK, then PAD (zero, no gradient).

    encode(history (B, H) ids -1 padded, hist_len (B,)) -> (B, hidden); item_table() -> (n_in_sample, hidden);
    logits(seq) -> (B, n_in_sample) = seq . item_table / temperature.
    """

    def __init__(self, cfg: SASRecConfig, n_in_sample: int):
        super().__init__()
        self.cfg = cfg
        self.n_in_sample = int(n_in_sample)
        self.unk, self.pad = self.n_in_sample, self.n_in_sample + 1
        self.item_emb = nn.Embedding(self.n_in_sample + 2, cfg.hidden, padding_idx=self.pad)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[self.pad].zero_()
        self.encoder = SequenceEncoder(encoder_config(cfg))

    def _rows(self, history: torch.Tensor) -> torch.Tensor:
        """Map item ids to table rows: unknown ids -> UNK, -1 -> PAD."""
        r = torch.where(history >= self.n_in_sample, torch.full_like(history, self.unk), history)
        return torch.where(history < 0, torch.full_like(history, self.pad), r)

    def encode(self, history: torch.Tensor, hist_len: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.item_emb(self._rows(history)), hist_len)

    def item_table(self) -> torch.Tensor:
        return self.item_emb.weight[: self.n_in_sample]

    def logits(self, seq: torch.Tensor) -> torch.Tensor:
        return seq @ self.item_table().T / self.cfg.temperature

    def forward(self, history, hist_len):
        return self.logits(self.encode(history, hist_len))


class SASRecDrafter(EmbeddingDrafter):
    """SASRec in the Drafter protocol (specgr.drafters.base). Scores = <seq, item> / temperature.

    Only in-sample items can be drafted; unseen / added items are never returned (their score would be -inf).
    `n_items` counts the whole catalog (add_items only grows the count: SASRec cannot embed new items).
    item_embeddings() returns the in-sample table (n_in_sample, hidden) only.
    """

    def __init__(self, model: SASRec, n_items: int, device="auto", backend: str = "torch"):
        super().__init__(device)
        self.model = model.to(self.device).eval()
        self._n_items = int(n_items)
        with torch.no_grad():
            self.index = RetrievalIndex(self.model.item_table().float(), backend=backend, device=self.device)

    @property
    def n_items(self) -> int:
        return self._n_items

    def add_items(self, n_new: int = 1, *args, **kwargs) -> torch.Tensor:
        """New items get ids but no embedding: they are never drafted by an ID-based model."""
        n_new = int(n_new) if not hasattr(n_new, "__len__") else len(n_new)
        ids = torch.arange(self._n_items, self._n_items + n_new)
        self._n_items += n_new
        return ids

    @torch.no_grad()
    def query_embeddings(self, history, hist_len) -> torch.Tensor:
        seq = self.model.encode(as_long(history, self.device), as_long(hist_len, self.device)).float()
        return seq / self.model.cfg.temperature

    def draft(self, history, hist_len, k: int, allowed=None, exclude=None):
        if allowed is not None:  # the index holds the in-sample items only: keep their columns
            allowed = torch.as_tensor(allowed, dtype=torch.bool)
            if allowed.shape[1] != self._n_items:
                raise ValueError(f"allowed must be (B, {self._n_items}), got {tuple(allowed.shape)}")
            allowed = allowed[:, : self.model.n_in_sample]
        return super().draft(history, hist_len, k, allowed=allowed, exclude=exclude)

    def to(self, device) -> "SASRecDrafter":
        super().to(device)
        self.model.to(self.device)
        return self


# ------------------------------------------------------------------ checkpoint directories (specgr.checkpoint)
CKPT_NAME = "sasrec"


def save_sasrec(path, model: SASRec, n_items: int, dataset_fingerprint: str | None = None, extra: dict | None = None):
    """Write the model as component "sasrec" of a checkpoint directory (config {model, n_in_sample, n_items})."""
    from specgr.checkpoint import save_checkpoint

    cfg = {CKPT_NAME: {"model": asdict(model.cfg), "n_in_sample": model.n_in_sample, "n_items": int(n_items)}}
    return save_checkpoint(path, cfg, {CKPT_NAME: model.state_dict()}, None, dataset_fingerprint,
                           extra={CKPT_NAME: extra} if extra else None)


def sasrec_from_checkpoint(ckpt: dict, device="auto") -> SASRecDrafter:
    """A SASRecDrafter from `specgr.checkpoint.load_checkpoint(...)`'s result."""
    from specgr.checkpoint import component
    from specgr.config import from_dict

    c, sd = component(ckpt, CKPT_NAME, fix="train it with `specgr train sasrec --dataset <name>`")
    model = SASRec(from_dict(SASRecConfig, c["model"]), c["n_in_sample"])
    model.load_state_dict(sd)
    return SASRecDrafter(model, c["n_items"], device=device)


def load_sasrec(path, ds=None, device="auto") -> SASRecDrafter:
    """The SASRecDrafter of a checkpoint directory written by `save_sasrec`; ds checks the dataset fingerprint."""
    from specgr.checkpoint import load_checkpoint

    return sasrec_from_checkpoint(load_checkpoint(path, ds=ds), device)
