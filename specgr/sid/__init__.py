"""Semantic ids: tokenizers (RQ-VAE, residual k-means), the SemanticIDs table/trie, building and quality reports.

    sids, tok, report = build_semantic_ids(emb, n_in_sample, SIDConfig(method="rqkmeans", codebook_size=144))
    save_sid_artifacts(ds.path, sids, tok, cfg, report); sids, tok, cfg = load_sid_artifacts(ds.path, "rqkmeans")
    new_ids = encode_new_items(tok, sids, emb_new)
"""

from specgr.sid.build import (SIDConfig, build_semantic_ids, encode_new_items, load_sid_artifacts, make_tokenizer,
                              save_sid_artifacts, tokenizer_from_state_dict)
from specgr.sid.quality import print_quality, quality_report
from specgr.sid.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from specgr.sid.rqvae import RQVAEConfig, RQVAETokenizer
from specgr.sid.semantic_ids import BOS, EOS, OFFSET, PAD, SemanticIDs, SIDOverflowError

__all__ = ["PAD", "BOS", "EOS", "OFFSET", "SemanticIDs", "SIDOverflowError", "SIDConfig", "build_semantic_ids",
           "save_sid_artifacts", "load_sid_artifacts", "encode_new_items", "make_tokenizer",
           "tokenizer_from_state_dict", "quality_report", "print_quality", "RQVAEConfig", "RQVAETokenizer",
           "RQKMeansConfig", "RQKMeansTokenizer"]
