"""Move processed datasets to a lent GPU machine and back within its transfer limit (tens of MB per call).

    python scripts/gpu/carry.py pack --datasets amazon2018-game amazon2014-beauty-loo \
        --embeddings amazon2014-beauty-loo:sentence-transformers/all-MiniLM-L6-v2      # here, before the call
    python scripts/gpu/carry.py unpack                                               # there, first thing
    python scripts/gpu/carry.py half devruns/x/tiger devresults/ckpt/tiger           # a checkpoint, fp16, to move

pack copies each dataset's manifest, items, row files and semantic ids (the tokenizer weights only when named, not the
embeddings) into .carry/processed/, plus the embeddings asked for as float16 (half the bytes; only semantic-id and
text-drafter training read them). unpack restores them under devdata/processed/ as float32. Nothing here is
committed: .carry/ and devdata/ are git-ignored.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np


def pack(a) -> None:
    src, dst = Path(a.data_root), Path(a.carry) / "processed"
    for name in a.datasets:
        d = dst / name
        d.mkdir(parents=True, exist_ok=True)
        for f in ["manifest.json", "items.parquet", *[p.name for p in (src / name).glob("rows_*.npz")]]:
            shutil.copy2(src / name / f, d / f)
        if (src / name / "sid").exists():
            (d / "sid").mkdir(exist_ok=True)
            for f in (src / name / "sid").glob("*"):
                if f.suffix in (".npz", ".json"):
                    shutil.copy2(f, d / "sid" / f.name)
                elif f"{name}/{f.name}" in a.tokenizers:  # fp16: half the bytes (read back as fp32)
                    from specgr.sid.build import load_sid_tokenizer, save_sid_tokenizer

                    save_sid_tokenizer(d / "sid" / f.name, *load_sid_tokenizer(f, "cpu"), half=True,
                                      inference_only=True)
    for spec in a.embeddings or []:
        name, model = spec.split(":", 1)
        slug = model.replace("/", "__")
        emb = np.load(src / name / "embeddings" / f"{slug}.npy")
        (dst / name / "embeddings").mkdir(parents=True, exist_ok=True)
        np.save(dst / name / "embeddings" / f"{slug}.f16.npy", emb.astype(np.float16))
    total = sum(f.stat().st_size for f in dst.rglob("*") if f.is_file())
    print(f"packed {total / 2**20:.1f} MiB into {dst}")


def unpack(a) -> None:
    src, dst = Path(a.carry) / "processed", Path(a.out)
    for f in src.rglob("*"):
        if not f.is_file():
            continue
        rel = f.relative_to(src)
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.name.endswith(".f16.npy"):
            np.save(target.with_name(f.name.replace(".f16.npy", ".npy")), np.load(f).astype(np.float32))
        elif not target.exists():
            shutil.copy2(f, target)
    print(f"unpacked into {dst}")


def half(a) -> None:
    """A checkpoint directory rewritten with fp16 weights (read back in their own dtypes): half the bytes to move."""
    from specgr.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(a.src)
    save_checkpoint(a.dst, ck["config"], ck["state_dicts"], sids=ck["sids"], dataset_fingerprint=ck["dataset_fingerprint"],
                    extra=ck["extra"], half=True)
    print(f"{a.src} -> {a.dst} (fp16)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--data-root", default="data/processed")
    p.add_argument("--carry", default=".carry")
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--embeddings", nargs="*", help="DATASET:TEXT_MODEL pairs to carry as float16")
    p.add_argument("--tokenizers", nargs="*", default=[], help="DATASET/FILE tokenizer files to carry too, e.g. amazon2018-game/rqvae_tokenizer.pt")
    p = sub.add_parser("unpack")
    p.add_argument("--carry", default=".carry")
    p.add_argument("--out", default="devdata/processed")
    p = sub.add_parser("half", help="copy a checkpoint directory with fp16 weights")
    p.add_argument("src")
    p.add_argument("dst")
    a = ap.parse_args(argv)
    {"pack": pack, "unpack": unpack, "half": half}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
