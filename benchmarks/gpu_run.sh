#!/usr/bin/env bash
# Every GPU measurement of the project, in one resumable script, for a lent GPU machine with no network.
#
#   bash benchmarks/gpu_run.sh [OUTDIR]       # from the repository root; OUTDIR defaults to results/gpu
#
# It runs (a) the sweep-engine benchmark, (b)+(c) the WRN-16-4 epoch benchmark, then every claim's `gpu` preset,
# most informative first: the claims with no gpu verdict yet (the newest first), then two-regimes (whose first gpu
# run was finished on a CPU, so its arms must be trained again on one kind of hardware), then the two with a
# committed gpu verdict. It never starts a part with less than a minute left of GPU_RUN_SECONDS (default 540), and stops a running claim at
# the deadline: its finished ensembles are in the SQLite store, and running the script again (with the stores in
# OUTDIR/results) resumes where it stopped. After each part it packs everything into OUTDIR/gpu_results.tar.gz.
#
# Environment: GPU_RUN_SECONDS (the deadline), GPU_RUN_PRESET (default gpu; `tiny` checks the plumbing on a CPU),
# GPU_RUN_DEVICE (default cuda), GPU_RUN_PACK_TO (a folder that also gets the archive and the log after each part), SGD_NOISE_DATA (the MNIST-1D cache: generate it once elsewhere, since the
# generator takes seconds per 10,000 examples), GPU_RUN_CLAIMS (default: every claim, in the order above; a test
# checks that the list names every registered claim).
set -uo pipefail
out=${1:-${OUT:-results/gpu}}
mkdir -p "$out/results" "$out/images"
preset=${GPU_RUN_PRESET:-gpu}; device=${GPU_RUN_DEVICE:-cuda}; deadline=${GPU_RUN_SECONDS:-540}
claims=${GPU_RUN_CLAIMS:-"noise-needed critical-batch edge-of-stability adam-regimes sharp-flat-trend three-factors
  noise-scale sharp-flat sde-quadratic averaged-sgd swa two-regimes step-budget epoch-budget"}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SGD_NOISE_PROGRESS=0
py=${PYTHON:-python3}
start=$(date +%s)
left() { echo $(( deadline - ($(date +%s) - start) )); }
pack() { tar czf "$out/gpu_results.tar.gz.tmp" -C "$out" results images bench.json run.log 2>/dev/null;
         mv "$out/gpu_results.tar.gz.tmp" "$out/gpu_results.tar.gz";
         if [ -n "${GPU_RUN_PACK_TO:-}" ]; then cp "$out/gpu_results.tar.gz" "$out/run.log" "$GPU_RUN_PACK_TO/"; fi; }
log() { echo "[$(( $(date +%s) - start )) s] $*"; }
{
  log "start: preset $preset on $device, deadline ${deadline} s"
  $py -c "import torch, platform; print('torch', torch.__version__, 'python', platform.python_version(), '|',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
  tiny=$([ "$preset" = tiny ] && echo --tiny)
  if [ "$(left)" -gt 60 ]; then
    log "benchmark (a): sweep engine vs plain loop"
    timeout "$(left)" $py benchmarks/gpu_bench.py --device "$device" --part a --out "$out/bench.json" $tiny
  fi
  pack
  if [ ! -e "$out/.bench_b" ] && [ "$(left)" -gt 100 ]; then
    log "benchmark (b, c): WRN-16-4 epoch"
    nc=$([ "$(left)" -gt 200 ] || echo --no-compile)
    timeout "$(( $(left) - 30 ))" $py benchmarks/gpu_bench.py --device "$device" --part b --out "$out/bench.json" $tiny $nc \
      && touch "$out/.bench_b"
    pack
  fi
  for c in $claims; do
    if [ "$(left)" -le 60 ]; then log "skipped $c: under a minute left"; continue; fi
    log "claim $c ($preset)"
    timeout "$(left)" $py -c "import sys; from sgd_noise.cli import main; sys.exit(main(sys.argv[1:]))" \
      reproduce "$c" --preset "$preset" --device "$device" --results "$out/results" --images "$out/images" --no-progress
    log "claim $c: exit $?"
    pack
  done
  log "done"
} 2>&1 | tee -a "$out/run.log"
pack
