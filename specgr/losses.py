"""Retrieval losses of SpecGR++ (arXiv 2410.02939; docs/METHOD.md §8): in-batch InfoNCE (stage 1) and
full-softmax CE over a frozen in-sample item table (stage 2). Embeddings are expected L2-normalised, so logits are
cosine / tau.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specgr.distributed import all_gather_nograd, all_gather_with_grad, get_world_size, is_dist, scale_grad


def contrastive_loss(seq_emb: torch.Tensor, item_emb: torch.Tensor, target_ids: torch.Tensor, tau: float = 0.07,
                     gather: bool = True, ddp_average: bool = True) -> torch.Tensor:
    """In-batch InfoNCE, sequence -> its next item. Returns a scalar: the mean over the GLOBAL batch.

    seq_emb: (B, p) sequence embeddings; item_emb: (B, p) embeddings of each row's target item; target_ids: (B,) ids.

    Row j's positive is item j (the diagonal); its negatives are all other (gathered) target items. Off-diagonal
    columns holding the SAME item id as row j's target are removed from the softmax (-inf), not set to logit 0 as in the
    official code (which still adds exp(0)=1 per duplicate to the denominator).

    Under torch.distributed with gather=True, seq_emb, item_emb and target_ids are all-gathered (every rank must pass
    the same B) and every rank evaluates the full (world*B, world*B) logit matrix; only its own shard carries gradient,
    so each rank gets exactly the single-process gradient for its own inputs. DDP then AVERAGES parameter gradients
    over ranks, which would divide this term's gradient by world_size; ddp_average=True multiplies the backward pass by
    world_size (the value is unchanged) so that the DDP-averaged gradient equals single-process training on the global
    batch. Pass ddp_average=False if your gradients are summed, not averaged, over ranks.
    Memory is O((world*B)^2): 4 GPUs x 1024 rows = a 4096^2 matrix, which is tiny next to the model.
    """
    if seq_emb.shape != item_emb.shape or seq_emb.shape[0] != target_ids.shape[0]:
        raise ValueError(f"shapes differ: seq {tuple(seq_emb.shape)}, item {tuple(item_emb.shape)}, "
                         f"ids {tuple(target_ids.shape)}")
    world = get_world_size() if (gather and is_dist()) else 1
    if world > 1:
        seq_emb = all_gather_with_grad(seq_emb)
        item_emb = all_gather_with_grad(item_emb)
        target_ids = all_gather_nograd(target_ids)
    # fp32 logits: under bf16 autocast the 1/tau = 14x blow-up of cosines loses too many bits
    logits = seq_emb.float() @ item_emb.float().T / tau  # (Bg, Bg)
    same = target_ids[:, None] == target_ids[None, :]
    same.fill_diagonal_(False)  # keep the positive
    logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, labels)
    if world > 1 and ddp_average:
        loss = scale_grad(loss, float(world))
    return loss


def full_softmax_loss(seq_emb: torch.Tensor, table: torch.Tensor, target: torch.Tensor,
                      tau: float = 0.07) -> torch.Tensor:
    """Cross-entropy over a whole item table (stage 2 "learning to rank"). Mean over the batch.

    seq_emb: (B, p); table: (N_in, p), the frozen embeddings of the in-sample items only (ids 0..N_in-1; there is no
    PAD row, unlike the official code); target: (B,) ids in [0, N_in). Gradient flows to seq_emb (and to the table only
    if it requires grad, which the stage-2 table does not).
    """
    if not target.is_cuda and target.numel() and int(target.max()) >= table.shape[0]:  # no GPU sync per step
        raise ValueError(f"target id {int(target.max())} outside the table of {table.shape[0]} in-sample items")
    logits = seq_emb.float() @ table.float().T / tau  # (B, N_in)
    return F.cross_entropy(logits, target)
