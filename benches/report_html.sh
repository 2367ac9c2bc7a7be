#!/usr/bin/env bash
# `kpiwatch backtest --html` at scale: ten KPIs and about a thousand series
# (benches/pipeline.toml) over DAYS (default 28) days of the simulated shop,
# the events made as benches/replay_throughput.sh makes them (same file, if
# it is there). Prints the backtest's time (the configured run with its
# charts beside the what-if replays at three budgets) and peak RSS, the
# page's size, and how long headless Chromium takes to load the page from
# file:// until its first chart is drawn (tests/common/browser.py --report;
# scripts/ensure-browser installs Chromium), with the machine's load.
#
# usage: benches/report_html.sh [DAYS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-28}
rate=${2:-200}
config=benches/pipeline.toml
source benches/timing.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin kpiwatch
bin=$target/release/kpiwatch
chromium=$(scripts/ensure-browser | tail -n 1)

events=$target/bench-events-${days}d-${rate}.jsonl
bench_events "$events" "$bin" "$days" "$rate"
echo "events: $(wc -l < "$events") lines, $(( $(wc -c < "$events") / 1024 / 1024 )) MiB ($events)"

page=$target/ci-output/report-${days}d-${rate}.html
mkdir -p "$(dirname "$page")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
timed "$bin" backtest --config "$config" --events "$events" --html "$page"
echo "backtest --html: $secs s${cpu:+ ($cpu s CPU)}, peak RSS ${rss:-?} KiB"
echo "page: $(wc -c < "$page") bytes ($(awk -v b="$(wc -c < "$page")" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"
for run in 1 2 3; do
  python3 tests/common/browser.py "$chromium" --report "$page" "$target/ci-output/report-${days}d-${rate}.png" |
    tail -n 1 |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
print("chromium run %s: load to first chart %s ms (page ready at %s ms, first chart drawn at %s ms after navigation), %s charts, %s alerts listed, console errors: %d" % (
    sys.argv[1], r["load_ms"], r["ready_at_ms"], r["first_draw_at_ms"], r["charts"], r["alert_rows"], len(r["console_errors"])))' "$run"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
