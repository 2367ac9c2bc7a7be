#!/usr/bin/env bash
# NAB evaluation: scores every file of the NAB corpus with `kpiwatch score`
# (one default configuration for all files, causal) and runs the scorer we
# trust, ../shared/nab/score.py, on the results.
#
# usage: benches/nab.sh [OUT_DIR] [NAB_DIR]
#   OUT_DIR defaults to target/nab-results, NAB_DIR to ../shared/nab.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/nab-results}
nab=${2:-../shared/nab}
cargo build --release --quiet --bin kpiwatch
bin=target/release/kpiwatch
rm -rf "$out"
count=0
while IFS= read -r -d '' csv; do
  rel=${csv#"$nab"/data/}
  mkdir -p "$out/$(dirname "$rel")"
  "$bin" score --input "$csv" > "$out/$rel"
  count=$((count + 1))
done < <(find "$nab/data" -name '*.csv' -print0 | sort -z)
echo "scored $count files into $out (commit $(git rev-parse --short HEAD 2>/dev/null || echo none), $(date -u +%Y-%m-%d))"
python3 "$nab/score.py" "$nab" "$out"
