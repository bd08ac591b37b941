"""Results page: the docs/RESULTS.md numbers and the sweep curves (results/<dataset>/tune.csv and
acceptance_curve.json, written by the pipeline) as plotly charts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

import helpers as H

METRICS = {"overall_recall@50": "recall@50", "overall_ndcg@10": "NDCG@10", "unseen_recall@50": "unseen recall@50",
           "acceptance_rate": "acceptance rate", "rounds": "rounds"}
KNOBS = {"threshold": "γ (threshold)", "draft_size": "δ (draft size)", "num_beams": "β (beam width)"}


def render():
    import plotly.express as px

    cfg = H.settings()
    dataset = H.checkpoint_dataset(cfg["checkpoint"], cfg["data_root"]) or "amazon2018-game"
    rdir = H.results_dir(cfg["results_root"], dataset)
    st.title("📊 Results")
    st.caption(f"Dataset `{dataset}` · results from `{rdir}` (written by `specgr pipeline --dataset {dataset}`).")

    doc = Path("docs/RESULTS.md")
    if doc.exists():
        with st.expander("docs/RESULTS.md", expanded=False):
            st.markdown(doc.read_text())

    table = H.method_table(rdir) if rdir.exists() else pd.DataFrame()
    if table.empty:
        st.info(f"No evaluation results in `{rdir}` yet. `specgr pipeline --dataset {dataset}` writes them there (the "
                "repository ships the demo checkpoint's results under results/amazon2018-game/).")
    else:
        st.subheader("Test metrics per method")
        st.dataframe(table.style.format(precision=4, subset=[c for c in table.columns
                                                             if c not in ("method", "device", "recs/s")])
                     .format(precision=0, subset=["recs/s"]), hide_index=True, width="stretch")
        # a method without an unseen number gets 0, not a missing colour (which plotly cannot draw)
        bars = table.sort_values("recall@50").fillna({"unseen recall@50": 0.0})
        fig = px.bar(bars, x="recall@50", y="method", orientation="h", color="unseen recall@50",
                     color_continuous_scale="Oranges", height=420,
                     hover_data=["ndcg@10", "in-sample recall@50", "acceptance rate"])
        fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
        st.plotly_chart(fig, width="stretch", key="methods_chart")

    curve = rdir / "acceptance_curve.json"
    st.subheader("Acceptance vs γ")
    if curve.exists():
        df = pd.DataFrame(json.loads(curve.read_text()))
        c1, c2 = st.columns(2)
        for col, y, name in ((c1, "acceptance_rate", "acceptance rate"), (c2, "recall@50", "recall@50")):
            if y in df:
                fig = px.line(df, x="gamma", y=y, color="method", markers=True, height=360,
                              labels={"gamma": "γ", y: name})
                fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), xaxis_autorange="reversed")
                col.plotly_chart(fig, width="stretch", key=f"curve_{y}")
        st.caption("Lower γ accepts more drafts (fewer rounds, faster); recall changes little until γ gets loose.")
    else:
        st.info(f"No `{curve}` yet: the pipeline's evaluate stage writes it.")

    tune = rdir / "tune.csv"
    st.subheader("Sweeps of γ, δ and β (validation)")
    if not tune.exists():
        st.info(f"No `{tune}` yet: the pipeline's tune stage writes it.")
        return
    df = pd.read_csv(tune)
    if "pass" in df:  # the tune stage's last pass over the knobs: the curve each chosen value was picked from
        df = df[df["pass"] == df.groupby(["drafter", "variant"])["pass"].transform("max")]
    if "variant" in df:
        df = df.assign(run=df["drafter"] + " · " + df["variant"])
    metric = st.selectbox("Metric", [m for m in METRICS if m in df], format_func=METRICS.get, key="tune_metric")
    cols = st.columns(len(KNOBS))
    for col, (knob, name) in zip(cols, KNOBS.items()):
        d = df[df["knob"] == knob]
        if d.empty:
            col.caption(f"no {name} sweep")
            continue
        if d["value"].nunique() < 2:  # one point is not a curve
            col.caption(f"{name} was run at one value only ({d['value'].iloc[0]:g}): no curve to draw.")
            continue
        fig = px.line(d.sort_values("value"), x="value", y=metric, color="run" if "run" in d else "drafter",
                      markers=True, height=320,
                      labels={"value": name, metric: METRICS[metric]})
        fig.update_layout(margin=dict(l=10, r=10, t=30, b=10))
        col.plotly_chart(fig, width="stretch", key=f"tune_{knob}")
