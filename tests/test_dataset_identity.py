"""One dataset identity: DatasetRef (source, split, name), and --dataset names the processed folder everywhere:
prepare, the stages, bundles (a LOO bundle loads the LOO split), results and the app."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_dataset, build_untrained_bundle
from specgr.data.processed import ProcessedDataset, folder_ref
from specgr.data.ref import DatasetRef

ROOT = Path(__file__).resolve().parents[1]


def test_dataset_identity_of_registered_names():
    loo = DatasetRef("amazon2014-beauty", "loo", "amazon2014-beauty-loo")
    assert DatasetRef.resolve("amazon2014-beauty", split="loo") == loo
    assert DatasetRef.resolve("amazon2014-beauty-loo") == loo  # the folder name already says its split
    assert DatasetRef.resolve("amazon2014-beauty-loo", split="loo") == loo  # never amazon2014-beauty-loo-loo
    assert DatasetRef.resolve("amazon2018-game") == DatasetRef("amazon2018-game", "timestamp", "amazon2018-game")
    assert DatasetRef.resolve("amazon2023-games").split == "upstream"  # the source's own default
    assert DatasetRef.resolve("amazon2018-game", name="games-small").name == "games-small"  # prepare --name
    assert DatasetRef.resolve("mine", own_catalog=True) == DatasetRef("mine", "timestamp", "mine")
    with pytest.raises(ValueError, match="Fix: --dataset amazon2014-beauty-timestamp"):
        DatasetRef.resolve("amazon2014-beauty-loo", split="timestamp")
    with pytest.raises(KeyError, match="Fix"):
        DatasetRef.resolve("nope")


def test_dataset_identity_in_the_manifest(tmp_path):
    ds = build_tiny_dataset(tmp_path, name="tiny-loo", method="loo")
    assert ds.manifest["ref"] == {"source": "tiny-loo", "split": "loo", "name": "tiny-loo"}
    assert ds.name == "tiny-loo" and ds.ref.split == "loo"
    # a manifest written before DatasetRef: derived from its dataset and split, named by its folder
    m = json.loads((ds.path / "manifest.json").read_text())
    del m["ref"]
    m["dataset"] = "tiny"
    (ds.path / "manifest.json").write_text(json.dumps(m))
    old = ProcessedDataset.load(ds.path)
    assert old.ref == DatasetRef("tiny", "loo", "tiny-loo") and old.name == "tiny-loo"
    assert folder_ref("tiny-loo", tmp_path) == old.ref


def test_dataset_identity_of_the_stages(tmp_path, capsys):
    from specgr.cli import main
    from specgr.pipeline import Pipeline, load_pipeline_config

    # --dataset is the folder: with the LOO preset it stays amazon2014-beauty-loo (runs/, results/ and data/)
    cfg = load_pipeline_config("amazon2014-beauty-loo", dataset="amazon2014-beauty-loo")
    p = Pipeline(cfg, data_root=tmp_path / "data", run_root=tmp_path / "runs", results_root=tmp_path / "results")
    assert p.ref == DatasetRef("amazon2014-beauty", "loo", "amazon2014-beauty-loo")
    assert p.run_dir == tmp_path / "runs" / "amazon2014-beauty-loo"
    # the preset alone (its dataset and split) names the same folder
    assert Pipeline(load_pipeline_config("amazon2014-beauty-loo"), data_root=tmp_path / "data",
                    run_root=tmp_path / "runs").ds_name == "amazon2014-beauty-loo"
    # the error names the folder that is missing and the command that makes it
    assert main(["sid", "--dataset", "amazon2014-beauty-loo", "--data-root", str(tmp_path / "data"),
                 "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "specgr prepare --dataset amazon2014-beauty-loo`" in err and "-loo-loo" not in err
    # a folder that is another split than the preset's is an error naming the right folder
    assert main(["sid", "--dataset", "amazon2014-beauty", "--preset", "amazon2014-beauty-loo",
                 "--data-root", str(tmp_path / "data"), "--runs", str(tmp_path / "runs")]) == 2
    assert "Fix: --dataset amazon2014-beauty-loo" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory):
    """One source prepared twice in one data root: the timestamp split (tiny) and the LOO split (tiny-loo), and a
    bundle exported from the LOO split."""
    root = tmp_path_factory.mktemp("data")
    ts = build_tiny_dataset(root, name="tiny", method="timestamp")
    loo = build_tiny_dataset(root, name="tiny-loo", method="loo")
    manifest = loo.path / "manifest.json"
    m = json.loads(manifest.read_text())
    m["dataset"], m["ref"]["source"] = "tiny", "tiny"  # as `specgr prepare --dataset tiny --split loo` writes it
    manifest.write_text(json.dumps(m))
    assert ts.fingerprint != loo.fingerprint
    bundle = build_untrained_bundle(ProcessedDataset.load(loo.path), root.parent / "bundle-loo")
    return root, bundle


def test_loo_bundle_loads_the_loo_split(two_splits):
    from specgr.bundle import Bundle

    root, path = two_splits
    cfg = json.loads((path / "config.json").read_text())["config"]
    assert cfg["dataset"] == "tiny-loo" and cfg["dataset_ref"] == {"source": "tiny", "split": "loo",
                                                                    "name": "tiny-loo"}
    b = Bundle.load(path, data_root=root)
    assert b.ds.path == root / "tiny-loo" and b.ds.ref.split == "loo"
    want = ProcessedDataset.load(root / "tiny-loo").rows("test")
    np.testing.assert_array_equal(b.ds.rows("test").target, want.target)


def test_loo_bundle_of_an_older_export_loads_the_loo_split(two_splits, tmp_path):
    """Bundles exported before DatasetRef recorded the source's registry name only: the folder is found by the
    bundle's fingerprint, never the timestamp split of the same source."""
    import shutil

    from specgr.bundle import Bundle

    root, path = two_splits
    old = tmp_path / "old-bundle"
    shutil.copytree(path, old)
    meta = json.loads((old / "config.json").read_text())
    del meta["config"]["dataset_ref"]
    meta["config"]["dataset"] = "tiny"
    (old / "config.json").write_text(json.dumps(meta))
    b = Bundle.load(old, data_root=root)
    assert b.ds.path == root / "tiny-loo" and b.ds.ref.split == "loo"


def test_loo_bundle_results_and_app_use_the_folder_name(two_splits, tmp_path):
    from specgr.cli import main

    root, path = two_splits
    out = tmp_path / "r.json"
    assert main(["evaluate", "--method", "drafter-encoder", "--checkpoint", str(path), "--data-root", str(root),
                 "--device", "cpu", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["dataset"] == "tiny-loo"
    sys.path.insert(0, str(ROOT / "app"))
    import helpers  # the module the app's results page asks for results/<name>

    assert helpers.checkpoint_dataset(str(path), str(root)) == "tiny-loo"
