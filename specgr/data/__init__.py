"""Datasets: registry, checksum-verified downloads, splits and the processed on-disk format."""

from specgr.data.processed import ProcessedDataset, Rows  # noqa: F401
from specgr.data.registry import DATASETS, get_dataset  # noqa: F401
