"""SpecGR inference settings (docs/METHOD.md §6, §7; the switches beyond the paper: §9). Defaults = the paper's loop [v-old] with the Games quick-start values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch


# the command-line spelling of SpecGRConfig.draft_ranges (benchmarks' --draft-ranges)
DRAFT_RANGES = {"auto": None, "on": True, "off": False}


@dataclass
class SpecGRConfig:
    draft_size: int = 50  # δ: items drafted per round
    num_beams: int = 30  # β: width of the constrained beam that guides re-drafting
    threshold: float = -1.4  # γ: accept iff V(x) > γ (V = mean per-token log-likelihood)
    top_k: int = 50  # K: length of the final list; early exit once >= K accepted
    max_rounds: int = 4  # l: at most one round per SID digit
    guided_redraft: bool = True  # False: every round drafts the next-best δ (no beam prefixes)
    redraft_from_round: int = 2  # first round restricted to beam prefixes (prefix length = round - 1); v-new: 3
    accept_topk_by: str = "score"  # "score": top-K accepted by V [v-old]; "order": first K in drafting order [v-new]
    length_rule: str = "paper"  # "paper": m = 4 in-sample / 3 unseen; "prefix_len": m = max(prefix_len, min_len)
    min_len: int = 3  # clamp for length_rule="prefix_len" (3 for SpecGR++, 2 for SpecGR_Aux)
    inductive: bool = True  # False: drafts limited to in-sample items (ablation)
    fill: str = "paper"  # < K accepted: rejected candidates (by V) + non-drafted final beams (by beam logprob / 4)
    # ---- beyond the paper (all off by default = the paper); see docs/RESULTS.md for what each does on real data
    new_item_bonus: float = 0.0  # added to V of unseen candidates, for acceptance and ranking: a new item's last digits
    #                              were never seen after its prefix in training, so V charges it for unseen tokens
    fusion_weight: float = 0.0  # final score = V + w * drafter score (LIGER-style fusion); 0 = rank by V alone
    exclude_history: bool = False  # never draft or list an item of the user's own history (targets never repeat)
    # learned final ranking (specgr.speculate.learned_rank): final score = these weights · the item's features
    # (drafter score, V, new flag, digit log-probs, new item's prefix length), fitted on valid by the tune stage's
    # "learned" variant; None = V (+ fusion_weight × drafter score). Acceptance stays V (+ bonus) > γ either way
    final_weights: tuple | None = None
    autocast: bool = True  # bf16 autocast for model calls on CUDA (ignored on CPU)
    # batched loop only, same lists either way: True = users with >= K accepted leave the active set after each round
    # (one host sync per round; saves compute when many exit early); False = static shapes, finished users masked in
    # place (no host sync inside the loop); None = False on CUDA, True elsewhere: on an H100 static shapes measured
    # 1.01-1.32x faster at every operating point (docs/RESULTS.md §4), on a CPU nothing waits for a sync
    compact: bool | None = None
    # memory bound of the per-round (users x N) prefix mask: users are drafted in chunks of <= this many elements,
    # so a 1M-item catalog never needs a (B, 1M) mask (and its int64 search temporaries) for the whole batch
    draft_chunk_elems: int = 1 << 27
    # batched loop only, same drafts either way: how a guided round finds the items under the user's beam prefixes,
    # for drafters with an embedding index. True = the items' ranges in the sorted semantic ids
    # (`SemanticIDs.prefix_items`), and a top-k over them alone; False = a (users x N) prefix mask and a top-k over
    # the whole catalog; None = ranges when there are at most N candidates (beams x the most items a prefix of that
    # length holds), i.e. unless one prefix holds a large share of the catalog (docs/RESULTS.md §4)
    draft_ranges: bool | None = None

    def __post_init__(self):
        # ValueErrors, not asserts: knob checks must survive `python -O`, and each names the fix
        if min(self.draft_size, self.num_beams, self.top_k) < 1:
            raise ValueError(f"δ (draft_size={self.draft_size}), β (num_beams={self.num_beams}) and K "
                             f"(top_k={self.top_k}) must be >= 1. Fix: pass values >= 1 (--delta, --beta, -k).")
        if not 1 <= self.max_rounds <= 4:
            raise ValueError(f"max_rounds={self.max_rounds}: one round per SID digit. Fix: use 1..4.")
        if self.redraft_from_round < 2:
            raise ValueError(f"redraft_from_round={self.redraft_from_round}: round 1 is always unconstrained. "
                             "Fix: use >= 2.")
        for name, allowed in (("accept_topk_by", ("score", "order")), ("length_rule", ("paper", "prefix_len")),
                              ("fill", ("paper",))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}. Fix: use one of {', '.join(allowed)}.")

        if self.final_weights is not None:
            from specgr.speculate.learned_rank import FEATURES

            self.final_weights = tuple(float(x) for x in self.final_weights)  # lists from JSON/YAML: hashable
            if len(self.final_weights) != len(FEATURES):
                raise ValueError(f"final_weights has {len(self.final_weights)} values; the learned final ranking "
                                 f"reads {len(FEATURES)} features {FEATURES}. Fix: fit them with the tune stage's "
                                 "'learned' variant (or specgr.speculate.learned_rank.fit_final_weights).")
            if self.fusion_weight:
                raise ValueError(f"fusion_weight={self.fusion_weight} with final_weights: the learned final score "
                                 "already weighs the drafter score. Fix: fusion_weight=0.")

    def compacts(self, device) -> bool:
        """Whether the batched loop compacts its active set on `device` (resolves compact=None)."""
        return self.compact if self.compact is not None else torch.device(device).type != "cuda"

    @classmethod
    def official_vnew(cls, drafter: str = "encoder", **kw) -> "SpecGRConfig":
        """The authors' later (v-new) loop flags (docs/METHOD.md §6, §7), minus its batching bugs (we keep per-user prefixes, no dups).

        drafter="encoder" (SpecGR++): prefix_len clamped at 3; "aux" (SpecGR_Aux): clamped at 2.
        """
        base = dict(redraft_from_round=3, accept_topk_by="order", length_rule="prefix_len",
                    min_len=3 if drafter == "encoder" else 2)
        base.update(kw)
        return cls(**base)

    def replace(self, **kw) -> "SpecGRConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    def uses_prefixes(self, rnd: int) -> bool:
        """Whether round `rnd` (1-based) drafts only under the beam prefixes of length rnd - 1."""
        return self.guided_redraft and rnd >= self.redraft_from_round
