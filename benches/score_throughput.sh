#!/usr/bin/env bash
# End-to-end throughput of `kpiwatch score`: builds the release binary,
# writes a NAB-format CSV of the shared synthetic series
# (examples/common/mod.rs: 5-minute buckets, daily + weekly seasonality,
# noise) into target/ (or $CARGO_TARGET_DIR), and times
# `kpiwatch score --input FILE > /dev/null` RUNS times. Prints rows/s best
# of RUNS and median, peak RSS (from /usr/bin/time when it is installed),
# and the per-series detector state size the README quotes.
#
# In the same run, alternating with score (bare, score, bare, score...), it
# times a bare CSV parse of the same file: `examples/bare_parse.rs --csv`,
# which splits each row at its comma and parses the value, nothing else.
# The ratio of the medians, score / bare, is the figure to compare across
# machines and loads: both move together with the machine, the ratio moves
# with kpiwatch.
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

source benches/timing.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin kpiwatch --example gen_nab_csv --example state_size --example bare_parse
bin=$target/release/kpiwatch
bare=$target/release/examples/bare_parse
csv=$target/score-throughput-$rows.csv
if [[ ! -s $csv ]]; then
  start=$(date +%s.%N)
  "$target"/release/examples/gen_nab_csv "$rows" "$csv"
  echo "generated $csv ($rows rows, $(du -h "$csv" | cut -f1)) in $(since "$start") s"
fi

best=
best_rss=
score_secs=
bare_secs=
score_cpu=
bare_cpu=
for run in $(seq "$runs"); do
  # The bare baseline first, then score, so each pair meets the same load.
  timed "$bare" --csv "$csv"
  bare_secs+="$secs"$'\n'
  bare_cpu+="$cpu"$'\n'
  echo "run $run: bare parse $secs s${cpu:+ ($cpu s CPU)}${rss:+, peak RSS $rss KiB}"
  timed "$bin" score --input "$csv"
  score_secs+="$secs"$'\n'
  score_cpu+="$cpu"$'\n'
  echo "run $run: $secs s${cpu:+ ($cpu s CPU)}${rss:+, peak RSS $rss KiB}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -z $best ]] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then
    best=$secs
    best_rss=$rss
  fi
done

rate=$(awk -v n="$rows" -v s="$best" 'BEGIN { printf "%.2f", n / s / 1e6 }')
echo "kpiwatch score, $rows rows, best of $runs: $best s = $rate M rows/s${best_rss:+, peak RSS $best_rss KiB}"
ratio_report score rows "$rows" "$runs" "$score_secs" "$bare_secs" "$score_cpu" "$bare_cpu"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$target"/release/examples/state_size
