#!/usr/bin/env bash
# Release 29, call 2 (one H100): every GPU test on the final code (the loop's, the README's GPU snippet through a
# GraphedRecommender, the trainer's), after the shared pool of call 1.
# Carry: .carry/processed/amazon2018-game with the MiniLM embeddings (as 43-62).
source scripts/gpu/common.sh
timeout 560 python3 -m pytest -q -m gpu -rs tests/ 2>&1 | quiet | tail -12
echo "== done $(( $(date +%s) - t0 )) s"
