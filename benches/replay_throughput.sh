#!/usr/bin/env bash
# End-to-end throughput of `kpiwatch replay` on one core: ten KPIs and about
# a thousand series (benches/pipeline.toml) over a simulated shop.
#
# Builds the release binary, writes the events once into target/ (or
# $CARGO_TARGET_DIR): `kpiwatch simulate`, plus a "store" field with 20
# values derived from the user (the simulator alone has too few label
# combinations for a thousand series; see benches/pipeline.toml). Then times
# `kpiwatch replay --config benches/pipeline.toml --events FILE > /dev/null`
# RUNS times, and prints events/s (lines / wall seconds) best of RUNS and
# median, peak RSS, the number of series the events create (counted from
# the file for the config's group_by), and the machine and its load.
#
# In the same run, alternating with replay (bare, replay, bare, replay...),
# it times a bare baseline over the same file: examples/bare_parse.rs,
# which reads each line and parses the fields the config reads with
# serde_json, nothing else. The ratio of the medians, replay / bare, is the
# figure to compare across machines and loads: both move together with the
# machine, the ratio moves with kpiwatch.
#
# Target from the issue: >= 1 million events/s. Replay is single-threaded;
# other load on the machine skews the timing, so the load average is
# printed with the result.
#
# usage: benches/replay_throughput.sh [DAYS] [RATE] [RUNS]
#   DAYS defaults to 14, RATE (page views per minute at the weekday peak)
#   to 200, RUNS to 3.
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-14}
rate=${2:-200}
runs=${3:-3}
config=benches/pipeline.toml

source benches/timing.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin kpiwatch --example bare_parse
bin=$target/release/kpiwatch
bare=$target/release/examples/bare_parse
"$bin" check --config "$config"

events=$target/bench-events-${days}d-${rate}.jsonl
bench_events "$events" "$bin" "$days" "$rate"
lines=$(wc -l < "$events")
bytes=$(wc -c < "$events")
echo "events: $lines lines, $((bytes / 1024 / 1024)) MiB, $((bytes / lines)) bytes/event on average"
head -c 400 "$events" | head -n 2

# Series the events create: distinct group_by values per KPI of the config
# (kept in step with benches/pipeline.toml by hand; the ratio KPI has the
# series of its denominator, carts).
awk '
  function get(f,   s) {
    if (!match($0, "\"" f "\":\"[^\"]*\"")) return ""
    s = substr($0, RSTART, RLENGTH); sub("^\"" f "\":\"", "", s); return substr(s, 1, length(s) - 1)
  }
  {
    t = get("type"); c = get("country"); p = get("platform"); s = get("store"); n = get("node")
    if (t == "page_view") k["page_views " c p s]
    if (t == "cart") { k["carts " c p s]; k["conversion " c p s] }
    if (t == "checkout") k["checkouts " c p s]
    if (t == "payment") { k["revenue " c p n]; k["payments_by_node " n]; k["basket_size " c] }
    if (t == "login") k["logins " c p]
    if (t == "signup") k["signups " c]
    if (t == "page_view" || t == "login") k["active_users " c]
  }
  END {
    for (x in k) { split(x, a, " "); per[a[1]]++; total++ }
    line = ""
    for (q in per) line = line " " q "=" per[q]
    print "series: " total " (" substr(line, 2) ")"
  }' "$events"

best=
best_rss=
replay_secs=
bare_secs=
replay_cpu=
bare_cpu=
# BEFORE_BIN=path/to/an/older/kpiwatch also times that binary in each
# round, after this one's replay, for a side-by-side "no slower" check
# (build main before a change in a worktree: git worktree add ../old REV;
# cd ../old && cargo build --release --bin kpiwatch).
before=${BEFORE_BIN:-}
before_secs=
for run in $(seq "$runs"); do
  # The bare baseline first, then replay, so each pair meets the same load.
  timed "$bare" "$events"
  bare_secs+="$secs"$'\n'
  bare_cpu+="$cpu"$'\n'
  echo "run $run: bare parse $secs s${cpu:+ ($cpu s CPU)}, peak RSS $rss KiB"
  timed "$bin" replay --config "$config" --events "$events"
  replay_secs+="$secs"$'\n'
  replay_cpu+="$cpu"$'\n'
  echo "run $run: $secs s${cpu:+ ($cpu s CPU)}, peak RSS $rss KiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -z $best ]] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then
    best=$secs
    best_rss=$rss
  fi
  if [[ -n $before ]]; then
    timed "$before" replay --config "$config" --events "$events"
    before_secs+="$secs"$'\n'
    echo "run $run: before ($before) $secs s${cpu:+ ($cpu s CPU)}, peak RSS $rss KiB"
  fi
done

rate_m=$(awk -v n="$lines" -v s="$best" 'BEGIN { printf "%.2f", n / s / 1e6 }')
echo "kpiwatch replay, $lines events, best of $runs: $best s = $rate_m M events/s, peak RSS $best_rss KiB"
replay_med=$(printf '%s' "$replay_secs" | median)
ratio_report replay events "$lines" "$runs" "$replay_secs" "$bare_secs" "$replay_cpu" "$bare_cpu"
if [[ -n $before ]]; then
  awk -v r="$replay_med" -v b="$(printf '%s' "$before_secs" | median)" -v runs="$runs" 'BEGIN {
    printf "median of %d: before %.3f s, this build %.3f s: this / before %.2f\n", runs, b, r, r / b
  }'
fi
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
