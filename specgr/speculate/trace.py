"""Per-user traces of the SpecGR loop: what was drafted, how it was verified, which beam prefixes guided re-drafting,
and where every item of the final list came from. Built only with `recommend(..., trace=True)`.

Arrays are numpy on the host. Ids index the item catalog (0..N-1; ids >= n_in_sample are unseen/new items).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

# source codes of SpecGRResult.sources
SOURCE_NONE = -1  # empty slot (item -1)
SOURCE_ACCEPTED = 0  # drafted and accepted (V > γ)
SOURCE_FILL = 1  # drafted, rejected, used to fill up the list (scored by V)
SOURCE_BEAM = 2  # final constrained beam sequence that was never drafted (scored by beam logprob / 4)
SOURCE_NAMES = {SOURCE_NONE: "none", SOURCE_ACCEPTED: "accepted", SOURCE_FILL: "fill", SOURCE_BEAM: "beam"}


@dataclass
class RoundTrace:
    """One draft → verify round. n = number of items drafted this round (<= δ)."""

    round: int  # 1-based
    prefix_len: int  # length of the beam prefixes drafting was restricted to (0 = unconstrained)
    drafted: np.ndarray  # (n,) item ids in drafting order
    draft_scores: np.ndarray  # (n,) drafter scores
    verify_scores: np.ndarray  # (n,) V(x)
    accepted: np.ndarray  # (n,) bool, V > γ
    # beam after this round's beam step: guides the next round's re-draft (and, after the last round, the fill-up)
    beam_tokens: np.ndarray | None = None  # (P, L) SID token prefixes, L = round
    beam_scores: np.ndarray | None = None  # (P,) summed log-probs
    final_scores: np.ndarray | None = None  # (n,) learned final scores (only with SpecGRConfig.final_weights)


@dataclass
class UserTrace:
    rounds: list[RoundTrace] = field(default_factory=list)
    items: np.ndarray | None = None  # (k,) final list, best first (no -1)
    scores: np.ndarray | None = None  # (k,)
    sources: list[str] = field(default_factory=list)  # (k,) "accepted" | "fill" | "beam"
    is_new: np.ndarray | None = None  # (k,) bool, item is unseen (id >= n_in_sample)

    @property
    def n_rounds(self) -> int:
        return len(self.rounds)

    @property
    def n_drafted(self) -> int:
        return int(sum(len(r.drafted) for r in self.rounds))

    @property
    def n_accepted(self) -> int:
        return int(sum(int(r.accepted.sum()) for r in self.rounds))

    @property
    def acceptance_rate(self) -> float:
        return self.n_accepted / max(self.n_drafted, 1)

    def all_drafted(self) -> np.ndarray:
        return np.concatenate([r.drafted for r in self.rounds]) if self.rounds else np.zeros(0, np.int64)

    def all_accepted(self) -> np.ndarray:
        return np.concatenate([r.drafted[r.accepted] for r in self.rounds]) if self.rounds else np.zeros(0, np.int64)

    def summary(self) -> str:
        lines = [f"{self.n_rounds} rounds, {self.n_accepted}/{self.n_drafted} accepted "
                 f"({100 * self.acceptance_rate:.1f}%)"]
        for r in self.rounds:
            lines.append(f"  round {r.round}: prefixes of length {r.prefix_len}, drafted {len(r.drafted)}, "
                         f"accepted {int(r.accepted.sum())}")
        if self.items is not None:
            counts = {s: self.sources.count(s) for s in ("accepted", "fill", "beam")}
            lines.append(f"  final {len(self.items)} items: {counts}, new {int(self.is_new.sum())}")
        return "\n".join(lines)


@dataclass
class SpecGRResult:
    """Output of `recommend` for B users. Tensors live on the host after `recommend_rows`, on the device otherwise.

    items (B, K) item ids best first, -1 padded; scores (B, K) (V for drafted items, beam logprob / 4 for beam items,
    -inf in empty slots); sources (B, K) SOURCE_* codes; n_rounds, n_accepted, n_drafted (B,) counters.
    """

    items: torch.Tensor
    scores: torch.Tensor
    sources: torch.Tensor
    n_rounds: torch.Tensor
    n_accepted: torch.Tensor
    n_drafted: torch.Tensor
    traces: list[UserTrace] | None = None
    timing: dict | None = None  # recommend_rows: {"seconds", "n_rows", "recs_per_s", "device"}

    def __len__(self) -> int:
        return self.items.shape[0]

    def cpu(self) -> "SpecGRResult":
        t = [x.cpu() for x in (self.items, self.scores, self.sources, self.n_rounds, self.n_accepted, self.n_drafted)]
        return SpecGRResult(*t, traces=self.traces, timing=self.timing)

    @property
    def acceptance_rate(self) -> float:
        """Accepted / drafted over all users."""
        return float(self.n_accepted.sum()) / max(float(self.n_drafted.sum()), 1.0)

    def take(self, idx) -> "SpecGRResult":
        """The rows idx (B',) of every tensor (and trace), in that order; timing is dropped."""
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        t = [x[idx.to(x.device)] for x in (self.items, self.scores, self.sources, self.n_rounds, self.n_accepted,
                                           self.n_drafted)]
        return SpecGRResult(*t, traces=None if self.traces is None else [self.traces[int(i)] for i in idx])

    @staticmethod
    def cat(parts: list["SpecGRResult"]) -> "SpecGRResult":
        fields = ("items", "scores", "sources", "n_rounds", "n_accepted", "n_drafted")
        out = {f: torch.cat([getattr(p, f) for p in parts]) for f in fields}
        traces = None if any(p.traces is None for p in parts) else [t for p in parts for t in p.traces]
        return SpecGRResult(**out, traces=traces)
