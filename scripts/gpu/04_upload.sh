#!/usr/bin/env bash
# GPU call 4a: only moves data onto the machine (the transfer limit is per call): processed datasets and the Games
# TIGER trained in call 3 (fp16). The next call, on the same warm machine, finds them in devdata/ and devruns/.
source scripts/gpu/common.sh
mkdir -p devruns && cp -rn .carry/runs/* devruns/
cp -n checkpoints/amazon2018-game/sid_tokenizer.pt devdata/processed/amazon2018-game/sid/rqvae_tokenizer.pt
ls devdata/processed/*/ devruns/*/
