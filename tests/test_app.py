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
    return next(d.value for d in at.dataframe if "source" in d.value.columns)


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
    assert any("history is empty" in w.value for w in at.warning)


def test_bad_title_and_absurd_sliders(app_env):
    at = run_app()
    at.slider(key="delta").set_value(1).run()
    at.slider(key="k").set_value(100).run()
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
