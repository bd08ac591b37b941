"""Build a named semantic-id variant of a processed dataset, for experiments that compare tokenizers.

    python experiments/build_sids.py --data-root data/processed --dataset amazon2014-beauty-loo \
        --name rqkmeans_mpnet --method rqkmeans --codebook-size 256 --text-model sentence-transformers/all-mpnet-base-v2

Writes <dataset>/sid/<name>.npz, <name>_tokenizer.pt and <name>_report.json (the layout of `specgr sid`, under a name
of your choice instead of the method name). The text model's embeddings must already be in <dataset>/embeddings/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    from specgr.data.processed import ProcessedDataset
    from specgr.sid.build import SIDConfig, build_semantic_ids, save_sid_artifacts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default="data/processed")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--name", required=True, help="variant name: sid/<name>.npz")
    ap.add_argument("--method", default="rqvae", choices=["rqvae", "rqkmeans"])
    ap.add_argument("--codebook-size", type=int, default=256)
    ap.add_argument("--text-model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)
    ds = ProcessedDataset.load(Path(a.data_root) / a.dataset)
    cfg = SIDConfig(method=a.method, codebook_size=a.codebook_size, device=a.device)
    sids, tok, rep = build_semantic_ids(ds.embeddings(a.text_model), ds.n_in_sample, cfg)
    save_sid_artifacts(ds.path, sids, tok, cfg, {**rep, "text_model": a.text_model}, name=a.name)
    print(f"{a.dataset}/{a.name}: unique-prefix share {rep['unique_prefix_share']:.3f}, max collision depth "
          f"{rep['max_depth']}, fit {rep['fit_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
