"""SpecGR live demo: build a history, watch drafting and verification, tune γ/δ/β/K, explore the embeddings in UMAP and
add a brand-new item without retraining.

    streamlit run app/main.py --server.address 127.0.0.1        # or: make demo

Configuration (environment): SPECGR_CHECKPOINT (default checkpoints/amazon2018-game), SPECGR_DATA_ROOT (default
data/processed), SPECGR_RESULTS (default results).

Layout: the answer first (key numbers and the top of the list, where a slider change is seen), then the history
that produced it, then the details (rounds, embedding map, adding an item).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import streamlit as st

st.set_page_config(page_title="SpecGR demo", page_icon="🔮", layout="wide")
BOOT = st.empty()  # the top of the page: start-up progress goes here
if "helpers" not in sys.modules:  # the server's first run: PyTorch and the app's modules are still to be imported
    BOOT.info("⏳ Starting the SpecGR demo: importing PyTorch…")

import os  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers as H  # noqa: E402
from views import results as results_view  # noqa: E402

from specgr import projection  # noqa: E402

KNOBS = ("gamma", "delta", "beta", "k")
# Streamlit's default top padding (6rem) pushes the key numbers down: keep more of the answer on the first screen
TIGHT_TOP = "<style>[data-testid='stMainBlockContainer'] {padding-top: 2.5rem;}</style>"
TOP_N = 5  # recommendations shown above the fold
VIEWS = ["🔮 Speculation rounds", "🗺️ Embedding explorer", "🆕 Add a new item"]


# ---------------------------------------------------------------------------------------------------- resources
@st.cache_resource(show_spinner=False)
def shared_bundle(checkpoint: str, data_root: str):
    """The bundle every session reads (never mutated: a session that adds items gets its own copy)."""
    return H.load_bundle(checkpoint, data_root)


@st.cache_resource(show_spinner=False)
def warm_drafter(checkpoint: str, data_root: str, drafter: str) -> bool:
    """Build one drafter of the shared bundle and run it once (once per server and drafter)."""
    H.warm_up(shared_bundle(checkpoint, data_root), drafter)
    return True


@st.cache_resource(show_spinner=False)
def umap_map(checkpoint: str, data_root: str, space: str) -> projection.Map2D:
    """The 2-D map of one embedding space: shipped with the bundle, or (older bundles) fitted once per server."""
    b = shared_bundle(checkpoint, data_root)
    return projection.Map2D.load(b, space) or projection.Map2D.fit(b, space)


def bundle():
    """This session's bundle: the shared one, or a private copy once the session has added items."""
    return st.session_state.get("private_bundle") or shared_bundle(CFG["checkpoint"], CFG["data_root"])


# ---------------------------------------------------------------------------------------------------- state
def apply_knobs(knobs: dict):
    for k in KNOBS:
        st.session_state[k] = knobs[k]


def reset_sliders():
    apply_knobs(H.tuned_knobs(B, st.session_state.drafter, DELTA_MAX))


def switch_drafter():
    """Each drafter keeps its own slider values (its tuned ones at first): V is on another scale per verifier."""
    s = st.session_state
    s.knobs_by_drafter[s.shown_drafter] = {k: s[k] for k in KNOBS}
    first = s.drafter not in s.knobs_by_drafter
    knobs = s.knobs_by_drafter.get(s.drafter) or H.tuned_knobs(B, s.drafter, DELTA_MAX)
    apply_knobs(knobs)
    s.shown_drafter = s.drafter
    s.knob_note = (f"Sliders now hold {H.DRAFTER_LABELS[s.drafter]}'s {'tuned' if first else 'last'} values: "
                   f"{H.knobs_text(knobs)}. Switching back restores the other drafter's.")


def set_history(items, target=None, row=None):
    st.session_state.history = [int(i) for i in items]
    st.session_state.target = None if target is None else int(target)
    st.session_state.target_history = list(st.session_state.history) if target is not None else None
    st.session_state.loaded_row = row


def load_user(row: int | None = None):
    s = st.session_state
    rows = B.ds.rows("test")
    if row is None:
        row = int(np.random.default_rng().integers(len(rows)))
        s.user_row = row
    if not 0 <= int(row) < len(rows):
        s.history_note = (f"Row {int(row):,} does not exist: the test split has {len(rows):,} rows "
                          f"(0 to {len(rows) - 1:,}). The history was not changed.")
        return
    row = int(row)
    set_history(rows.history[row, : rows.hist_len[row]], rows.target[row], row)


def add_to_history(i):
    if i is None:
        return
    s = st.session_state
    h = s.history
    if int(i) in h:
        s.history_note = f"“{H.title(B, i, 60)}” is already in the history (position {h.index(int(i)) + 1})."
        return
    if len(h) >= 20:
        s.history_note = f"The models read the last 20 items: the oldest, “{H.title(B, h[0], 60)}”, was dropped."
    s.history = [*h, int(i)][-20:]


def move(j: int, step: int):
    h = st.session_state.history
    k = j + step
    if 0 <= k < len(h):
        h[j], h[k] = h[k], h[j]


def remove(j: int):
    del st.session_state.history[j]


def remove_added(i: int):
    """Take an item added this session out of the catalog: rebuild the session's copy with the others."""
    s = st.session_state
    keep = [a for a in s.added if a != i]
    meta = {a: s.added_meta[a] for a in keep}
    s.history = [h for h in s.history if h != i]
    s.pop("private_bundle", None)
    s.added, s.added_meta = [], {}
    if s.get("last_added") == i:
        s.last_added = None
    remap = {}
    for old in keep:
        new = H.add_new_item(private_bundle(), *meta[old])
        remap[old] = new
        s.added.append(new)
        s.added_meta[new] = meta[old]
    s.history = [remap.get(h, h) for h in s.history]
    if s.get("last_added") in remap:
        s.last_added = remap[s.last_added]


def private_bundle():
    if "private_bundle" not in st.session_state:
        st.session_state.private_bundle = H.load_bundle(CFG["checkpoint"], CFG["data_root"])
    return st.session_state.private_bundle


# ---------------------------------------------------------------------------------------------------- sections
def sidebar():
    s = st.session_state
    sb = st.sidebar
    sb.title("🔮 SpecGR")
    sb.caption("Speculative generative recommendation: a drafter proposes, the generative model verifies.")
    sb.radio("Drafter", DRAFTERS, format_func=H.DRAFTER_LABELS.get, key="drafter", on_change=switch_drafter,
             help="SpecGR++ drafts with its own encoder; SpecGR_Aux with a text sequence model; semantic-KNN with "
                  "the text embedding of the last item. Each drafter keeps its own slider values.")
    if s.get("knob_note"):
        sb.info(s.pop("knob_note"), icon="🎚️")
    sb.toggle("TIGER only (plain beam search)", key="tiger_only",
              help="Constrained beam search over in-sample semantic IDs: it can never recommend a new item.")
    sb.slider("γ — acceptance threshold", -8.0, 0.0, step=0.1, key="gamma",
              help="A draft is accepted when its verification score V (mean per-token log-likelihood) exceeds γ.")
    sb.slider("δ — drafts per round", 1, DELTA_MAX, key="delta")
    sb.slider("β — beam width (guides re-drafting)", 1, 100, key="beta")
    sb.slider("K — recommendations", 1, min(100, B.ds.n_items), key="k")
    sb.button("↺ Tuned values for this drafter", on_click=reset_sliders, width="stretch",
              help=H.knobs_text(H.tuned_knobs(B, s.drafter, DELTA_MAX)))
    n_new = B.ds.n_items - B.ds.n_in_sample
    sb.divider()
    sb.caption(f"Checkpoint `{CFG['checkpoint']}` · dataset `{B.ds.name}`  \n"
               f"Catalog: **{B.ds.n_items:,} items** ({n_new:,} {H.NEW_BADGE} unseen during training"
               + (f", {len(s.added)} added this session" if s.added else "") + ")")


def current_run():
    """The one recommend call of this interaction (None on an empty history or bad input)."""
    s = st.session_state
    if not s.history:
        return None
    try:
        return H.recommend(B, s.history, s.drafter, s.gamma, s.delta, s.beta, s.k, tiger_only=s.tiger_only)
    except ValueError as e:
        st.warning(str(e), icon="✋")
        return None


def summary(run):
    """Above the fold: the key numbers and the top of the list, so a slider change is seen at once."""
    s = st.session_state
    for w in H.slider_warnings(s.delta, s.beta, s.k):
        st.warning(w, icon="⚠️")
    if run is None:
        if not s.history:
            st.info("The history is empty: search the catalog below and add items, or load a real test user.",
                    icon="👇")
        return
    n_new, n_new_drafted = H.new_item_counts(B, run)
    c = st.columns(5)
    if run.trace is None:  # TIGER only
        c[0].metric("Method", "TIGER beam")
        c[1].metric("Beam width", max(s.beta, s.k))
        c[3].metric("Latency (recommend)", f"{run.ms:.0f} ms")
    else:
        tr = run.trace
        c[0].metric("Accepted / drafted", f"{tr.n_accepted} / {tr.n_drafted}")
        c[1].metric("Acceptance rate", f"{100 * tr.acceptance_rate:.1f} %")
        c[2].metric("Rounds", tr.n_rounds)
        c[3].metric("Latency (recommend)", f"{run.ms:.0f} ms")
    c[4].metric(f"{H.NEW_BADGE} new items in top-{len(run.items)}", n_new,
                help=None if run.trace is None else f"The drafter proposed {n_new_drafted} new items in all rounds.")
    left, right = st.columns([3, 2], gap="large")
    with left:
        top = H.final_frame(B, run, s.target).head(TOP_N)
        cols = ["source", "rank", "title", "new"] + (["🎯"] if "🎯" in top and top["🎯"].any() else [])
        st.dataframe(top[cols], hide_index=True, key="top_table", column_config=TABLE_COLS, width="stretch")
    with right:
        target_note(run)
        if run.trace is None:
            tiger_only_note(run)
        else:
            counts = {k: run.sources.count(k) for k in ("accepted", "fill", "beam")}
            st.caption(f"Top-{len(run.items)} sources: " + " · ".join(f"{H.STATUS[k]} {v}" for k, v in counts.items())
                       + ". Details and every draft: **Speculation rounds** below.")


def tiger_only_note(run):
    s = st.session_state
    spec = H.recommend(B, s.history, s.drafter, s.gamma, s.delta, s.beta, s.k)
    spec_new, spec_drafted = H.new_item_counts(B, spec)
    name = H.DRAFTER_LABELS[s.drafter]
    if spec_new:
        st.info(f"Plain constrained beam search decodes only the semantic IDs of in-sample items: no new item. "
                f"SpecGR ({name}) with this history and these settings recommends **{spec_new}**.")
    else:
        st.info(f"Plain constrained beam search decodes only the semantic IDs of in-sample items: no new item. "
                f"SpecGR ({name}) can: its drafter proposed **{spec_drafted}** new items for this history, but the "
                "verifier accepted none of them at this γ.")


def target_note(run):
    s = st.session_state
    if s.target is None or s.history != s.target_history:
        return
    hit = np.flatnonzero(run.items == s.target)
    name = H.title(B, s.target)
    if len(hit):
        st.success(f"🎯 Hit: the true next item **{name}** is at rank {int(hit[0]) + 1} of {len(run.items)}.")
    else:
        st.warning(f"Miss: the true next item **{name}** is not in the top {len(run.items)}.")


def history_builder():
    s = st.session_state
    st.subheader("1 · History")
    left, right = st.columns([3, 2], gap="large")
    with left:
        q = st.text_input("Search the catalog by title", key="search", placeholder="type a few letters, e.g. zelda")
        matches = H.search_titles(B, q) if q else []
        if q and not matches:
            st.caption("No title contains all of those words.")
        if matches:
            c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
            pick = c1.selectbox(f"{len(matches)} match(es)", matches, format_func=lambda i: H.title(B, i),
                                key="pick")
            c2.button("➕ Add", on_click=add_to_history, args=(pick,), key="add_pick", width="stretch")
    with right:
        n_rows = len(B.ds.rows("test"))
        c1, c2, c3 = st.columns([2, 2, 2], vertical_alignment="bottom")
        row = c1.number_input(f"Real test user (row 0–{n_rows - 1:,})", min_value=0, key="user_row", step=1)
        c2.button("Load user", on_click=load_user, args=(row,), key="load_user", width="stretch")
        c3.button("🎲 Random", on_click=load_user, key="random_user", width="stretch")
        if s.target is not None:
            st.caption(f"True next item: **{H.title(B, s.target)}**")
    if s.get("history_note"):
        st.warning(s.pop("history_note"), icon="✋")
    h = s.history
    if not h:
        return
    with st.expander(f"Current history: {len(h)} item(s), oldest first · last: {H.title(B, h[-1], 60)}",
                     expanded=False):
        for j, i in enumerate(h):
            c = st.columns([0.5, 8, 0.6, 0.6, 0.6], vertical_alignment="center")
            c[0].markdown(f"**{j + 1}.**")
            c[1].markdown(f"{H.title(B, i)} <span style='color:gray'>#{i} {H.sid_string(B, i)}</span>",
                          unsafe_allow_html=True)
            c[2].button("↑", key=f"up_{j}", on_click=move, args=(j, -1), disabled=j == 0)
            c[3].button("↓", key=f"down_{j}", on_click=move, args=(j, 1), disabled=j == len(h) - 1)
            c[4].button("✕", key=f"rm_{j}", on_click=remove, args=(j,))
        st.button("Clear history", key="clear_history", on_click=set_history, args=([],))


TABLE_COLS = {"new": st.column_config.CheckboxColumn("🆕", width="small"),
              "item": st.column_config.NumberColumn(format="%d", width="small"),
              "rank": st.column_config.NumberColumn(format="%d", width="small"),
              "score": st.column_config.NumberColumn(format="%.3f"),
              "drafter score": st.column_config.NumberColumn(format="%.3f"),
              "V (verify)": st.column_config.NumberColumn(format="%.3f")}


def speculation_view(run):
    s = st.session_state
    if run is None:
        st.caption("Nothing to show until the history holds an item.")
        return
    if run.trace is None:  # TIGER only
        st.markdown(f"**Top-{len(run.items)} (TIGER beam search)**")
        st.dataframe(H.final_frame(B, run, s.target), hide_index=True, height=380, key="final_table",
                     column_config=TABLE_COLS)
        return
    tr = run.trace
    df = H.rounds_frame(B, tr, s.gamma)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown("**Verification score of every draft, per round** (accepted above the γ line)")
        st.plotly_chart(H.verify_chart(df, s.gamma, s.delta), width="stretch", key="verify_chart")
    with right:
        c = run.cfg
        if c is not None and c.final_weights is not None:
            by = "the learned final score"
        elif c is not None and c.fusion_weight:
            by = f"V + {c.fusion_weight:g} × drafter score"
        else:
            by = "V"
        st.markdown(f"**Final top-{len(run.items)}**, ranked by {by}: source (accepted draft, fill-in, or final "
                    "beam) first")
        st.dataframe(H.final_frame(B, run, s.target), hide_index=True, height=380, key="final_table",
                     column_config=TABLE_COLS)
    st.markdown("**Rounds**: every draft (accepted/rejected, drafter score, verification V) and the beam prefixes "
                "that guide the next round's re-draft")
    options = ["All rounds"] + [f"Round {r.round}" for r in tr.rounds]
    pick = st.segmented_control("Round", options, default="All rounds", key="round_pick",
                                label_visibility="collapsed") or "All rounds"
    if pick == "All rounds":
        st.dataframe(df, hide_index=True, height=300, column_config=TABLE_COLS, key="rounds_table")
        return
    r = tr.rounds[int(pick.split()[1]) - 1]
    prev = tr.rounds[r.round - 2] if r.round > 1 else None
    n_prefixes = len(prev.beam_tokens) if prev is not None and prev.beam_tokens is not None else 0
    how = f"restricted to the {n_prefixes} beam prefixes of length {r.prefix_len}" if r.prefix_len else "unconstrained"
    st.caption(f"Round {r.round}: drafted {len(r.drafted)} ({how}), accepted {int(r.accepted.sum())}")
    a, b = st.columns([3, 1])
    a.dataframe(df[df["round"] == r.round].drop(columns="round"), hide_index=True, height=300,
                column_config=TABLE_COLS, key="rounds_table")
    if r.beam_tokens is not None and len(r.beam_tokens):
        import pandas as pd

        beams = pd.DataFrame({"prefix": [H.prefix_string(B, t) for t in r.beam_tokens],
                              "log-prob": r.beam_scores.astype(float)})
        b.caption(f"Beam after round {r.round} (β = {s.beta})")
        b.dataframe(beams, hide_index=True, height=300)
    else:
        b.caption("No beam step after this round (early exit: K accepted).")


def explorer_view(run, key: str = "umap"):
    import plotly.graph_objects as go

    s = st.session_state
    spaces = projection.spaces(B)
    if s.get("space") not in spaces:
        s.space = H.query_space(s.drafter) if H.query_space(s.drafter) in spaces else next(iter(spaces))
    space = st.radio("Embedding space", list(spaces), format_func=spaces.get, key="space", horizontal=True)
    with st.spinner("Loading the 2-D map of this space…"):
        m = umap_map(CFG["checkpoint"], CFG["data_root"], space)
    t = time.perf_counter()
    emb = projection.space_embeddings(B, space)
    ids = H.map_sample(len(m.xy), B.ds.n_in_sample)
    new = ids >= B.ds.n_in_sample
    fig = go.Figure()
    for is_new, name, color in ((False, "in-sample items", "#9db4d6"),
                                (True, f"{H.NEW_BADGE} new (unseen) items", "#ff9f43")):
        sel = ids[new == is_new]
        fig.add_trace(go.Scattergl(x=m.xy[sel, 0], y=m.xy[sel, 1], mode="markers", name=name,
                                   text=[H.title(B, i, 80) for i in sel],
                                   marker=dict(size=5 if is_new else 4, color=color, opacity=0.6),
                                   hovertemplate="%{text}<extra></extra>"))

    def overlay(items, name, **marker):
        items = np.asarray(items, np.int64)
        if len(items):
            xy = m.coords(items, emb)
            fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode=marker.pop("mode", "markers"), name=name,
                                     text=[H.title(B, i, 80) for i in items], marker=marker,
                                     hovertemplate="%{text}<extra>" + name + "</extra>"))

    if run is not None and run.trace is not None:
        tr = run.trace
        acc = tr.all_accepted()
        overlay(acc, "drafted · accepted", size=8, color="#2ca02c", symbol="circle")
        overlay(np.setdiff1d(tr.all_drafted(), acc), "drafted · rejected", size=7, color="#d62728", symbol="x")
    if s.added:
        added = np.asarray(s.added)
        xy = m.coords(added, emb)
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="added this session",
                                 text=[H.title(B, i, 40) for i in added], textposition="top center",
                                 marker=dict(size=16, color="#e84393", symbol="star",
                                             line=dict(width=1, color="#000000")),
                                 hovertemplate="%{text}<extra>added this session</extra>"))
    if s.history:
        hist = np.asarray(s.history, np.int64)
        xy = m.coords(hist, emb)
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines+markers+text", name="history (1 = oldest)",
                                 text=[str(j + 1) for j in range(len(hist))], textposition="top center",
                                 customdata=[H.title(B, i, 80) for i in hist],
                                 line=dict(color="rgba(0,0,0,0.35)", width=1, dash="dot"),
                                 marker=dict(size=11, color="#000000", symbol="diamond"),
                                 hovertemplate="%{customdata}<extra>history</extra>"))
        if H.query_space(s.drafter) == space and not s.tiger_only:
            q = m.place(H.query_vector(B, s.drafter, s.history)[None])
            fig.add_trace(go.Scatter(x=q[:, 0], y=q[:, 1], mode="markers", name="sequence embedding (query)",
                                     marker=dict(size=20, color="#6c5ce7", symbol="x-thin-open",
                                                 line=dict(width=4, color="#6c5ce7")),
                                     hovertemplate="the drafter's query for this history<extra></extra>"))
        elif not s.tiger_only:
            st.caption(f"The {H.DRAFTER_LABELS[s.drafter]} query lives in the "
                       f"{spaces.get(H.query_space(s.drafter), 'text space')}: switch space to see it.")
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.06),
                      xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None),
                      plot_bgcolor="#ffffff")
    st.plotly_chart(fig, width="stretch", key=key)
    how = (f"UMAP computed at export and shipped with the checkpoint (loaded in {1000 * m.seconds:.0f} ms)"
           if m.source == "precomputed" else f"UMAP fitted once on this server in {m.seconds:.0f} s")
    st.caption(f"{how}: {len(m.xy):,} items; drawn: {len(ids):,} ({int(new.sum())} unseen). Overlays (drafts, history, added items, the "
               f"query: placed at their nearest catalog items) drawn in {1000 * (time.perf_counter() - t):.0f} ms. "
               "Hover a point for its title.")


def add_item_view(run):
    s = st.session_state
    st.markdown("Type a product that the model has never seen. SpecGR embeds its text, gives it a semantic ID with "
                "the **frozen** tokenizer and adds it to every drafter's index: **no retraining**.")
    with st.form("add_item", clear_on_submit=False, border=True):
        title = st.text_input("Title", key="new_title", placeholder="e.g. Galactic Kart Racing - Nintendo Switch")
        desc = st.text_area("Description (optional)", key="new_desc", height=80)
        submitted = st.form_submit_button("🆕 Add to the catalog")
    if submitted:
        try:
            with st.spinner("Embedding the text and assigning a semantic ID…"):
                new_id = H.add_new_item(private_bundle(), title, desc)
        except ValueError as e:
            st.warning(str(e), icon="✋")
        except Exception as e:  # the text model can be missing offline
            st.error(f"Could not embed the new item's text: {e}")
        else:
            s.added = [*s.added, new_id]
            s.added_meta[new_id] = (title, desc)
            s.last_added = new_id
            st.rerun()  # re-run with the session's private catalog: the new item is now recommendable
    if s.get("last_added") is not None:
        i = s.last_added
        st.success(f"Added **{H.title(B, i)}** as item #{i} with semantic ID {H.sid_string(B, i)} — no retraining.")
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        if run is None:
            c1.info("Build a history to see whether it gets recommended.")
        elif i in run.items.tolist():
            rank = run.items.tolist().index(i) + 1
            src = run.sources[rank - 1]
            c1.success(f"It **is recommended** for the current history: rank {rank} of {len(run.items)} ({src}).")
        else:
            c1.info(H.new_item_hint(run, i, s.tiger_only))
        c2.button("Add it to the history", on_click=add_to_history, args=(i,), key="add_new_to_history")
    if s.added:
        st.markdown("**Items added this session** (only in this browser session; ✕ takes one out of the catalog)")
        for i in s.added:
            c = st.columns([8, 3, 1], vertical_alignment="center")
            c[0].markdown(f"#{i} {H.title(B, i)}")
            c[1].markdown(f"<span style='color:gray'>{H.sid_string(B, i)}</span>", unsafe_allow_html=True)
            c[2].button("✕", key=f"rm_added_{i}", on_click=remove_added, args=(i,), help="remove from the catalog")
        st.markdown("**Where it lands** (UMAP)")
        explorer_view(run, key="umap_add")


def boot(key: tuple[str, str]):
    """Load the bundle and warm up its default drafter, saying so at the top of the page while it is cold."""
    if key not in H.WARM:
        BOOT.info("⏳ Loading the SpecGR checkpoint and warming up its drafter (first start of the server only)…")
    first = shared_bundle(*key).default_drafter
    warm_drafter(*key, first)
    H.WARM.setdefault(key, set()).add(first)
    BOOT.empty()


def demo_page():
    global B, DRAFTERS, DELTA_MAX
    t0 = time.perf_counter()
    key = (CFG["checkpoint"], CFG["data_root"])
    try:
        boot(key)
    except H.LoadError as e:
        BOOT.empty()
        st.title("🔮 SpecGR demo")
        st.error(f"{e}\n\nFix it with:", icon="🚫")
        st.code(e.command, language="bash")
        st.caption("Then reload this page. Point the app elsewhere with SPECGR_CHECKPOINT / SPECGR_DATA_ROOT.")
        return
    B = bundle()
    DRAFTERS = B.available_drafters
    DELTA_MAX = int(min(200, max(5, B.ds.n_items)))
    s = st.session_state
    s.setdefault("added", [])
    s.setdefault("added_meta", {})
    s.setdefault("knobs_by_drafter", {})
    if "gamma" not in s:
        s.drafter = s.shown_drafter = B.default_drafter
        reset_sliders()
    if "history" not in s:
        load_user(0)
        s.user_row = 0
    s.setdefault("target", None)
    if s.drafter not in H.WARM[key]:
        with st.spinner(f"Building the {H.DRAFTER_LABELS[s.drafter]} (once per server)…"):
            warm_drafter(*key, s.drafter)
        H.WARM[key].add(s.drafter)

    sidebar()
    st.markdown(TIGHT_TOP, unsafe_allow_html=True)
    st.title("🔮 Speculative generative recommendation")
    st.caption("A drafter proposes δ items per round, the generative model (TIGER) verifies them; a draft is kept when "
               "its score V exceeds γ, and a β-wide beam guides re-drafting. Unseen items are marked " + H.NEW_BADGE)
    run = current_run()
    summary(run)
    history_builder()
    st.subheader("2 · Inside the run")
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="view", label_visibility="collapsed")
    if view == VIEWS[1]:
        explorer_view(run)
    elif view == VIEWS[2]:
        add_item_view(run)
    else:
        speculation_view(run)
    s.page_ms = 1000 * (time.perf_counter() - t0)
    st.caption(f"Page computed in {s.page_ms:.0f} ms (model call {run.ms:.0f} ms)." if run else
               f"Page computed in {s.page_ms:.0f} ms.")


CFG = H.settings()
torch.set_num_threads(int(os.environ.get("SPECGR_TORCH_THREADS", "1")))  # tiny models: 1 thread is fastest, robust
B = DRAFTERS = DELTA_MAX = None
nav = st.navigation([st.Page(demo_page, title="Live demo", icon="🔮", url_path="demo", default=True),
                     st.Page(results_view.render, title="Results", icon="📊", url_path="results")])
nav.run()
