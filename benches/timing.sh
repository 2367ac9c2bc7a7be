# Timing helpers shared by benches/replay_throughput.sh,
# benches/score_throughput.sh and benches/report_html.sh (sourced, not
# run). The caller sets `target` (the cargo target directory) before
# calling `timed`.

# Seconds since a `date +%s.%N` reading (awk: bc is not everywhere).
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# The median of the numbers on stdin, one a line.
median() { sort -g | awk '{ x[NR] = $1 } END { printf "%.3f", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2 }'; }

# Runs "$@" with stdout to /dev/null and sets secs (elapsed, to the
# millisecond from bash's clock: /usr/bin/time's hundredths are 5 % of a
# bare parse), and from /usr/bin/time (all three empty without it) cpu
# (user + system seconds: unlike elapsed time it leaves out waiting for a
# core another process holds; on 2026-12-06 at load 2.9 the bare CSV parse
# took 0.21 to 0.32 s elapsed) and rss (peak KiB). /usr/bin/time writes to
# a file, so that the program's own stderr (kpiwatch's summary line) and
# exit status come through.
timed() {
  local start=$EPOCHREALTIME
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%M %U %S' -o "$target/timing.time" "$@" > /dev/null
    read -r rss user sys < "$target/timing.time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  else
    "$@" > /dev/null
    rss=
    cpu=
  fi
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
}

# ratio_report WHAT UNIT COUNT RUNS SECS BARE_SECS CPU BARE_CPU: the medians
# of kpiwatch's and the bare baseline's runs (newline-separated lists), as
# rates of COUNT UNITs, their ratio, and the ratio in CPU seconds when
# /usr/bin/time measured them.
ratio_report() {
  local what=$1 unit=$2 count=$3 runs=$4 secs=$5 bare_secs=$6 cpu=$7 bare_cpu=$8
  awk -v n="$count" -v r="$(printf '%s' "$secs" | median)" -v b="$(printf '%s' "$bare_secs" | median)" \
    -v runs="$runs" -v what="$what" -v unit="$unit" 'BEGIN {
    printf "median of %d: %s %.3f s = %.2f M %s/s, bare parse %.3f s = %.2f M %s/s\n", runs, what, r, n / r / 1e6, unit, b, n / b / 1e6, unit
    printf "ratio %s / bare parse: %.2f\n", what, r / b
  }'
  if [[ -n $bare_cpu && $bare_cpu != $'\n'* ]]; then
    awk -v r="$(printf '%s' "$cpu" | median)" -v b="$(printf '%s' "$bare_cpu" | median)" -v what="$what" 'BEGIN {
      printf "CPU seconds, median: %s %.2f s, bare parse %.2f s, ratio %.2f\n", what, r, b, r / b
    }'
  fi
}

# Writes the replay benchmarks' events once, to the file $1 (skipped when
# it exists): `kpiwatch` ($2) simulate over $3 days at $4 page views a
# minute at the peak, seed 1, plus a "store" field, the user number modulo
# 20, written before the closing brace ({"time":..,"user":"u123",..,
# "store":"s03"}): the simulator alone has too few label combinations for
# a thousand series (see benches/pipeline.toml).
bench_events() {
  local events=$1 bin=$2 days=$3 rate=$4
  [[ -s $events ]] && return 0
  local start
  start=$(date +%s.%N)
  "$bin" simulate --start 2024-01-01T00:00:00Z --days "$days" --rate "$rate" --seed 1 |
    awk '{
      match($0, /"user":"u[0-9]+"/)
      u = substr($0, RSTART + 9, RLENGTH - 10)
      printf "%s,\"store\":\"s%02d\"}\n", substr($0, 1, length($0) - 1), u % 20
    }' > "$events.tmp"
  mv "$events.tmp" "$events"
  echo "generated $events in $(since "$start") s"
}
