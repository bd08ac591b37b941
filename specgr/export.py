"""Export: assemble a bundle (specgr.bundle) from the checkpoint directories the training stages wrote.

Every stage writes its model as a component of the one checkpoint format (specgr.checkpoint): TIGER "tiger",
SpecGR++ "specgr_pp", the text drafter "aux". Export copies each component's config and weights as they are (fp16 by
default), and writes beside them what the bundle adds: the semantic ids and their frozen tokenizer, the dataset ref,
the tuned SpecGR defaults per drafter, metrics, and the 2-D maps the app shows. It builds the bundle aside and
renames it into place, so a bundle directory is never half-written.

    export_bundle("checkpoints/mine", ds, sids, tokenizer, sid_cfg, {"tiger": "runs/mine/tiger",
                  "specgr_pp": "runs/mine/specgr_pp", "aux": "runs/mine/aux"}, specgr_defaults=...)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from specgr.bundle import TOKENIZER_FILE, Bundle
from specgr.checkpoint import load_checkpoint, save_checkpoint
from specgr.data.processed import ProcessedDataset, replace_dir
from specgr.sid.build import save_sid_tokenizer


def export_bundle(path, ds: ProcessedDataset, sids, sid_tokenizer, sid_cfg, components: dict, text_model=None,
                  specgr_defaults: dict | None = None, metrics: dict | None = None, half: bool = True,
                  maps: bool = True) -> Path:
    """Write the bundle directory `path` from `components` {name: checkpoint directory holding that component}.

    fp16 weights by default (half the size, verified harmless in docs/RESULTS.md). maps: also compute the 2-D UMAP
    maps of the app (umap2d.npz; skipped when umap-learn is not installed)."""
    path = Path(path)
    config: dict = {"dataset": ds.name, "dataset_ref": ds.ref.to_dict(), "n_items": ds.n_items,
                    "n_in_sample": ds.n_in_sample, "text_model": text_model or ds.manifest.get("text_model"),
                    "sid": sid_cfg.to_dict(), "specgr_defaults": specgr_defaults or {}}
    weights: dict = {}
    for name, src in components.items():
        ck = load_checkpoint(src, ds=ds, names=[name])
        config[name], weights[name] = ck["config"][name], ck["state_dicts"][name]
    if "specgr_pp" in config and "model" not in config["specgr_pp"]:
        raise ValueError(f"{components['specgr_pp']} holds SpecGR++ in the format before its TIGER moved into the "
                         "component. Fix: retrain it (`--force-stages specgr_pp`).")
    tmp = path.with_name(f".{path.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted export
    save_checkpoint(tmp, config, weights, sids=sids, dataset_fingerprint=ds.fingerprint,
                    extra={"metrics": metrics or {}}, half=half)
    save_sid_tokenizer(tmp / TOKENIZER_FILE, sid_tokenizer, sid_cfg, half=half, inference_only=True)
    if maps:
        _export_maps(tmp, ds)
    replace_dir(tmp, path)
    return path


def _export_maps(out: Path, ds: ProcessedDataset) -> None:
    import importlib.util

    from specgr.projection import compute_maps, save_maps

    if importlib.util.find_spec("umap") is None:
        print(f"{out}: umap-learn is not installed, no 2-D maps (the app fits them on first use)")
        return
    b = Bundle(load_checkpoint(out, ds=ds, device="cpu"), ds)
    save_maps(out, compute_maps(b, log=lambda *a: None), b)
