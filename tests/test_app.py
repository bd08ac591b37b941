"""Streamlit app (app/main.py) through streamlit.testing's AppTest, on the tiny fixture bundle."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("umap")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app" / "main.py")
EXPLORER, ADD = "🗺️ Embedding explorer", "🆕 Add a new item"


@pytest.fixture
def app_env(tiny_pipeline, monkeypatch):
    pipeline, bundle_dir = tiny_pipeline
    monkeypatch.setenv("SPECGR_CHECKPOINT", str(bundle_dir))
    monkeypatch.setenv("SPECGR_DATA_ROOT", str(pipeline.data_root))
    return pipeline, bundle_dir


def run_app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def no_exception(at: AppTest):
    assert not at.exception, [e.message for e in at.exception]


def final_table(at: AppTest):
    """The full top-K (the longest table with a source column; the one above the fold shows its first rows)."""
    return max((d.value for d in at.dataframe if "source" in d.value.columns), key=len)


def main_elements(at: AppTest) -> list:
    """The main area's elements in page order (top to bottom)."""
    out = []

    def walk(node):
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for k in sorted(children):
                walk(children[k])
        else:
            out.append(node)

    walk(at.main)
    return out


def above_history(at: AppTest) -> list:
    """What the page shows before the history section: the part a slider change must update."""
    els = main_elements(at)
    cut = next(j for j, e in enumerate(els) if isinstance(getattr(e, "value", None), str) and e.value == "1 · History")
    return els[:cut]


def accepted_set(at: AppTest) -> set[int]:
    drafted = [d.value for d in at.dataframe if "status" in d.value.columns]
    return {int(i) for df in drafted for i, s in zip(df["item"], df["status"]) if "accepted" in s}


def test_app_runs(app_env):
    at = run_app()
    no_exception(at)
    labels = [m.label for m in at.metric]
    assert "Rounds" in labels and "Acceptance rate" in labels and "Latency (recommend)" in labels
    assert at.session_state["history"], "a real test user is loaded at start"
    top = final_table(at)
    assert len(top) == at.session_state["k"] or len(top) > 0
    assert set(top["source"]) <= {"✅ accepted", "🟡 fill-in", "🔷 beam"}
    assert any(c.proto.spec for c in at.get("plotly_chart")), "verification chart rendered"


def test_gamma_changes_accepted_set(app_env):
    at = run_app()
    at.slider(key="gamma").set_value(-8.0).run()  # accept (almost) everything
    no_exception(at)
    loose = accepted_set(at)
    at.slider(key="gamma").set_value(0.0).run()  # V <= 0 always: accept nothing
    no_exception(at)
    strict = accepted_set(at)
    assert loose and not strict and loose != strict
    assert not any("accepted" in s for s in final_table(at)["source"])


def test_drafters_and_tiger_only(app_env):
    at = run_app()
    labels = {"SpecGR++ (encoder drafter)": "encoder", "SpecGR_Aux (text drafter)": "aux",
              "semantic-KNN (plug-and-play)": "knn"}
    for label in at.radio(key="drafter").options:
        at.radio(key="drafter").set_value(labels[label]).run()
        no_exception(at)
    at.toggle(key="tiger_only").set_value(True).run()
    no_exception(at)
    top = final_table(at)
    assert not top["new"].any(), "plain beam search never recommends new items"
    assert any("never" in i.value or "in-sample" in i.value for i in at.info)


def test_embedding_explorer(app_env):
    at = run_app(view=EXPLORER)
    no_exception(at)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    names = {t.get("name") for s in specs for t in s["data"]}
    assert "in-sample items" in names and "history (1 = oldest)" in names
    assert "sequence embedding (query)" in names


def test_add_new_item_appears_in_catalog_and_plot(app_env):
    from specgr.bundle import Bundle

    sys.path.insert(0, str(ROOT / "app"))
    import helpers  # the very module the app imports

    pipeline, bundle_dir = app_env
    base = Bundle.load(bundle_dir, data_root=pipeline.data_root).text_embeddings()
    rng = np.random.default_rng(0)

    def fake_embed(texts):  # the fixture's text model is fake: put the new item next to item 0
        v = base[0] + 0.05 * rng.normal(size=base.shape[1])
        return np.stack([v / np.linalg.norm(v)] * len(texts)).astype(np.float32)

    helpers.TEXT_EMBEDDER = fake_embed
    try:
        at = run_app(view=ADD)
        at.text_input(key="new_title").input("Galactic Kart Racer")
        at.text_area(key="new_desc").input("a racing game in orbit")
        next(b for b in at.button if "Add to the catalog" in b.label).click().run()
        no_exception(at)
        assert "last_added" in at.session_state, ([w.value for w in at.warning], [e.value for e in at.error], [b.label for b in at.button])
        new_id = at.session_state["last_added"]
        assert at.session_state["added"] == [new_id]
        assert any("Galactic Kart Racer" in s.value and "semantic ID" in s.value for s in at.success)
        # in the plot (the UMAP below the form)
        specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        added = [t for s in specs for t in s["data"] if t.get("name") == "added this session"]
        assert added and any("Galactic Kart Racer" in x for x in added[0]["text"])
        # in the catalog: the title search finds it, marked new
        at.text_input(key="search").input("galactic kart").run()
        no_exception(at)
        sb = at.selectbox(key="pick")
        assert any("Galactic Kart Racer" in str(o) and "🆕" in str(o) for o in sb.options), sb.options
        # and it can be added to the history and recommended
        at.button(key="add_pick").click().run()
        assert at.session_state["history"][-1] == new_id
        no_exception(at)
    finally:
        helpers.TEXT_EMBEDDER = None


def test_empty_history_is_a_friendly_message(app_env):
    at = run_app()
    at.button(key="clear_history").click().run()
    no_exception(at)
    assert at.session_state["history"] == []
    said = [m.value for m in [*at.info, *at.warning, *at.error] if "history is empty" in m.value]
    assert len(said) == 1, said


def test_slider_change_updates_the_numbers_above_the_fold(app_env):
    at = run_app()
    top = above_history(at)
    metrics = {e.label: e.value for e in top if getattr(e, "type", "") == "metric"}
    assert {"Accepted / drafted", "Acceptance rate"} <= set(metrics), metrics
    assert any(getattr(e, "type", "") == "dataframe" and "source" in e.value.columns for e in top), \
        "the first recommendations are above the history"
    at.slider(key="gamma").set_value(-8.0).run()
    loose = {e.label: e.value for e in above_history(at) if getattr(e, "type", "") == "metric"}
    at.slider(key="gamma").set_value(0.0).run()
    strict = {e.label: e.value for e in above_history(at) if getattr(e, "type", "") == "metric"}
    no_exception(at)
    assert loose["Accepted / drafted"] != strict["Accepted / drafted"]
    assert strict["Accepted / drafted"].startswith("0 /"), "V <= 0 < γ: nothing accepted"


def test_columns_that_explain_the_method_come_first(app_env):
    at = run_app()
    assert list(final_table(at).columns)[0] == "source"
    rounds = next(d.value for d in at.dataframe if "status" in d.value.columns)
    assert list(rounds.columns)[0] == "status"


def test_switching_drafter_keeps_each_drafters_sliders_and_says_so(app_env):
    at = run_app()
    first = at.session_state["drafter"]
    other = next(o for o in ("aux", "knn") if o != first)
    at.slider(key="gamma").set_value(-7.0).run()
    at.radio(key="drafter").set_value(other).run()
    no_exception(at)
    assert at.session_state["gamma"] != -7.0, "the other drafter's own (tuned) values"
    assert any("tuned values" in i.value for i in at.sidebar.info)
    at.radio(key="drafter").set_value(first).run()
    assert at.session_state["gamma"] == -7.0, "coming back restores what the user set"


def test_history_refuses_duplicates_and_bad_rows(app_env):
    at = run_app()
    h = list(at.session_state["history"])
    at.text_input(key="search").input("topic").run()
    pick = at.selectbox(key="pick")
    pick.set_value(h[-1]).run()
    at.button(key="add_pick").click().run()
    no_exception(at)
    assert at.session_state["history"] == h
    assert any("already in the history" in w.value for w in at.warning)
    at.number_input(key="user_row").set_value(10**6).run()
    at.button(key="load_user").click().run()
    no_exception(at)
    assert at.session_state["history"] == h, "an out-of-range row loads nothing"
    assert any("does not exist" in w.value for w in at.warning)


def test_verify_chart_legend_never_mixes_symbols():
    """A trace's legend shows its first point's marker: a rejected new item first gave the "rejected" entry a star."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "app"))
    from helpers import STATUS, verify_chart

    df = pd.DataFrame({"status": [STATUS["rejected"], STATUS["rejected"], STATUS["accepted"]], "round": [1, 1, 1],
                       "order": [1, 2, 3], "new": [True, False, False], "V (verify)": [-3.0, -2.5, -1.0],
                       "title": ["a", "b", "c"], "drafter score": [0.1, 0.2, 0.3]})
    traces = verify_chart(df, -2.0, 3)["data"]
    for t in traces:
        symbols = t["marker"]["symbol"]
        assert isinstance(symbols, str), "one symbol per trace"
        assert (symbols == "star") == ("new" in t["name"]), t["name"]
    assert {t["name"] for t in traces} == {STATUS["rejected"], f"{STATUS['rejected']} · 🆕 new", STATUS["accepted"]}


def test_tiger_only_box_does_not_compare_zero_with_zero(app_env):
    at = run_app()
    at.slider(key="gamma").set_value(0.0).run()  # SpecGR accepts nothing
    at.toggle(key="tiger_only").set_value(True).run()
    no_exception(at)
    box = next(i.value for i in at.info if "beam search" in i.value)
    assert "recommends **0**" not in box, "0 against 0 says nothing: the box then says what the drafter proposed"
    assert "recommends **" in box or "proposed **" in box


def test_added_item_can_be_removed(app_env):
    sys.path.insert(0, str(ROOT / "app"))
    import helpers

    helpers.TEXT_EMBEDDER = lambda texts: np.eye(16, dtype=np.float32)[[0] * len(texts)]
    try:
        at = run_app(view=ADD)
        for name in ("First Kart", "Second Kart"):
            at.text_input(key="new_title").input(name)
            at.text_area(key="new_desc").input("a racing game")
            next(b for b in at.button if "Add to the catalog" in b.label).click().run()
        no_exception(at)
        first, second = at.session_state["added"]
        at.button(key="add_new_to_history").click().run()  # the last added one goes into the history
        assert at.session_state["history"][-1] == second
        at.button(key=f"rm_added_{first}").click().run()
        no_exception(at)
        assert len(at.session_state["added"]) == 1
        kept = at.session_state["added"][0]
        assert at.session_state["history"][-1] == kept, "history ids follow the rebuilt catalog"
        assert any("Second Kart — a racing game" in m.value for m in at.markdown)
        assert not any("First Kart" in m.value for m in at.markdown)
    finally:
        helpers.TEXT_EMBEDDER = None


def test_bad_title_and_absurd_sliders(app_env):
    at = run_app()
    at.slider(key="delta").set_value(1).run()
    k = at.slider(key="k")
    assert k.max == min(100, app_env[0].ds.n_items)  # K never exceeds the catalog
    k.set_value(k.max).run()
    no_exception(at)
    assert any("δ × rounds" in w.value for w in at.warning)
    at = run_app(view=ADD)
    next(b for b in at.button if "Add to the catalog" in b.label).click().run()
    no_exception(at)
    assert any("needs a title" in w.value for w in at.warning)


def test_missing_checkpoint_shows_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SPECGR_CHECKPOINT", str(tmp_path / "nope"))
    at = run_app()
    no_exception(at)
    assert any("No SpecGR checkpoint" in e.value for e in at.error)
    assert any("specgr pipeline" in c.value for c in at.code)


def test_missing_dataset_shows_the_fix(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECGR_DATA_ROOT", str(tmp_path / "empty"))
    at = run_app()
    no_exception(at)
    assert any("missing" in e.value for e in at.error)
    assert any("specgr prepare --dataset tiny" in c.value for c in at.code)


def test_missing_embeddings_show_the_fix(app_env, tmp_path, monkeypatch):
    """A prepare stopped before its embeddings were written: the error screen, not a FileNotFoundError traceback."""
    import shutil

    pipeline, _ = app_env
    root = tmp_path / "processed"
    shutil.copytree(pipeline.data_root / "tiny", root / "tiny")
    shutil.rmtree(root / "tiny" / "embeddings")
    monkeypatch.setenv("SPECGR_DATA_ROOT", str(root))
    at = run_app()
    no_exception(at)
    assert any("no embeddings" in e.value for e in at.error)
    assert any("specgr prepare --dataset tiny" in c.value for c in at.code)


def test_results_page(app_env, monkeypatch):
    pipeline, _ = app_env
    monkeypatch.setenv("SPECGR_RESULTS", str(pipeline.results_root))
    page = AppTest.from_string(
        f"import sys; sys.path.insert(0, {str(ROOT / 'app')!r})\n"
        "from views import results\nresults.render()\n", default_timeout=60).run()
    no_exception(page)
    assert any("Results" in t.value for t in page.title)
    assert page.get("plotly_chart") or page.info, "charts, or a friendly note when there are no results"
