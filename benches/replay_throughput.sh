#!/usr/bin/env bash
# End-to-end throughput of `kpiwatch replay` on one core: ten KPIs and about
# a thousand series (benches/pipeline.toml) over a simulated shop.
#
# Builds the release binary, writes the events once into target/ (or
# $CARGO_TARGET_DIR): `kpiwatch simulate`, plus a "store" field with 20
# values derived from the user (the simulator alone has too few label
# combinations for a thousand series; see benches/pipeline.toml). Then times
# `kpiwatch replay --config benches/pipeline.toml --events FILE > /dev/null`
# best of RUNS, and prints events/s (lines / wall seconds), peak RSS, the
# number of series the events create (counted from the file for the
# config's group_by), and the machine and its load.
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

# Seconds since a `date +%s.%N` reading (awk: bc is not everywhere).
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin kpiwatch
bin=$target/release/kpiwatch
"$bin" check --config "$config"

events=$target/bench-events-${days}d-${rate}.jsonl
if [[ ! -s $events ]]; then
  start=$(date +%s.%N)
  # The store is the user number modulo 20, written before the closing
  # brace: {"time":..,"type":..,"user":"u123",..,"store":"s03"}.
  "$bin" simulate --start 2024-01-01T00:00:00Z --days "$days" --rate "$rate" --seed 1 |
    awk '{
      match($0, /"user":"u[0-9]+"/)
      u = substr($0, RSTART + 9, RLENGTH - 10)
      printf "%s,\"store\":\"s%02d\"}\n", substr($0, 1, length($0) - 1), u % 20
    }' > "$events.tmp"
  mv "$events.tmp" "$events"
  echo "generated $events in $(since "$start") s"
fi
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
for run in $(seq "$runs"); do
  # %e elapsed seconds, %M peak resident set in KiB; to a file, so that
  # kpiwatch's own stderr (its summary line) comes through.
  /usr/bin/time -f '%e %M' -o "$target/replay-throughput.time" \
    "$bin" replay --config "$config" --events "$events" > /dev/null
  read -r secs rss < "$target/replay-throughput.time"
  echo "run $run: $secs s, peak RSS $rss KiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -z $best ]] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then
    best=$secs
    best_rss=$rss
  fi
done

rate_m=$(awk -v n="$lines" -v s="$best" 'BEGIN { printf "%.2f", n / s / 1e6 }')
echo "kpiwatch replay, $lines events, best of $runs: $best s = $rate_m M events/s, peak RSS $best_rss KiB"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
