"""Non-UI helpers of the Streamlit app: configuration, loading, one recommend call, tables
and charts.

Everything model-related goes through the specgr API (Bundle, SpecGR, TigerOnly); this module only shapes inputs and
outputs for display. Kept free of Streamlit widgets so it is easy to test and to time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_CHECKPOINT = "checkpoints/amazon2018-game"
DEFAULT_DATA_ROOT = "data/processed"
NEW_BADGE = "🆕"
DRAFTER_LABELS = {"encoder": "SpecGR++ (encoder drafter)", "aux": "SpecGR_Aux (text drafter)",
                  "knn": "semantic-KNN (plug-and-play)"}
STATUS = {"accepted": "✅ accepted", "rejected": "❌ rejected", "fill": "🟡 fill-in", "beam": "🔷 beam"}

# (checkpoint, data_root) -> the drafters already built and run once in this server process (the page says "loading"
# at the top only while something is still cold)
WARM: dict[tuple[str, str], set[str]] = {}
MAP_POINTS = 4000  # background points drawn in the embedding map (every unseen item, a sample of the rest)

# Text embedder for brand-new items: None = the bundle's sentence-transformers model (Bundle.add_items). Tests (whose
# fixture bundle has a fake text model) set this to fn(list[str]) -> (M, d) float32 array.
TEXT_EMBEDDER = None


def settings() -> dict:
    """App configuration from the environment (tests point these at a fixture bundle)."""
    return {"checkpoint": os.environ.get("SPECGR_CHECKPOINT", DEFAULT_CHECKPOINT),
            "data_root": os.environ.get("SPECGR_DATA_ROOT", DEFAULT_DATA_ROOT),
            "results_root": os.environ.get("SPECGR_RESULTS", "results")}


# ---------------------------------------------------------------------------------------------------- loading
class LoadError(Exception):
    """A bundle that cannot be loaded, with the command that fixes it."""

    def __init__(self, message: str, command: str):
        super().__init__(message)
        self.command = command


def checkpoint_dataset(checkpoint: str, data_root: str = DEFAULT_DATA_ROOT) -> str | None:
    """The name of the processed dataset a bundle directory was exported from, i.e. its folder under data_root and
    its results/<name>/ (None when there is no readable bundle there)."""
    from specgr.bundle import dataset_folder

    try:
        folder = dataset_folder(checkpoint, data_root)
    except (ValueError, KeyError):
        return None
    return None if folder is None else folder.name


def load_bundle(checkpoint: str, data_root: str):
    """Bundle.load with friendly errors (LoadError carries the exact command that fixes the problem)."""
    from specgr.bundle import Bundle

    name = checkpoint_dataset(checkpoint, data_root)
    if name is None:
        demo = Path(checkpoint).resolve() == Path(DEFAULT_CHECKPOINT).resolve()
        cmd = (f"git checkout -- {DEFAULT_CHECKPOINT}   # the shipped demo checkpoint (git lfs pull if it is a pointer)"
               if demo else f"specgr pipeline --dataset <name> --export {checkpoint}")
        raise LoadError(f"No SpecGR checkpoint at `{checkpoint}` (no config.json).", cmd)
    if not (Path(data_root) / name / "manifest.json").exists():
        cmd = f"specgr prepare --dataset {name}"
        if Path(data_root).resolve() != Path(DEFAULT_DATA_ROOT).resolve():
            cmd += f" --out {data_root}"
        elif name == "amazon2018-game":
            cmd += "   # or simply: make demo"
        raise LoadError(f"The checkpoint needs the processed dataset `{name}`, which is missing under `{data_root}`.",
                        cmd)
    try:
        b = Bundle.load(checkpoint, data_root=data_root)
        b.text_embeddings()  # the Aux and KNN drafters need them: a prepare stopped early has none
    except (FileNotFoundError, ValueError, KeyError) as e:
        msg = str(e)
        cmd = msg.split("Fix:", 1)[1].strip() if "Fix:" in msg else f"specgr prepare --dataset {name}"
        raise LoadError(msg.split("Fix:", 1)[0].strip(), cmd.strip("` .")) from e
    return b


def warm_up(b, drafter: str) -> None:
    """Build one drafter and run its recommender once, so its first interaction is as fast as the rest (the other
    drafters are built when first chosen: a second or so each, instead of all at start)."""
    h, hl = np.array([[0]]), np.array([1])
    b.recommend(h, hl, drafter, trace=True)
    b.tiger_only(10).recommend(h, hl, k=10)


def tuned_knobs(b, drafter: str, delta_max: int) -> dict:
    """The sliders' values tuned for `drafter` (stored in the bundle), clipped to the sliders' ranges."""
    t = b.specgr_defaults.get(drafter, {})
    return {"gamma": float(np.clip(round(t.get("threshold", -1.4), 1), -8.0, 0.0)),
            "delta": int(np.clip(t.get("draft_size", 50), 1, delta_max)),
            "beta": int(np.clip(t.get("num_beams", 30), 1, 100)),
            "k": int(np.clip(t.get("top_k", 50), 1, min(100, b.ds.n_items)))}


def knobs_text(knobs: dict) -> str:
    return f"γ {knobs['gamma']:.1f} · δ {knobs['delta']} · β {knobs['beta']} · K {knobs['k']}"


# ---------------------------------------------------------------------------------------------------- catalog
def titles(b) -> np.ndarray:
    """All catalog titles as a numpy array (cached on the bundle; refreshed when items are added)."""
    cache = getattr(b, "_app_titles", None)
    if cache is None or len(cache) != b.ds.n_items:
        cache = b.ds.items["text"].astype(str).to_numpy()
        b._app_titles = cache
    return cache


def title(b, i: int, width: int = 90) -> str:
    t = titles(b)[int(i)]
    t = t if len(t) <= width else t[: width - 1] + "…"
    return f"{NEW_BADGE} {t}" if int(i) >= b.ds.n_in_sample else t


def is_new(b, i: int) -> bool:
    return int(i) >= b.ds.n_in_sample


def search_titles(b, query: str, limit: int = 50) -> list[int]:
    """Item ids whose title contains every word of `query` (case-insensitive), best (shortest title) first."""
    words = [w for w in query.lower().split() if w]
    if not words:
        return []
    low = lower_titles(b)
    m = np.ones(len(low), bool)
    for w in words:
        m &= low.str.contains(w, regex=False).to_numpy()
    ids = np.flatnonzero(m)
    if len(ids) > limit:
        ids = ids[np.argsort(low.str.len().to_numpy()[ids], kind="stable")[:limit]]
    return ids.tolist()


def lower_titles(b) -> pd.Series:
    n = b.ds.n_items
    cache = getattr(b, "_app_lower_titles", None)
    if cache is None or len(cache) != n:
        cache = b.ds.items["text"].astype(str).str.lower()
        b._app_lower_titles = cache
    return cache


def sid_string(b, i: int) -> str:
    return "⟨" + ", ".join(str(int(c)) for c in b.sids.codes[int(i)].tolist()) + "⟩"


def prefix_string(b, tokens) -> str:
    """SID token prefix (L,) -> '⟨c0, c1, …⟩' codes."""
    codes = [int(t) - b.sids.digit_range(d)[0] for d, t in enumerate(np.asarray(tokens).tolist())]
    return "⟨" + ", ".join(map(str, codes)) + (", …⟩" if len(codes) < 4 else "⟩")


# ---------------------------------------------------------------------------------------------------- recommend
@dataclass
class Run:
    """One recommend call for the current history, as the app shows it."""

    trace: object | None  # UserTrace (SpecGR) or None (TIGER-only)
    items: np.ndarray
    scores: np.ndarray
    sources: list[str]
    ms: float
    cfg: object | None


def recommend(b, history: list[int], drafter: str, gamma: float, delta: int, beta: int, k: int,
              tiger_only: bool = False) -> Run:
    """The app's one model call per interaction. Raises ValueError with a friendly message on bad input."""
    from specgr.recommenders import validate_history

    hist = np.asarray(history, dtype=np.int64)[None, -20:]  # the models see the last 20 items (max_history)
    hl = np.array([hist.shape[1]])
    if hist.shape[1] == 0:
        raise ValueError("The history is empty: add at least one item (search the catalog above, or load a real "
                         "test user).")
    validate_history(hist, hl, b.ds.n_items)
    if tiger_only:
        rec = b.tiger_only(num_beams=max(beta, k))
        t = time.perf_counter()
        r = rec.recommend(hist, hl, k=k)
        ms = 1000 * (time.perf_counter() - t)
        items = r.items[0].cpu().numpy()
        ok = items >= 0
        return Run(None, items[ok], r.scores[0].cpu().numpy()[ok], ["beam"] * int(ok.sum()), ms, None)
    cfg = b.specgr_config(drafter, threshold=float(gamma), draft_size=int(delta), num_beams=int(beta), top_k=int(k))
    rec = b.specgr(drafter, cfg)
    t = time.perf_counter()
    r = rec.recommend(hist, hl, trace=True)
    ms = 1000 * (time.perf_counter() - t)
    tr = r.traces[0]
    return Run(tr, tr.items, tr.scores, list(tr.sources), ms, cfg)


def new_item_hint(run: Run, item: int, tiger_only: bool) -> str:
    """Why an added item is not in the list, and what would change that: true for the run's own configuration (the
    final list ranks accepted items by score = V (+ new-item bonus) (+ fusion weight x drafter score), or by the learned
    final score)."""
    if tiger_only:
        return "It is not recommended: TIGER-only never recommends new items (it cannot generate unseen ids)."
    tr, cfg = run.trace, run.cfg
    for r in tr.rounds:
        hit = np.flatnonzero(r.drafted == item)
        if hit.size:
            j = hit[0]
            if not r.accepted[j]:
                return (f"It was drafted in round {r.round} but the verifier rejected it (V = {r.verify_scores[j]:.2f} "
                        f"≤ γ = {cfg.threshold}): a lower γ accepts it"
                        + ("." if cfg.new_item_bonus else ", and so would a new-item bonus (SpecGRConfig."
                           "new_item_bonus)."))
            if cfg.final_weights is not None:
                return ("It was accepted but ranked below the top K: the list ranks by the learned final score "
                        f"({r.final_scores[j]:.2f} here), fitted on valid over the drafter score, V and the item's "
                        "digit log-probs; a history of items more like it lifts it.")
            return ("It was accepted but ranked below the top K: " +
                    ("the list ranks by V, so a lower γ does not help; a new-item bonus or fusion with the drafter "
                     "score (the 'fair' settings) can lift it." if not cfg.fusion_weight else
                     f"the list ranks by V + {cfg.fusion_weight:g} × drafter score, and the drafter itself ranks it "
                     f"at {j + 1} of round {r.round}: a history of items more like it lifts it."))
    return ("The drafter did not propose it for this history (so the verifier never saw it): try a history of "
            "similar items, or more drafts per round (δ).")


def slider_warnings(delta: int, beta: int, k: int, max_rounds: int = 4) -> list[str]:
    """Friendly notes on slider combinations that cannot do what they ask."""
    out = []
    if k > delta * max_rounds:
        out.append(f"K = {k} is more than δ × rounds = {delta} × {max_rounds} = {delta * max_rounds} drafts: SpecGR "
                   f"can accept at most {delta * max_rounds} items, the rest of the list comes from fill-in and "
                   "the final beam.")
    if k > beta + delta * max_rounds:
        out.append(f"K = {k} exceeds everything a round can produce (δ·{max_rounds} + β = "
                   f"{delta * max_rounds + beta}): the list may come back shorter than K. Raise δ or β.")
    return out


ROUND_COLUMNS = ["status", "round", "order", "item", "title", "new", "drafter score", "V (verify)"]


def rounds_frame(b, trace, gamma: float) -> pd.DataFrame:
    """Every drafted item of every round, status (accepted/rejected) first: status, round, order, item, title, new,
    drafter score, V."""
    parts = []
    for r in trace.rounds:
        n = len(r.drafted)
        parts.append(pd.DataFrame({
            "status": np.where(r.accepted, STATUS["accepted"], STATUS["rejected"]), "round": r.round,
            "order": np.arange(1, n + 1), "item": r.drafted.astype(int),
            "title": [title(b, i, 70) for i in r.drafted], "new": r.drafted >= b.ds.n_in_sample,
            "drafter score": r.draft_scores.astype(float), "V (verify)": r.verify_scores.astype(float)}))
    if not parts:
        return pd.DataFrame(columns=ROUND_COLUMNS)
    return pd.concat(parts, ignore_index=True)[ROUND_COLUMNS]


def final_frame(b, run: Run, target: int | None = None) -> pd.DataFrame:
    """The final top-K, where each item came from first: source, rank, title, score, new, item, SID (+ 🎯)."""
    df = pd.DataFrame({"source": [STATUS[x] for x in run.sources], "rank": np.arange(1, len(run.items) + 1),
                       "title": [title(b, i) for i in run.items], "score": run.scores.astype(float),
                       "new": run.items >= b.ds.n_in_sample, "item": run.items.astype(int),
                       "SID": [sid_string(b, i) for i in run.items]})
    if target is not None:
        df["🎯"] = np.where(df["item"] == int(target), "🎯 true next item", "")
    return df


def verify_chart(df, gamma: float, delta: int) -> dict:
    """Verification score of every draft per round, with the γ line. A plain plotly figure dict: building
    graph objects costs ~50 ms per interaction, the dict almost nothing. One trace per (status, new): a trace's
    legend shows its first point's marker, so mixing stars and circles in one trace gave a starred legend entry."""
    data = []
    for status, color in ((STATUS["accepted"], "#2ca02c"), (STATUS["rejected"], "#d62728")):
        for new in (False, True):
            d = df[(df["status"] == status) & (df["new"] == new)]
            if d.empty:
                continue
            x = d["round"].to_numpy() + (d["order"].to_numpy() - 0.5) / max(delta, 1) * 0.7 - 0.35  # drafting order
            name = f"{status} · {NEW_BADGE} new" if new else status
            data.append(dict(
                type="scatter", x=x.tolist(), y=d["V (verify)"].round(4).tolist(), mode="markers", name=name,
                marker=dict(color=color, size=12 if new else 7, symbol="star" if new else "circle",
                            line=dict(width=0.5, color="#ffffff")),
                text=d["title"].tolist(), customdata=d["drafter score"].round(3).tolist(),
                hovertemplate="%{text}<br>V = %{y:.3f} · drafter score %{customdata}<extra>" + name + "</extra>"))
    n = int(df["round"].max()) if len(df) else 1
    layout = dict(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.1),
                  xaxis=dict(title=dict(text="round (points in drafting order; ★ = new item)"),
                             tickvals=list(range(1, n + 1)), range=[0.5, n + 0.5]),
                  yaxis=dict(title=dict(text="verification score V")),
                  shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=gamma, y1=gamma,
                               line=dict(dash="dash", color="#555555", width=2))],
                  annotations=[dict(xref="paper", x=0.01, y=gamma, text=f"γ = {gamma:.1f}", showarrow=False,
                                    yshift=10, xanchor="left")])
    return dict(data=data, layout=layout)


def new_item_counts(b, run: Run) -> tuple[int, int]:
    """(new items in the final list, new items the drafter proposed in any round)."""
    in_list = int((run.items >= b.ds.n_in_sample).sum())
    drafted = int((run.trace.all_drafted() >= b.ds.n_in_sample).sum()) if run.trace is not None else 0
    return in_list, drafted


# ---------------------------------------------------------------------------------------------------- embeddings
def query_space(drafter: str) -> str:
    """The space a drafter's sequence (query) embedding lives in."""
    return {"encoder": "encoder", "aux": "aux", "knn": "text"}[drafter]


def map_sample(n_items: int, n_in_sample: int, size: int = MAP_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted ids drawn as the map's background: every unseen item plus a fixed random in-sample subsample (all
    16.9k points would make every rerun of the explorer send ~1 MB of titles)."""
    new = np.arange(n_in_sample, n_items)
    k = max(0, min(n_in_sample, size - len(new)))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(n_in_sample, k, replace=False), new])).astype(np.int64)


def query_vector(b, drafter: str, history: list[int]) -> np.ndarray:
    """(d,) the drafter's sequence embedding of the history (what it searches the item table with)."""
    import torch

    hist = torch.as_tensor(np.asarray(history, np.int64)[None, -20:])
    hl = torch.as_tensor([hist.shape[1]])
    with torch.inference_mode():
        q = b.drafter(drafter).query_embeddings(hist, hl)
    return q[0].float().cpu().numpy()


def new_item_text(title_text: str, description: str = "") -> str:
    """The catalog text of a new item: its title, then " — " and the description (so the two do not run together)."""
    title_text, description = (title_text or "").strip(), (description or "").strip()
    if not title_text:
        raise ValueError("A new item needs a title.")
    return f"{title_text} — {description}" if description else title_text


def add_new_item(b, title_text: str, description: str = "") -> int:
    """Embed -> semantic id -> every drafter (Bundle.add_items*). Uses TEXT_EMBEDDER when set (tests)."""
    text = new_item_text(title_text, description)
    for d in b.available_drafters:  # build every drafter before the catalog grows (Bundle.add_items builds missing
        b.drafter(d)                # ones after growing the semantic ids, and the encoder drafter then refuses)
    if TEXT_EMBEDDER is None:
        return int(b.add_items([text])[0])
    return int(b.add_items_from_embeddings([text], np.asarray(TEXT_EMBEDDER([text]), np.float32))[0])


# ---------------------------------------------------------------------------------------------------- results
def results_dir(results_root: str, dataset: str) -> Path:
    return Path(results_root) / dataset


# flatten_result's keys -> the results table's column names
TABLE_COLUMNS = {"overall_recall@10": "recall@10", "overall_ndcg@10": "ndcg@10", "overall_recall@50": "recall@50",
                 "overall_ndcg@50": "ndcg@50", "in_sample_recall@50": "in-sample recall@50",
                 "unseen_recall@50": "unseen recall@50", "acceptance_rate": "acceptance rate", "rounds": "rounds",
                 "recs_per_s": "recs/s"}


def method_table(rdir: Path) -> pd.DataFrame:
    """results/<dataset>/<method>.json (shared evaluator output) -> one row per method."""
    import json

    from specgr.evaluate import GROUPS, flatten_result

    rows = []
    for f in sorted(rdir.glob("*.json")):
        try:
            d = json.loads(f.read_text())
        except ValueError:
            continue
        if not isinstance(d, dict) or not all(g in d for g in GROUPS):  # tune.json, stage records, ...
            continue
        flat = flatten_result(d)
        rows.append({"method": d.get("method", f.stem), **{name: flat.get(key) for key, name in TABLE_COLUMNS.items()},
                     "device": d.get("device")})
    return pd.DataFrame(rows)
