"""Device helpers shared by the whole package: which torch device to run on, ids as long tensors on a device, and
whether faiss is installed."""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None) -> cuda when a GPU is visible, else cpu; anything else is checked, not guessed.

    A CUDA device without a visible GPU is a ValueError naming the fix (torch would fail much later, deep inside a
    model call, with a long traceback).
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {str(device)!r} ({e}). Fix: use auto, cpu or cuda.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU that torch can use. "
                             "Fix: use --device cpu (or auto, which picks the GPU when there is one).")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} GPU(s) visible. Fix: use "
                             f"cuda:0..cuda:{torch.cuda.device_count() - 1}.")
    return dev


def as_long(x, device=None) -> torch.Tensor:
    """ndarray / list / tensor of ids -> LongTensor (on `device`, or where it is; numpy and lists: the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device if device is not None else x.device, dtype=torch.long)
    return torch.as_tensor(np.ascontiguousarray(np.asarray(x)), dtype=torch.long, device=device)


def has_faiss() -> bool:
    """faiss is optional: the torch paths (k-means, retrieval) always work without it."""
    try:
        import faiss  # noqa: F401
    except Exception:  # not installed, or a build that does not load on this machine
        return False
    return True
