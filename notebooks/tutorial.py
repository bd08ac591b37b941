"""The setup every tutorial notebook starts with:

    from tutorial import setup
    ROOT, DATA_ROOT, CHECKPOINT = setup()

It makes the repository root the working directory (the library's default paths, data/processed and checkpoints/,
are relative to it), reads DATASET_PATH and CHECKPOINT_PATH, quiets tqdm, Lightning and UMAP chatter, runs torch on
one thread (the models here are tiny: one thread is as fast, and never spins against other processes) and seeds
torch and numpy.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup(seed: int = 42) -> tuple[Path, Path, Path]:
    """-> (repository root, processed data root, demo checkpoint), with the notebook environment set up."""
    import numpy as np
    import torch

    os.chdir(ROOT)
    data_root = Path(os.environ.get("DATASET_PATH", ROOT / "data" / "processed"))
    checkpoint = Path(os.environ.get("CHECKPOINT_PATH", ROOT / "checkpoints" / "amazon2018-game"))
    warnings.filterwarnings("ignore", message=".*IProgress not found.*")  # tqdm without ipywidgets
    warnings.filterwarnings("ignore", message=".*(LeafSpec|smaller than the logging interval).*")  # lightning chatter
    warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")  # umap: a fixed seed runs single-threaded
    import lightning.pytorch  # noqa: F401 - imported before quieting it: its import sets its loggers back to INFO

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # no GPU/TPU banners or tips for every Trainer
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)
    print("data:", os.path.relpath(data_root, ROOT), "| checkpoint:", os.path.relpath(checkpoint, ROOT),
          "| torch threads:", torch.get_num_threads())
    return ROOT, data_root, checkpoint
