#!/usr/bin/env bash
# Speed-up across cores: the engine, tabular and video benchmarks with 1, 2, 4, 8 and 16
# workers, then a table of each one's speed-up (time at 1 worker / time at W) and efficiency
# (speed-up / W). Meant for a machine with 16 or more cores; run from the repository root:
#
#     benchmarks/scaling.sh                 # everything (about 40 minutes on 16 cores)
#     WORKERS="1 2 4" benchmarks/scaling.sh # fewer points
#     ONLY="engine tabular" benchmarks/scaling.sh
#     WORKERS="1 2" ENGINE_MB=500 TABULAR_ROWS=200000 VIDEO_FRAMES=16 benchmarks/scaling.sh
#                                          # a quick try of the script itself
#
# Results: benchmarks/results/scaling-<what>-w<W>.json, and the table on stdout (also saved
# as benchmarks/results/scaling.md). Goal (issue 17): 0.8 efficiency at 16 workers for
# tabular scoring. Each run's command is in its JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-"1 2 4 8 16"}
ONLY=${ONLY:-"engine tabular video"}
# sizes (smaller ones only to try the script out)
ENGINE_MB=${ENGINE_MB:-100000}
TABULAR_ROWS=${TABULAR_ROWS:-10000000}
VIDEO_FRAMES=${VIDEO_FRAMES:-528}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
echo "machine: $(nproc) CPUs, $(uname -m), $($PY --version 2>&1)"
for w in $WORKERS; do
  for what in $ONLY; do
    echo "== $what, $w worker(s)"
    case $what in
      # trivial work: the engine's own throughput of mini-batches
      engine) $PY benchmarks/engine.py --minibatches "$ENGINE_MB" --size 1 --workers "$w" \
                --repeat 1 --json "$OUT/scaling-engine-w$w.json" ;;
      # 10M rows in 32 files, so that 16 workers have mini-batches to share
      tabular) $PY benchmarks/tabular.py --rows "$TABULAR_ROWS" --files 32 --workers "$w" \
                 --skip-ray --repeat 2 --json "$OUT/scaling-tabular-w$w.json" ;;
      # one network thread per worker: the workers are the parallelism measured
      video) $PY benchmarks/video.py --workers "$w" --threads 1 --max-size 256 \
               --frames "$VIDEO_FRAMES" --repeat 1 --skip naive memory flicker \
               --json "$OUT/scaling-video-w$w.json" ;;
    esac
  done
done
$PY - "$OUT" "$WORKERS" "$ONLY" <<'PYEOF' | tee "$OUT/scaling.md"
import json, statistics, sys
from pathlib import Path

out, workers, only = Path(sys.argv[1]), [int(w) for w in sys.argv[2].split()], sys.argv[3].split()

def seconds(what, data):
    if what == "engine":
        return data["job_s"]
    if what == "tabular":
        return data["median_s"]["batchscore"]
    runs = next(iter(data["throughput"].values()))["seconds"]["pipeline"]
    return statistics.median(runs)

print("| benchmark | workers | seconds | speed-up | efficiency |")
print("| --- | --- | --- | --- | --- |")
for what in only:
    base = None
    for w in workers:
        path = out / f"scaling-{what}-w{w}.json"
        if not path.exists():
            continue
        s = seconds(what, json.loads(path.read_text()))
        if base is None:  # the time at 1 worker (the first point is 1 worker)
            base = s * w
        speedup = base / s
        print(f"| {what} | {w} | {s:.2f} | {speedup:.2f} | {speedup / w:.2f} |")
PYEOF
