"""Quality report of a set of semantic ids: code usage, collisions, and whether shared prefixes mean similar text."""

from __future__ import annotations

import numpy as np
import torch

from specgr.sid.semantic_ids import SemanticIDs


def _mean_pair_cosine(x: torch.Tensor, group: torch.Tensor) -> tuple[float, int]:
    """Exact mean cosine over all unordered pairs of rows in the same group. x (N, d) unit rows, group (N,) long.

    Uses sum_{i<j in g} <x_i, x_j> = (|sum_g x|^2 - sum_g |x|^2) / 2, so no pair is ever materialised.
    """
    _, g = torch.unique(group, return_inverse=True)
    sums = torch.zeros(int(g.max()) + 1, x.shape[1], dtype=x.dtype).index_add_(0, g, x)
    sizes = torch.bincount(g).double()
    pairs = float((sizes * (sizes - 1) / 2).sum())
    if pairs == 0:
        return float("nan"), 0
    dot = float(((sums * sums).sum(1).double().sum() - (x * x).sum().double()) / 2)
    return dot / pairs, int(pairs)


def quality_report(sids: SemanticIDs, emb) -> dict:
    """sids: N items; emb (N, d) text embeddings of the same items (normalised here) -> JSON-able dict."""
    codes = sids.codes.cpu()
    N, C = len(codes), sids.C
    x = torch.as_tensor(np.asarray(emb[:N]) if not torch.is_tensor(emb) else emb[:N]).double()
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    usage, ppl = [], []
    for l in range(3):
        p = torch.bincount(codes[:, l], minlength=C).double()
        p = p[p > 0] / N
        usage.append(len(p) / C)
        ppl.append(float(torch.exp(-(p * p.log()).sum())))
    key3 = (codes[:, 0] * C + codes[:, 1]) * C + codes[:, 2]
    _, inv, sizes = torch.unique(key3, return_inverse=True, return_counts=True)
    depth_hist = torch.bincount(sizes).tolist()  # depth_hist[k] = number of 3-code prefixes holding k items
    rep = {
        "n_items": N, "n_in_sample": sids.n_in_sample, "codebook_size": C, "collision_size": sids.collision_size,
        "vocab_size": sids.vocab_size,
        "usage": usage,  # used codes / C, per level
        "perplexity": ppl,  # exp(entropy) of the code distribution, per level
        "unique_prefix_share": float((sizes[inv] == 1).double().mean()),  # items alone on their 3-code prefix
        "n_prefixes3": int(len(sizes)),
        "max_depth": int(sizes.max()),  # largest group = collision slots needed
        "depth_hist": {int(k): int(v) for k, v in enumerate(depth_hist) if v},
        "cosine_random": _mean_pair_cosine(x, torch.zeros(N, dtype=torch.long))[0],
    }
    key = torch.zeros(N, dtype=torch.long)
    for l in range(3):
        key = key * C + codes[:, l]
        rep[f"cosine_prefix{l + 1}"], rep[f"pairs_prefix{l + 1}"] = _mean_pair_cosine(x, key)
    new = sids.prefix_len[sids.n_in_sample:].cpu()
    if len(new):  # how deep new items go into the in-sample trie (drives SpecGR's guided re-drafting)
        rep["new_prefix_len_hist"] = {int(k): int(v) for k, v in enumerate(torch.bincount(new, minlength=4)) if v}
    return rep


def print_quality(rep: dict, title: str = "semantic id quality", console=None) -> None:
    """Pretty-print a quality_report dict as a rich table."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    f3 = lambda v: " / ".join(f"{u:.3f}" for u in v)  # noqa: E731
    t.add_row("items (in-sample)", f"{rep['n_items']} ({rep['n_in_sample']})")
    t.add_row("C / collision slots / vocab", f"{rep['codebook_size']} / {rep['collision_size']} / {rep['vocab_size']}")
    t.add_row("code usage L1/L2/L3", f3(rep["usage"]))
    t.add_row("perplexity L1/L2/L3", " / ".join(f"{u:.1f}" for u in rep["perplexity"]))
    t.add_row("3-code prefixes", str(rep["n_prefixes3"]))
    t.add_row("items with a unique 3-code prefix", f"{rep['unique_prefix_share']:.3f}")
    t.add_row("max collision depth", str(rep["max_depth"]))
    hist = rep["depth_hist"]
    t.add_row("prefixes by depth", ", ".join(f"{k}:{v}" for k, v in list(hist.items())[:8])
              + (" ..." if len(hist) > 8 else ""))
    t.add_row("cosine: random pairs", f"{rep['cosine_random']:.3f}")
    for l in (1, 2, 3):
        t.add_row(f"cosine: shared {l}-code prefix", f"{rep[f'cosine_prefix{l}']:.3f}")
    if "new_prefix_len_hist" in rep:
        t.add_row("new items by in-sample prefix len", ", ".join(f"{k}:{v}" for k, v in rep["new_prefix_len_hist"].items()))
    (console or Console()).print(t)
