"""DatasetRef: which data a processed dataset holds (source, split) and what it is called (name).

The name is the folder `data/processed/<name>/`, and it is what `--dataset` means everywhere: `specgr prepare` writes
that folder, every stage reads it (runs/<name>/), a bundle records it, results go to results/<name>/, and the app
and the error messages use it. One dataset, one name: the leave-one-out split of amazon2014-beauty is
`amazon2014-beauty-loo`, from `prepare` to the results.

    DatasetRef.resolve("amazon2014-beauty", split="loo")   # -> (amazon2014-beauty, loo, amazon2014-beauty-loo)
    DatasetRef.resolve("amazon2014-beauty-loo")            # the same
    specgr.data.processed.folder_ref("amazon2014-beauty-loo", "data/processed")   # from its manifest, if prepared

The manifest stores the ref (key "ref"); manifests written before it have "dataset" (the source) and "split"
(its method), and the name is the folder's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from specgr.data.registry import DATASETS, get_dataset

SPLIT_METHODS = ("timestamp", "loo", "upstream")


@dataclass(frozen=True)
class DatasetRef:
    source: str  # the registered dataset it was made from (`specgr datasets`), or the name of your own catalog
    split: str  # timestamp | loo | upstream (specgr.data.split.SplitConfig.method)
    name: str  # the processed folder, data/processed/<name>/: what --dataset names

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_manifest(cls, manifest: dict, folder: str | Path) -> "DatasetRef":
        """The ref of a prepared dataset; the name is the folder's (where it lives is what names it)."""
        name = Path(folder).name
        if "ref" in manifest:
            return cls(manifest["ref"]["source"], manifest["ref"]["split"], name)
        return cls(manifest["dataset"], manifest["split"]["method"], name)  # manifests before DatasetRef

    @classmethod
    def resolve(cls, dataset: str, split: str | None = None, name: str | None = None,
                own_catalog: bool = False) -> "DatasetRef":
        """The ref of `specgr prepare --dataset DATASET [--split SPLIT] [--name NAME]`.

        DATASET is a registered dataset, the same with its split appended (amazon2014-beauty-loo), or, with
        own_catalog, any name for your catalog. The folder is NAME; else DATASET when DATASET already says its split
        or the split is the source's default; else DATASET-SPLIT.
        """
        if split is not None and split not in SPLIT_METHODS:
            raise ValueError(f"unknown split {split!r}. Fix: use one of {', '.join(SPLIT_METHODS)}.")
        if own_catalog:
            return cls(dataset, split or "timestamp", name or dataset)
        source, implied = _parse(dataset)
        if split and implied and split != implied:
            raise ValueError(f"--dataset {dataset} is the {implied} split, but the {split} split was asked for. "
                             f"Fix: --dataset {source}-{split} (or --dataset {source} --split {split}).")
        default = DATASETS[source].default_split
        split = split or implied or default
        return cls(source, split, name or (dataset if implied or split == default else f"{source}-{split}"))


def _parse(dataset: str) -> tuple[str, str | None]:
    """A registered dataset name, possibly with a split appended -> (source, the split it names or None)."""
    for s in SPLIT_METHODS:
        if dataset.endswith(f"-{s}") and dataset[: -len(s) - 1] in DATASETS:
            return dataset[: -len(s) - 1], s
    return get_dataset(dataset).name, None  # an unknown name: KeyError with the registered names and the fix
