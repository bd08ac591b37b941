"""SpecGR live demo: build a history, watch drafting and verification, tune γ/δ/β/K, explore the embeddings in UMAP and
add a brand-new item without retraining.

    streamlit run app/main.py --server.address 127.0.0.1        # or: make demo

Configuration (environment): SPECGR_CHECKPOINT (default checkpoints/amazon2018-game), SPECGR_DATA_ROOT (default
data/processed), SPECGR_RESULTS (default results).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import streamlit as st
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers as H  # noqa: E402
from views import results as results_view  # noqa: E402

st.set_page_config(page_title="SpecGR demo", page_icon="🔮", layout="wide")


# ---------------------------------------------------------------------------------------------------- resources
@st.cache_resource(show_spinner="Loading the SpecGR checkpoint and warming up the models…")
def shared_bundle(checkpoint: str, data_root: str):
    """The bundle every session reads (never mutated: a session that adds items gets its own copy)."""
    b = H.load_bundle(checkpoint, data_root)
    H.warm_up(b)
    return b


@st.cache_resource(show_spinner=False)
def umap_map(checkpoint: str, data_root: str, space: str) -> H.UmapMap:
    """UMAP of one embedding space, fitted once per server on a subsample (all unseen items included)."""
    b = shared_bundle(checkpoint, data_root)
    ids = H.umap_sample(b.ds.n_items, b.ds.n_in_sample)
    return H.UmapMap(H.space_embeddings(b, space), ids, b.ds.n_items)


def bundle():
    """This session's bundle: the shared one, or a private copy once the session has added items."""
    return st.session_state.get("private_bundle") or shared_bundle(CFG["checkpoint"], CFG["data_root"])


def private_bundle():
    if "private_bundle" not in st.session_state:
        with st.spinner("Making a private copy of the catalog for this session…"):
            st.session_state.private_bundle = H.load_bundle(CFG["checkpoint"], CFG["data_root"])
    return st.session_state.private_bundle


# ---------------------------------------------------------------------------------------------------- state
def reset_sliders():
    d = st.session_state.get("drafter", DRAFTERS[0])
    tuned = B.specgr_defaults.get(d, {})
    st.session_state.gamma = float(np.clip(round(tuned.get("threshold", -1.4), 1), -8.0, 0.0))
    st.session_state.delta = int(np.clip(tuned.get("draft_size", 50), 1, DELTA_MAX))
    st.session_state.beta = int(np.clip(tuned.get("num_beams", 30), 1, 100))
    st.session_state.k = int(np.clip(tuned.get("top_k", 50), 1, 100))


def set_history(items, target=None, row=None):
    st.session_state.history = [int(i) for i in items]
    st.session_state.target = None if target is None else int(target)
    st.session_state.target_history = list(st.session_state.history) if target is not None else None
    st.session_state.loaded_row = row


def load_user(row: int | None = None):
    rows = B.ds.rows("test")
    if row is None:
        row = int(np.random.default_rng().integers(len(rows)))
        st.session_state.user_row = row
    row = int(np.clip(row, 0, len(rows) - 1))
    set_history(rows.history[row, : rows.hist_len[row]], rows.target[row], row)


def add_to_history(i):
    if i is not None:
        st.session_state.history = [*st.session_state.history, int(i)][-20:]


def move(j: int, step: int):
    h = st.session_state.history
    k = j + step
    if 0 <= k < len(h):
        h[j], h[k] = h[k], h[j]


def remove(j: int):
    del st.session_state.history[j]


# ---------------------------------------------------------------------------------------------------- sections
def sidebar():
    sb = st.sidebar
    sb.title("🔮 SpecGR")
    sb.caption("Speculative generative recommendation: a drafter proposes, the generative model verifies.")
    sb.radio("Drafter", DRAFTERS, format_func=H.DRAFTER_LABELS.get, key="drafter", on_change=reset_sliders,
             help="SpecGR++ drafts with its own encoder; SpecGR_Aux with a text sequence model; semantic-KNN with "
                  "the text embedding of the last item.")
    sb.toggle("TIGER only (plain beam search)", key="tiger_only",
              help="Constrained beam search over in-sample semantic IDs: it can never recommend a new item.")
    sb.slider("γ — acceptance threshold", -8.0, 0.0, step=0.1, key="gamma",
              help="A draft is accepted when its verification score V (mean per-token log-likelihood) exceeds γ.")
    sb.slider("δ — drafts per round", 1, DELTA_MAX, key="delta")
    sb.slider("β — beam width (guides re-drafting)", 1, 100, key="beta")
    sb.slider("K — recommendations", 1, 100, key="k")
    sb.button("↺ Tuned values for this drafter", on_click=reset_sliders, width="stretch")
    n_new = B.ds.n_items - B.ds.n_in_sample
    sb.divider()
    sb.caption(f"Checkpoint `{CFG['checkpoint']}` · dataset `{B.ds.name}`  \n"
               f"Catalog: **{B.ds.n_items:,} items** ({n_new:,} {H.NEW_BADGE} unseen during training"
               + (f", {len(st.session_state.added)} added this session" if st.session_state.added else "") + ")")


def history_builder():
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
        row = c1.number_input("Real test user (row)", 0, n_rows - 1, key="user_row", step=1)
        c2.button("Load user", on_click=load_user, args=(row,), key="load_user", width="stretch")
        c3.button("🎲 Random", on_click=load_user, key="random_user", width="stretch")
        if st.session_state.target is not None:
            st.caption(f"True next item: **{H.title(B, st.session_state.target)}**")

    h = st.session_state.history
    if not h:
        st.info("The history is empty: search the catalog and add items, or load a real test user.")
        return
    with st.expander(f"Current history: {len(h)} item(s), oldest first", expanded=len(h) <= 8):
        for j, i in enumerate(h):
            c = st.columns([0.5, 8, 0.6, 0.6, 0.6], vertical_alignment="center")
            c[0].markdown(f"**{j + 1}.**")
            c[1].markdown(f"{H.title(B, i)} <span style='color:gray'>#{i} {H.sid_string(B, i)}</span>",
                          unsafe_allow_html=True)
            c[2].button("↑", key=f"up_{j}", on_click=move, args=(j, -1), disabled=j == 0)
            c[3].button("↓", key=f"down_{j}", on_click=move, args=(j, 1), disabled=j == len(h) - 1)
            c[4].button("✕", key=f"rm_{j}", on_click=remove, args=(j,))
        st.button("Clear history", key="clear_history", on_click=set_history, args=([],))


def current_run():
    """The one recommend call of this interaction (None with a friendly message on bad input)."""
    s = st.session_state
    for w in H.slider_warnings(s.delta, s.beta, s.k):
        st.warning(w, icon="⚠️")
    try:
        return H.recommend(B, s.history, s.drafter, s.gamma, s.delta, s.beta, s.k, tiger_only=s.tiger_only)
    except ValueError as e:
        st.warning(str(e), icon="✋")
        return None


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


TABLE_COLS = {"new": st.column_config.CheckboxColumn("🆕", width="small"),
              "item": st.column_config.NumberColumn(format="%d", width="small"),
              "score": st.column_config.NumberColumn(format="%.3f"),
              "drafter score": st.column_config.NumberColumn(format="%.3f"),
              "V (verify)": st.column_config.NumberColumn(format="%.3f")}


def speculation_view(run):
    s = st.session_state
    if run is None:
        return
    n_new = int((run.items >= B.ds.n_in_sample).sum())
    if run.trace is None:  # TIGER only
        c = st.columns(4)
        c[0].metric("Method", "TIGER beam")
        c[1].metric("Beam width", max(s.beta, s.k))
        c[2].metric("Latency", f"{run.ms:.0f} ms")
        c[3].metric(f"{H.NEW_BADGE} new items in top-{len(run.items)}", n_new)
        spec = H.recommend(B, s.history, s.drafter, s.gamma, s.delta, s.beta, s.k)
        spec_new = int((spec.items >= B.ds.n_in_sample).sum())
        st.info(f"Plain constrained beam search only decodes semantic IDs of in-sample items, so it recommends "
                f"**{n_new}** new items. SpecGR ({H.DRAFTER_LABELS[s.drafter]}) with the same history and "
                f"settings recommends **{spec_new}**.")
        target_note(run)
        st.markdown("**Top-K (TIGER beam search)**")
        st.dataframe(H.final_frame(B, run, s.target), hide_index=True, height=380, column_config=TABLE_COLS)
        return

    tr = run.trace
    c = st.columns(5)
    c[0].metric("Rounds", tr.n_rounds)
    c[1].metric("Accepted / drafted", f"{tr.n_accepted} / {tr.n_drafted}")
    c[2].metric("Acceptance rate", f"{100 * tr.acceptance_rate:.1f} %")
    c[3].metric("Latency (recommend)", f"{run.ms:.0f} ms")
    c[4].metric(f"{H.NEW_BADGE} new items in top-{len(run.items)}", n_new)
    target_note(run)

    df = H.rounds_frame(B, tr, s.gamma)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.markdown("**Verification score of every draft, per round** (accepted above the γ line)")
        st.plotly_chart(verify_chart(df, s.gamma, s.delta), width="stretch", key="verify_chart")
    with right:
        st.markdown(f"**Final top-{len(run.items)}** (source: accepted draft, fill-in by V, or final beam)")
        counts = {k: tr.sources.count(k) for k in ("accepted", "fill", "beam")}
        st.caption(" · ".join(f"{k}: {v}" for k, v in counts.items()))
        st.dataframe(H.final_frame(B, run, s.target), hide_index=True, height=380, key="final_table",
                     column_config=TABLE_COLS)
    st.markdown("**Rounds** — drafted items (drafter score, verification V, accepted/rejected) and the beam "
                "prefixes that guide the next round's re-draft")
    for r in tr.rounds:
        how = (f"restricted to the {len(tr.rounds[r.round - 2].beam_tokens) if r.round > 1 and tr.rounds[r.round - 2].beam_tokens is not None else 0} "
               f"beam prefixes of length {r.prefix_len}") if r.prefix_len else "unconstrained"
        with st.expander(f"Round {r.round}: drafted {len(r.drafted)} ({how}), accepted {int(r.accepted.sum())}"):
            a, b = st.columns([3, 1])
            a.dataframe(df[df["round"] == r.round].drop(columns="round"), hide_index=True, height=300,
                        column_config=TABLE_COLS)
            if r.beam_tokens is not None and len(r.beam_tokens):
                import pandas as pd

                beams = pd.DataFrame({"prefix": [H.prefix_string(B, t) for t in r.beam_tokens],
                                      "log-prob": r.beam_scores.astype(float)})
                b.caption(f"Beam after round {r.round} (β = {s.beta})")
                b.dataframe(beams, hide_index=True, height=300)
            else:
                b.caption("No beam step after this round (early exit: K accepted).")


def verify_chart(df, gamma: float, delta: int) -> dict:
    """Verification score of every draft per round, with the γ line. A plain plotly figure dict: building
    graph objects costs ~50 ms per interaction, the dict almost nothing."""
    data = []
    for status, color in ((H.STATUS["accepted"], "#2ca02c"), (H.STATUS["rejected"], "#d62728")):
        d = df[df["status"] == status]
        new = d["new"].to_numpy()
        x = d["round"].to_numpy() + (d["order"].to_numpy() - 0.5) / max(delta, 1) * 0.7 - 0.35  # drafting order
        data.append(dict(
            type="scatter", x=x.tolist(), y=d["V (verify)"].round(4).tolist(), mode="markers", name=status,
            marker=dict(color=color, size=np.where(new, 12, 7).tolist(),
                        symbol=np.where(new, "star", "circle").tolist(), line=dict(width=0.5, color="white")),
            text=d["title"].tolist(), customdata=d["drafter score"].round(3).tolist(),
            hovertemplate="%{text}<br>V = %{y:.3f} · drafter score %{customdata}<extra>" + status + "</extra>"))
    n = int(df["round"].max()) if len(df) else 1
    layout = dict(height=380, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.1),
                  xaxis=dict(title=dict(text="round (points in drafting order; ★ = new item)"),
                             tickvals=list(range(1, n + 1)), range=[0.5, n + 0.5]),
                  yaxis=dict(title=dict(text="verification score V")),
                  shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=gamma, y1=gamma,
                               line=dict(dash="dash", color="#555", width=2))],
                  annotations=[dict(xref="paper", x=0.01, y=gamma, text=f"γ = {gamma:.1f}", showarrow=False,
                                    yshift=10, xanchor="left")])
    return dict(data=data, layout=layout)


def explorer_view(run, focus: int | None = None, key: str = "umap"):
    import pandas as pd
    import plotly.graph_objects as go

    s = st.session_state
    spaces = H.spaces(B)
    if s.get("space") not in spaces:
        s.space = H.query_space(s.drafter) if H.query_space(s.drafter) in spaces else next(iter(spaces))
    space = st.radio("Embedding space", list(spaces), format_func=spaces.get, key="space", horizontal=True)
    t = time.perf_counter()
    with st.spinner(f"Fitting UMAP once on ≤{H.UMAP_SAMPLE} items of this space (about a minute on a CPU; cached "
                    "for the life of the server)…"):
        m = umap_map(CFG["checkpoint"], CFG["data_root"], space)
    emb = H.space_embeddings(B, space)
    bg = pd.DataFrame({"x": m.xy[:, 0], "y": m.xy[:, 1], "item": m.ids,
                       "title": [H.title(B, i, 80) for i in m.ids], "new": m.ids >= B.ds.n_in_sample})
    fig = go.Figure()
    for new, name, color in ((False, "in-sample items", "#9db4d6"), (True, f"{H.NEW_BADGE} new (unseen) items",
                                                                      "#ff9f43")):
        d = bg[bg["new"] == new]
        fig.add_trace(go.Scattergl(x=d["x"], y=d["y"], mode="markers", name=name, text=d["title"],
                                   marker=dict(size=4 if not new else 5, color=color, opacity=0.6),
                                   hovertemplate="%{text}<extra></extra>"))

    def overlay(ids, name, limit=None, **marker):
        got, xy = m.coords(emb, ids, limit=limit)
        if len(got):
            fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode=marker.pop("mode", "markers"), name=name,
                                     text=[H.title(B, i, 80) for i in got], marker=marker,
                                     hovertemplate="%{text}<extra>" + name + "</extra>"))
        return got

    if run is not None and run.trace is not None:
        tr = run.trace
        acc, rej = tr.all_accepted(), np.setdiff1d(tr.all_drafted(), tr.all_accepted())
        got_a = overlay(acc, "drafted · accepted", limit=40, size=8, color="#2ca02c", symbol="circle")
        got_r = overlay(rej, "drafted · rejected", limit=20, size=7, color="#d62728", symbol="x")
        st.caption(f"Drafted candidates shown: {len(got_a)}/{len(acc)} accepted, {len(got_r)}/{len(rej)} rejected "
                   "(items outside the fitted sample are placed with UMAP `transform`, a few per interaction, and "
                   "cached).")
    if st.session_state.added:
        added = np.asarray(st.session_state.added)
        xy = m.place(emb[added])
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", name="added this session",
                                 text=[H.title(B, i, 40) for i in added], textposition="top center",
                                 marker=dict(size=16, color="#e84393", symbol="star", line=dict(width=1, color="black")),
                                 hovertemplate="%{text}<extra>added this session</extra>"))
    if s.history:
        got, xy = m.coords(emb, s.history)
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines+markers+text", name="history (1 = oldest)",
                                 text=[str(j + 1) for j in range(len(got))], textposition="top center",
                                 customdata=[H.title(B, i, 80) for i in got],
                                 line=dict(color="rgba(0,0,0,0.35)", width=1, dash="dot"),
                                 marker=dict(size=11, color="black", symbol="diamond"),
                                 hovertemplate="%{customdata}<extra>history</extra>"))
        if H.query_space(s.drafter) == space and not s.tiger_only:
            q = m.place(H.query_vector(B, s.drafter, s.history)[None])
            fig.add_trace(go.Scatter(x=q[:, 0], y=q[:, 1], mode="markers", name="sequence embedding (query)",
                                     marker=dict(size=20, color="#6c5ce7", symbol="x-thin-open",
                                                 line=dict(width=4, color="#6c5ce7")),
                                     hovertemplate="the drafter's query for this history<extra></extra>"))
        elif not s.tiger_only:
            st.caption(f"The {H.DRAFTER_LABELS[s.drafter]} query lives in the {spaces.get(H.query_space(s.drafter), 'text space')}: "
                       "switch space to see it.")
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.06),
                      xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None),
                      plot_bgcolor="white")
    st.plotly_chart(fig, width="stretch", key=key)
    st.caption(f"UMAP fitted once on {len(m.ids):,} items ({int(bg['new'].sum())} unseen) in {m.fit_seconds:.0f} s; "
               f"overlays placed in {1000 * (time.perf_counter() - t):.0f} ms. Hover a point for its title.")


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
            drafted = run.trace is not None and i in run.trace.all_drafted().tolist()
            c1.info(("It was drafted but not accepted into the top-K" if drafted else
                     "It is not recommended for the current history") +
                    (" — TIGER-only never recommends new items." if s.tiger_only else
                     " — try a history of similar items, or lower γ."))
        c2.button("Add it to the history", on_click=add_to_history, args=(i,), key="add_new_to_history")
    if s.added:
        st.markdown("**Items added this session**")
        import pandas as pd

        st.dataframe(pd.DataFrame({"item": s.added, "title": [H.title(B, i) for i in s.added],
                                   "SID": [H.sid_string(B, i) for i in s.added]}), hide_index=True)
        st.markdown("**Where it lands** (UMAP)")
        explorer_view(run, key="umap_add")


def demo_page():
    global B, DRAFTERS, DELTA_MAX
    t0 = time.perf_counter()
    try:
        shared_bundle(CFG["checkpoint"], CFG["data_root"])
    except H.LoadError as e:
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
    if "gamma" not in s:
        s.drafter = DRAFTERS[0]
        reset_sliders()
    if "history" not in s:
        load_user(0)
        s.user_row = 0
    s.setdefault("target", None)

    sidebar()
    st.title("🔮 Speculative generative recommendation")
    st.caption("A drafter proposes δ items per round, the generative model (TIGER) verifies them; a draft is kept when "
               "its score V exceeds γ, and a β-wide beam guides re-drafting. Unseen items are marked " + H.NEW_BADGE)
    history_builder()
    st.divider()
    run = current_run()
    st.subheader("2 · Results")
    view = st.segmented_control("View", ["🔮 Speculation", "🗺️ Embedding explorer", "🆕 Add a new item"],
                                default="🔮 Speculation", key="view", label_visibility="collapsed")
    if view == "🗺️ Embedding explorer":
        explorer_view(run)
    elif view == "🆕 Add a new item":
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
