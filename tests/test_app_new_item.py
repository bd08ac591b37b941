"""The app's promise, on the shipped demo checkpoint and its default settings: a brand-new item that fits the history
(a new Zelda title after Zelda games, written in by the user, never seen in training) appears in the top K.

Needs the prepared amazon2018-game data (make test prepares it) and the real text model; skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints" / "amazon2018-game"
DATA = ROOT / "data" / "processed"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "amazon2018-game" / "manifest.json").exists(),
                                 reason="needs data/processed/amazon2018-game (`make data`)")]


def test_new_zelda_title_is_recommended_with_default_settings(monkeypatch):
    from specgr.data.processed import ProcessedDataset

    ds = ProcessedDataset.load(DATA / "amazon2018-game")
    titles = ds.items["text"].astype(str).str.lower()
    zelda = [i for i in range(ds.n_in_sample) if "legend of zelda" in titles[i]][:5]
    assert len(zelda) == 5
    monkeypatch.setenv("SPECGR_CHECKPOINT", str(CKPT))
    monkeypatch.setenv("SPECGR_DATA_ROOT", str(DATA))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
    at.session_state["history"] = zelda
    at.session_state["user_row"] = 0
    at.session_state["view"] = "🆕 Add a new item"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["drafter"] == "knn", "the checkpoint's default drafter"
    at.text_input(key="new_title").input("The Legend of Zelda: Tears of the Kingdom")
    at.text_area(key="new_desc").input("Nintendo Switch action adventure game")
    next(b for b in at.button if "Add to the catalog" in b.label).click().run()
    assert not at.exception, [e.message for e in at.exception]
    new_id = at.session_state["last_added"]
    assert new_id >= ds.n_items  # a brand-new id: never seen in training
    said = [s.value for s in at.success if "is recommended" in s.value]
    assert said, [m.value for m in [*at.info, *at.success]]
