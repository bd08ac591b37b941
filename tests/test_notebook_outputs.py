"""Committed notebook outputs read well on GitHub: no machine paths, no repeated Lightning banners, and small."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"(/root/|/home/|/work/|/tmp/|/Users/|[A-Z]:\\Users\\)")
BANNERS = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:", "LOCAL_RANK:")


def output_texts(nb: dict):
    """(cell index, text) of every text output: streams, errors, and text/* or JSON display data."""
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if "text" in out:
                yield i, "".join(out["text"])
            if "traceback" in out:
                yield i, "\n".join(out["traceback"])
            for mime, data in out.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    yield i, data if isinstance(data, str) else "".join(data) if isinstance(data, list) else json.dumps(data)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) == 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_machine_path_in_outputs(path):
    nb = json.loads(path.read_text())
    hits = [(i, m.group(0)) for i, text in output_texts(nb) for m in MACHINE_PATH.finditer(text)]
    assert not hits, f"{path.name}: outputs hold machine paths (cell, match): {hits[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_lightning_banners_in_outputs(path):
    nb = json.loads(path.read_text())
    hits = [(i, b) for i, text in output_texts(nb) for b in BANNERS if b in text]
    assert not hits, f"{path.name}: Lightning start-up banners in outputs (cell, banner): {hits[:5]}"


def test_output_filter_catches_a_path():
    nb = {"cells": [{"outputs": [{"output_type": "stream", "text": ["working in /tmp/specgr_x\n"]}]}]}
    assert any(MACHINE_PATH.search(t) for _, t in output_texts(nb))


@functools.lru_cache
def catalog_texts(min_len: int = 24) -> frozenset[str]:
    """The first `min_len` characters of every item text of the real catalogs prepared here (`make data`): the
    datasets' terms forbid committing their titles, and a notebook run on them prints some."""
    import os

    import pandas as pd

    root = ROOT / os.environ.get("DATA_ROOT", "data/processed")
    out = set()
    for items in root.glob("amazon*/items.parquet"):
        out |= {t[:min_len] for t in pd.read_parquet(items, columns=["text"])["text"].astype(str) if len(t) >= min_len}
    return frozenset(out)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_catalog_text_in_outputs(path):
    keys = catalog_texts()
    if not keys:
        pytest.skip("no real catalog prepared (make data)")
    nb = json.loads(path.read_text())
    hits = sorted({i for i, text in output_texts(nb) if any(k in text for k in keys)})
    assert not hits, (f"{path.name}: outputs of cells {hits} print item texts of a real catalog. Fix: clear those "
                      "cells' outputs before committing (the notebooks run in CI either way).")
