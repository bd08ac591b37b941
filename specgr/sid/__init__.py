"""Semantic ids: tokenizers (RQ-VAE, residual k-means), the SemanticIDs table/trie, building and quality reports."""

from specgr.sid.semantic_ids import BOS, EOS, OFFSET, PAD, SemanticIDs, SIDOverflowError

__all__ = ["PAD", "BOS", "EOS", "OFFSET", "SemanticIDs", "SIDOverflowError"]
