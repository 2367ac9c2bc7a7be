#!/usr/bin/env bash
# End-to-end throughput of `kpiwatch score`: builds the release binary,
# writes a NAB-format CSV of the shared synthetic series
# (examples/common/mod.rs: 5-minute buckets, daily + weekly seasonality,
# noise) into target/ (or $CARGO_TARGET_DIR), and times
# `kpiwatch score --input FILE > /dev/null`, best of RUNS. Prints rows/s and
# peak RSS (from /usr/bin/time when it is installed), and the per-series
# detector state size the README quotes.
#
# Target from the issue: >= 2 million rows/s on one core. The score loop is
# single-threaded; run it on a quiet machine, other load skews the timing.
#
# usage: benches/score_throughput.sh [ROWS] [RUNS]
#   ROWS defaults to 5000000, RUNS to 3.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-5000000}
runs=${2:-3}

# Seconds since a `date +%s.%N` reading (awk: bc is not everywhere).
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin kpiwatch --example gen_nab_csv --example state_size
bin=$target/release/kpiwatch
csv=$target/score-throughput-$rows.csv
if [[ ! -s $csv ]]; then
  start=$(date +%s.%N)
  "$target"/release/examples/gen_nab_csv "$rows" "$csv"
  echo "generated $csv ($rows rows, $(du -h "$csv" | cut -f1)) in $(since "$start") s"
fi

best=
best_rss=
for run in $(seq "$runs"); do
  if [[ -x /usr/bin/time ]]; then
    # %e elapsed seconds, %M peak resident set in KiB; to a file, so that
    # kpiwatch's own stderr and exit status come through.
    /usr/bin/time -f '%e %M' -o "$target/score-throughput.time" "$bin" score --input "$csv" > /dev/null
    read -r secs rss < "$target/score-throughput.time"
  else
    start=$(date +%s.%N)
    "$bin" score --input "$csv" > /dev/null
    secs=$(since "$start")
    rss=
  fi
  echo "run $run: $secs s${rss:+, peak RSS $rss KiB}"
  if [[ -z $best ]] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then
    best=$secs
    best_rss=$rss
  fi
done

rate=$(awk -v n="$rows" -v s="$best" 'BEGIN { printf "%.2f", n / s / 1e6 }')
echo "kpiwatch score, $rows rows, best of $runs: $best s = $rate M rows/s${best_rss:+, peak RSS $best_rss KiB}"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
"$target"/release/examples/state_size
