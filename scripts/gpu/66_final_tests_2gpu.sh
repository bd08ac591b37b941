#!/usr/bin/env bash
# Release 30, call 1 (a 2-GPU machine): every GPU test on the final code of release 29 (batches by length longest
# first, which release 29's GPU tests had not seen), the two-GPU trainer test included.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-65).
source scripts/gpu/common.sh
timeout 570 python3 -m pytest -q -m gpu -rs tests/ 2>&1 | quiet | tail -14
echo "== done $(( $(date +%s) - t0 )) s"
