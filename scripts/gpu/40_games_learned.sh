#!/usr/bin/env bash
# Release 14, GPU calls 2..N (one GPU; call again on the same warm machine until the lane has ended, as
# scripts/gpu/lanes.sh says). The Games preset end to end on the current code: release 13's Games run ended with one
# tuned value on its edge (SpecGR_Aux vnew's γ at -6.2 after 8 widenings), which γ's -inf domain end (specgr/tune.py,
# added after that run) is for. Same lane settings as release 13 (tune.on_edge=warn tune.max_widen=8).
# Carry: .carry/processed/amazon2018-game and .carry/runs (scripts/gpu/carry.py pack --datasets amazon2018-game).
# As run: calls 2-4 on 1-GPU H100s (T=570 each). Call 3's tune stage ran out of memory under lanes.sh's 45% cap for
# shared cards; call 4 resumed at the tune stage with the cap lifted:
#   rm -f devresults/games.started devresults/games.rc; CAP=1.0 T=570 bash scripts/gpu/40_games_learned.sh
# lanes.sh now derives the cap from LANES (one lane per card: the whole card), so a rerun needs no CAP.
# docs/RESULTS.md §3.0g.
source scripts/gpu/common.sh
source scripts/gpu/lanes.sh
LANES="games"
start games amazon2018-game
finish_lanes $LANES
