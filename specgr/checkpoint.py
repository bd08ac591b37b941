"""Self-contained checkpoint directories: everything needed to run a trained model, nothing pickled.

One format for every artifact: a training stage writes one, and a bundle (specgr.bundle) is several components in one
directory. Each model file owns its component: `save_<model>` writes it, `<model>_from_checkpoint` rebuilds the model
from `load_checkpoint`'s result (nanoGPT's {model, model_args} idea: the config that builds the module travels with
its weights).

    <dir>/config.json   {"format": "specgr-checkpoint", "version": 1, "dataset_fingerprint": ...,
                         "config": {<component>: {...}}, "weights": {<name>: {"file", "dtype", "n_tensors"}},
                         "sids": "sids.npz" | null, "extra": {...}}
    <dir>/<name>.pt     one state dict per component (torch.save of plain tensors; loaded with weights_only=True)
    <dir>/sids.npz      the SemanticIDs the models were trained with (numpy only)

Components share a directory: TIGER writes "tiger", SpecGR++ "specgr_pp", the text drafter "aux", SASRec "sasrec"
(`save_checkpoint` on an existing directory merges config/weights/extra, provided the dataset fingerprint agrees).
Every file is read with torch.load(weights_only=True) through `safe_torch_load`, which names the file and the fix when
it is missing, truncated or not ours.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

FORMAT = "specgr-checkpoint"
VERSION = 1
CONFIG_FILE = "config.json"
SIDS_FILE = "sids.npz"


class CheckpointMismatchError(ValueError):
    """The checkpoint was made for another dataset (fingerprint differs)."""


def dataset_fingerprint(ds) -> str:
    """The fingerprint a checkpoint records: ProcessedDataset.fingerprint (catalog order + split targets)."""
    return ds.fingerprint


def read_json(f: Path, fix: str) -> dict:
    """A JSON file as a dict; a broken file is a ValueError that names it and the fix (not a bare JSONDecodeError)."""
    try:
        out = json.loads(Path(f).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{f} cannot be read as JSON ({e}). Fix: {fix}") from None
    if not isinstance(out, dict):
        raise ValueError(f"{f} holds a JSON {type(out).__name__}, not an object. Fix: {fix}")
    return out


def safe_torch_load(f, device="cpu", fix: str = "re-create it (re-run the step that wrote it).") -> object:
    """torch.load(weights_only=True) of one of our files, with errors that name the file and the fix: a missing,
    truncated or foreign file is a FileNotFoundError / ValueError, never a pickle traceback."""
    f = Path(f)
    if not f.exists():
        raise FileNotFoundError(f"{f} is missing. Fix: {fix}")
    try:
        return torch.load(f, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, unsafe global: one clear line instead of torch's traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{f} cannot be loaded (truncated or not a specgr file: {first}). Fix: {fix}") from None


def read_config(path: Path) -> dict | None:
    f = path / CONFIG_FILE
    if not f.exists():
        return None
    meta = read_json(f, "restore the checkpoint directory (re-export it, or `git checkout` a shipped one).")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{f} is not a specgr checkpoint (format={meta.get('format')!r}). Fix: pass a directory "
                         "written by specgr (a stage directory under runs/ or a bundle), or retrain into a fresh one.")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{f} has checkpoint version {meta['version']}; this specgr reads <= {VERSION}. "
                         f"Fix: upgrade specgr.")
    return meta


def _compact(sd: dict, half: bool) -> tuple[dict, dict]:
    """Detached CPU copy of a state dict; half=True stores floating tensors as fp16 (tied tensors stay tied)."""
    out, dtypes, seen = {}, {}, {}
    for k, t in sd.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state dict entry {k!r} is {type(t).__name__}, not a tensor")
        dtypes[k] = str(t.dtype).replace("torch.", "")
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride()) if t.numel() else None
        if key is not None and key in seen:  # tied weights: store once, torch.save keeps the sharing
            out[k] = seen[key]
            continue
        c = t.detach().cpu()
        if half and c.is_floating_point() and c.dtype != torch.float16:
            c = c.to(torch.float16)
        out[k] = c
        if key is not None:
            seen[key] = c
    return out, dtypes


def save_checkpoint(path, config: dict, state_dicts: dict, sids=None, dataset_fingerprint: str | None = None,
                    extra: dict | None = None, half: bool = False) -> Path:
    """Write (or add to) a checkpoint directory.

    config: JSON-serialisable, by component (e.g. {"tiger": {"model": {...}, "vocab_size": 579}}); state_dicts:
    {name: state_dict}, written to <name>.pt; sids: SemanticIDs or None (kept if already present);
    dataset_fingerprint: ProcessedDataset.fingerprint; extra: JSON-serialisable metadata (metrics, timings);
    half: store floating tensors as fp16 (half the size; restored to their original dtype on load).
    An existing directory is merged into (top-level keys of config/extra, weights by name); a different dataset
    fingerprint there raises CheckpointMismatchError.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = read_config(path) or {"format": FORMAT, "version": VERSION, "dataset_fingerprint": None, "config": {},
                                  "weights": {}, "sids": None, "extra": {}, "created": time.time()}
    old_fp = meta.get("dataset_fingerprint")
    if old_fp and dataset_fingerprint and old_fp != dataset_fingerprint:
        raise CheckpointMismatchError(
            f"{path} already holds a checkpoint for dataset fingerprint {old_fp}, not {dataset_fingerprint}. "
            f"Fix: save into a fresh directory (or delete {path}).")
    meta["dataset_fingerprint"] = dataset_fingerprint or old_fp
    meta["config"].update(json.loads(json.dumps(config)))  # fail early on non-JSON values
    meta["extra"].update(json.loads(json.dumps(extra or {})))
    for name, sd in state_dicts.items():
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"weight name {name!r}: use letters, digits, '_' or '-'")
        tensors, dtypes = _compact(sd, half)
        atomic_torch_save(tensors, path / f"{name}.pt")
        meta["weights"][name] = {"file": f"{name}.pt", "dtypes": dtypes, "stored_half": bool(half),
                                 "n_tensors": len(tensors)}
    if sids is not None:
        sids.save(path / SIDS_FILE)
        meta["sids"] = SIDS_FILE
    meta["updated"] = time.time()
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(path / CONFIG_FILE)  # atomic: a crash never leaves a half-written config
    return path


def atomic_torch_save(obj, path) -> Path:
    """torch.save to a temporary file, then rename: a crash mid-write never leaves a truncated file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def check_fingerprint(meta: dict, ds, path) -> None:
    want = ds if isinstance(ds, str) else dataset_fingerprint(ds)
    have = meta.get("dataset_fingerprint")
    if have and want != have:
        what = want if isinstance(ds, str) else f"dataset {getattr(ds, 'name', '?')!r} at {getattr(ds, 'path', '?')}"
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained on a dataset with fingerprint {have}, but {what} has fingerprint "
            f"{want} (other items, item order or split). Its item ids would mean other items. Fix: use the processed "
            f"dataset this checkpoint was trained on (same `specgr prepare` settings), or retrain for this dataset "
            f"into a new checkpoint directory.")


def load_checkpoint(path, ds=None, device="cpu", names=None) -> dict:
    """Read a checkpoint directory.

    ds: a ProcessedDataset (or a fingerprint string) to check against; names: which weights to load (default all).
    Returns {"path", "config", "state_dicts": {name: state_dict}, "sids": SemanticIDs | None,
    "dataset_fingerprint", "extra", "weights"}; state dicts come back in their original dtypes on `device`.
    """
    path = Path(path)
    meta = read_config(path)
    if meta is None:
        raise FileNotFoundError(f"no checkpoint at {path} (missing {CONFIG_FILE}). Fix: train one, e.g. "
                                f"`specgr train tiger --dataset <name>`, or pass the directory that holds config.json.")
    if ds is not None:
        check_fingerprint(meta, ds, path)
    sds = {}
    for name, w in meta["weights"].items():
        if names is not None and name not in names:
            continue
        sd = safe_torch_load(path / w["file"], device, fix=f"restore {path} (re-export or retrain it; `git checkout "
                             f"{path}` for a shipped checkpoint).")
        if w.get("stored_half"):
            sd = {k: v.to(getattr(torch, w["dtypes"][k])) if v.is_floating_point() else v for k, v in sd.items()}
        sds[name] = sd
    if names is not None and set(names) - set(sds):
        raise KeyError(f"{path} has no weights {sorted(set(names) - set(sds))}; it has {sorted(meta['weights'])}. "
                       "Fix: pass the checkpoint directory that holds them.")
    sids = None
    if meta.get("sids"):
        from specgr.sid.semantic_ids import SemanticIDs

        sids = SemanticIDs.load(path / meta["sids"], device=device)
    return {"path": path, "config": meta["config"], "state_dicts": sds, "sids": sids,
            "dataset_fingerprint": meta.get("dataset_fingerprint"), "extra": meta.get("extra", {}),
            "weights": meta["weights"]}


def component(ckpt: dict, name: str, fix: str) -> tuple[dict, dict]:
    """(config, state dict) of component `name` of a loaded checkpoint; a KeyError naming `fix` when absent."""
    if name not in ckpt["config"] or name not in ckpt["state_dicts"]:
        raise KeyError(f"{ckpt['path']} has no {name!r} component (it has {sorted(ckpt['config'])}). Fix: {fix}.")
    return ckpt["config"][name], ckpt["state_dicts"][name]


def has_component(path, name: str) -> bool:
    """Whether the checkpoint directory `path` holds component `name` (no weights are read)."""
    meta = read_config(Path(path))
    return meta is not None and name in meta["weights"]
