#!/usr/bin/env bash
# The scenario suite: for each scale x seed, simulate the main shop
# (scenario-main.toml), run `kpiwatch backtest` over its events with the
# suite's config (shop.toml) and labels, then aggregate the results into
# one table per scale and a verdict (aggregate.py). README.md beside this
# file explains the incidents and the targets.
#
#   benches/scenarios/run.sh [--scales 0.1,1,10] [--seeds 1,2,3]
#                            [--scenario FILE] [--config FILE] [--out DIR]
#                            [--keep-events]
#
# Results go to --out (default target/scenarios): per run the labels, the
# backtest JSON and the simulator's summary; summary.json combines them.
# Event files are deleted after their backtest (×10 is ~3 GB each) unless
# --keep-events. KPIWATCH_BIN picks a prebuilt binary instead of
# `cargo build --release`. --config replaces shop.toml (the holiday
# scenario runs with shop-holiday.toml, whose calendar declares a holiday).
# Exit status: aggregate.py's (0 all targets met, 1 some not met), 2 for
# usage or a failed step.
set -euo pipefail
cd "$(dirname "$0")/../.."

scales=0.1,1,10
seeds=1,2,3
scenario=benches/scenarios/scenario-main.toml
config=benches/scenarios/shop.toml
out=target/scenarios
keep=false
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --scales) scales="${2:?--scales needs a list, e.g. 0.1,1,10}"; shift 2 ;;
    --seeds) seeds="${2:?--seeds needs a list, e.g. 1,2,3}"; shift 2 ;;
    --scenario) scenario="${2:?--scenario needs a file}"; shift 2 ;;
    --config) config="${2:?--config needs a file}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --keep-events) keep=true; shift ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown argument $1" >&2; usage ;;
  esac
done

if [ -z "${KPIWATCH_BIN:-}" ]; then
  cargo build --release --locked --quiet
  bin=target/release/kpiwatch
else
  bin=$KPIWATCH_BIN
fi
if ! "$bin" backtest --help >/dev/null 2>&1; then
  echo "run.sh: $bin has no 'backtest' command yet; build a kpiwatch that has it (or set KPIWATCH_BIN)" >&2
  exit 2
fi
mkdir -p "$out"
python=${PYTHON:-python3}

results=()
IFS=, read -r -a scale_list <<<"$scales"
IFS=, read -r -a seed_list <<<"$seeds"
for scale in "${scale_list[@]}"; do
  for seed in "${seed_list[@]}"; do
    run="scale${scale}-seed${seed}"
    events="$out/events-$run.jsonl"
    echo "run.sh: $run: simulate" >&2
    "$bin" simulate --scenario "$scenario" --scale "$scale" --seed "$seed" \
      --output "$events" --labels "$out/labels-$run.json" 2>"$out/simulate-$run.txt" ||
      { cat "$out/simulate-$run.txt" >&2; exit 2; }
    head -n 1 "$out/simulate-$run.txt" >&2
    echo "run.sh: $run: backtest" >&2
    "$bin" backtest --config "$config" --events "$events" \
      --incidents "$out/labels-$run.json" --json >"$out/backtest-$run.json" ||
      { echo "run.sh: backtest failed for $run" >&2; exit 2; }
    $keep || rm -f "$events"
    results+=("$out/backtest-$run.json")
  done
done
"$python" benches/scenarios/aggregate.py --out "$out/summary.json" "${results[@]}"
