"""Non-UI helpers of the Streamlit app: configuration, loading, one recommend call, tables, UMAP.

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
UMAP_SAMPLE = 3000  # UMAP is fitted once on at most this many items (all unseen items included)

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


def checkpoint_dataset(checkpoint: str) -> str | None:
    """The dataset name a bundle directory was trained on (None when there is no bundle there)."""
    import json

    cfg = Path(checkpoint) / "config.json"
    if not cfg.exists():
        return None
    try:
        return json.loads(cfg.read_text())["config"]["dataset"]
    except (ValueError, KeyError):
        return None


def load_bundle(checkpoint: str, data_root: str):
    """Bundle.load with friendly errors (LoadError carries the exact command that fixes the problem)."""
    from specgr.bundle import Bundle

    name = checkpoint_dataset(checkpoint)
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


def warm_up(b) -> None:
    """Build every drafter and run each recommender once, so the first interaction is as fast as the rest."""
    from specgr.speculate import SpecGRConfig

    h, hl = np.array([[0]]), np.array([1])
    for d in b.available_drafters:
        b.specgr(d, SpecGRConfig(**b.specgr_defaults.get(d, {}))).recommend(h, hl, trace=True)
    b.tiger_only(10).recommend(h, hl, k=10)


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
    from specgr.speculate import SpecGRConfig

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
    base = dict(b.specgr_defaults.get(drafter, {}))
    cfg = SpecGRConfig(**{**base, "threshold": float(gamma), "draft_size": int(delta), "num_beams": int(beta),
                          "top_k": int(k)})
    rec = b.specgr(drafter, cfg)
    t = time.perf_counter()
    r = rec.recommend(hist, hl, trace=True)
    ms = 1000 * (time.perf_counter() - t)
    tr = r.traces[0]
    return Run(tr, tr.items, tr.scores, list(tr.sources), ms, cfg)


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


def rounds_frame(b, trace, gamma: float) -> pd.DataFrame:
    """Every drafted item of every round: round, order, item, title, new, drafter score, V, accepted."""
    parts = []
    for r in trace.rounds:
        n = len(r.drafted)
        parts.append(pd.DataFrame({
            "round": r.round, "order": np.arange(1, n + 1), "item": r.drafted.astype(int),
            "title": [title(b, i, 70) for i in r.drafted], "new": r.drafted >= b.ds.n_in_sample,
            "drafter score": r.draft_scores.astype(float), "V (verify)": r.verify_scores.astype(float),
            "status": np.where(r.accepted, STATUS["accepted"], STATUS["rejected"])}))
    if not parts:
        return pd.DataFrame(columns=["round", "order", "item", "title", "new", "drafter score", "V (verify)",
                                     "status"])
    return pd.concat(parts, ignore_index=True)


def final_frame(b, run: Run, target: int | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"rank": np.arange(1, len(run.items) + 1), "item": run.items.astype(int),
                       "title": [title(b, i) for i in run.items], "SID": [sid_string(b, i) for i in run.items],
                       "source": [STATUS[x] for x in run.sources], "score": run.scores.astype(float),
                       "new": run.items >= b.ds.n_in_sample})
    if target is not None:
        df["🎯"] = np.where(df["item"] == int(target), "🎯 true next item", "")
    return df


# ---------------------------------------------------------------------------------------------------- embeddings
def spaces(b) -> dict[str, str]:
    """Embedding spaces for the explorer: key -> label."""
    out = {}
    if "encoder" in b.available_drafters:
        out["encoder"] = "drafter space: SpecGR++ item table"
    if "aux" in b.available_drafters:
        out["aux"] = "drafter space: SpecGR_Aux item table"
    out["text"] = "text space (sentence embeddings)"
    return out


def space_embeddings(b, space: str) -> np.ndarray:
    """(N, d) item embeddings of a space, including items added this session."""
    if space == "text":
        return np.asarray(b.all_text_embeddings(), np.float32)
    return b.drafter(space).item_embeddings().float().cpu().numpy()


def query_space(drafter: str) -> str:
    """The space a drafter's sequence (query) embedding lives in."""
    return {"encoder": "encoder", "aux": "aux", "knn": "text"}[drafter]


def umap_sample(n_items: int, n_in_sample: int, size: int = UMAP_SAMPLE, seed: int = 0) -> np.ndarray:
    """Sorted ids of the items UMAP is fitted on: every unseen item plus a random in-sample subsample."""
    new = np.arange(n_in_sample, n_items)
    k = max(0, min(n_in_sample, size - len(new)))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(n_in_sample, k, replace=False), new])).astype(np.int64)


class UmapMap:
    """UMAP fitted once on a subsample of one embedding space; other points are placed with `transform` and their
    coordinates cached (catalog items only: added items and queries are per session and recomputed)."""

    def __init__(self, emb: np.ndarray, ids: np.ndarray, n_catalog: int, seed: int = 0):
        import umap

        self.ids = ids
        self.n_catalog = n_catalog  # items of the catalog as loaded (coordinates of ids below are cacheable)
        n = len(ids)
        self.model = umap.UMAP(n_neighbors=min(15, max(2, n - 1)), min_dist=0.1, metric="cosine", random_state=seed,
                               n_epochs=200 if n > 500 else 300, init="spectral" if n > 50 else "random")
        t = time.perf_counter()
        self.xy = self.model.fit_transform(emb[ids]).astype(np.float32)
        self.fit_seconds = time.perf_counter() - t
        self.cache = {int(i): self.xy[j] for j, i in enumerate(ids)}

    def place(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        if len(vectors) == 0:
            return np.zeros((0, 2), np.float32)
        return self.model.transform(vectors).astype(np.float32)

    def coords(self, emb: np.ndarray, ids, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> (ids that got coordinates, (n, 2)); unknown ones are transformed (at most `limit` of them)."""
        ids = np.asarray(ids, np.int64)
        known = np.array([int(i) in self.cache for i in ids], bool)
        todo = ids[~known]
        if limit is not None:
            todo = todo[:limit]
        if len(todo):
            xy = self.place(emb[todo])
            for i, p in zip(todo.tolist(), xy):
                if i < self.n_catalog:
                    self.cache[i] = p
            extra = dict(zip(todo.tolist(), xy))
        else:
            extra = {}
        keep = [i for i in ids.tolist() if i in self.cache or i in extra]
        xy = np.array([self.cache[i] if i in self.cache else extra[i] for i in keep], np.float32).reshape(-1, 2)
        return np.asarray(keep, np.int64), xy


def query_vector(b, drafter: str, history: list[int]) -> np.ndarray:
    """(d,) the drafter's sequence embedding of the history (what it searches the item table with)."""
    import torch

    hist = torch.as_tensor(np.asarray(history, np.int64)[None, -20:])
    hl = torch.as_tensor([hist.shape[1]])
    with torch.inference_mode():
        q = b.drafter(drafter).query_embeddings(hist, hl)
    return q[0].float().cpu().numpy()


def add_new_item(b, title_text: str, description: str = "") -> int:
    """Embed -> semantic id -> every drafter (Bundle.add_items*). Uses TEXT_EMBEDDER when set (tests)."""
    title_text, description = (title_text or "").strip(), (description or "").strip()
    if not title_text:
        raise ValueError("A new item needs a title.")
    for d in b.available_drafters:  # build every drafter before the catalog grows (Bundle.add_items builds missing
        b.drafter(d)                # ones after growing the semantic ids, and the encoder drafter then refuses)
    if TEXT_EMBEDDER is None:
        return int(b.add_items([title_text], [description])[0])
    text = f"{title_text} {description}".strip()
    return int(b.add_items_from_embeddings([text], np.asarray(TEXT_EMBEDDER([text]), np.float32))[0])


# ---------------------------------------------------------------------------------------------------- results
def results_dir(results_root: str, dataset: str) -> Path:
    return Path(results_root) / dataset


def method_table(rdir: Path) -> pd.DataFrame:
    """results/<dataset>/<method>.json (shared evaluator output) -> one row per method."""
    import json

    rows = []
    for f in sorted(rdir.glob("*.json")):
        try:
            d = json.loads(f.read_text())
        except ValueError:
            continue
        if not isinstance(d, dict) or "overall" not in d:
            continue
        rows.append({"method": d.get("method", f.stem), "recall@10": d["overall"].get("recall@10"),
                     "ndcg@10": d["overall"].get("ndcg@10"), "recall@50": d["overall"].get("recall@50"),
                     "ndcg@50": d["overall"].get("ndcg@50"),
                     "in-sample recall@50": d.get("in_sample", {}).get("recall@50"),
                     "unseen recall@50": d.get("unseen", {}).get("recall@50"),
                     "acceptance rate": d.get("mean_acceptance_rate"), "rounds": d.get("mean_rounds"),
                     "recs/s": d.get("recs_per_s"), "device": d.get("device")})
    return pd.DataFrame(rows)
