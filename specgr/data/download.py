"""Fetch dataset files: local mirror first, then the upstream URL; sha256 verified before anything is parsed.

A pickle from an unverified source can run code, so `verified_path` is the only way the loaders get a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from specgr.data.registry import DatasetSpec

MIRROR_ENV = "SPECGR_DATA_MIRROR"
DEFAULT_CACHE = Path(os.environ.get("SPECGR_DATA_CACHE", "data/raw"))


class DatasetNotFoundError(FileNotFoundError):
    pass


class ChecksumError(ValueError):
    pass


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, expected: str | None, origin: str) -> None:
    if expected is None:
        return
    got = sha256sum(path)
    if got != expected:
        raise ChecksumError(
            f"checksum mismatch for {path} (from {origin}): expected sha256 {expected}, got {got}. "
            "The file is corrupt or was tampered with; it was NOT unpickled. Delete it and fetch it again "
            f"(`specgr download ...`), or fix your mirror (${MIRROR_ENV}).")


def _download(url: str, dest: Path) -> None:
    import requests
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with requests.get(url, stream=True, timeout=60) as r:
        r.raise_for_status()
        total = int(r.headers.get("content-length", 0)) or None
        with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for block in r.iter_content(1 << 20):
                f.write(block)
                bar.update(len(block))
    tmp.replace(dest)


def verified_path(spec: DatasetSpec, filename: str, mirror: str | os.PathLike | None = None,
                  cache: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """Return a local, checksum-verified path to `filename` of dataset `spec`.

    Order: `mirror` argument, then $SPECGR_DATA_MIRROR (both hold `<name>/<filename>`), then the cache
    (`data/raw/<name>/`), then a download from upstream into the cache.
    """
    url, sha = spec.files[filename]
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        p = Path(mirror) / spec.name / filename
        if p.exists():
            _check(p, sha, f"mirror {mirror}")
            return p
    cache_dir = Path(cache) if cache else DEFAULT_CACHE
    p = cache_dir / spec.name / filename
    if p.exists():
        _check(p, sha, "cache")
        return p
    if not allow_download:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r}: {filename} not found in the mirror "
            f"({'$' + MIRROR_ENV + '=' + str(mirror) if mirror else '$' + MIRROR_ENV + ' is not set'}) nor in the cache "
            f"{cache_dir / spec.name}. Fix: set {MIRROR_ENV} to a folder holding {spec.name}/{filename} "
            f"(or pass --mirror), or allow the download from {url}.")
    try:
        _download(url, p)
    except Exception as e:  # network errors: say what to do instead
        raise DatasetNotFoundError(
            f"dataset {spec.name!r}: could not download {url} ({e}). Fix: download it by hand into "
            f"{p}, or set {MIRROR_ENV} to a folder holding {spec.name}/{filename}.") from e
    try:
        _check(p, sha, url)
    except ChecksumError:
        bad = p.with_suffix(p.suffix + ".bad")
        shutil.move(p, bad)
        raise
    return p
