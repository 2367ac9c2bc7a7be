#!/usr/bin/env python3
"""Combines `kpiwatch backtest --json` results of the scenario suite.

Usage: aggregate.py [--out SUMMARY.json] RESULT.json...

Each RESULT file is one backtest over one scale and seed; its name carries
them as `...scale<S>-seed<N>...json` (run.sh names them so). Prints one
table per scale -- recall, detection delay per incident kind against its
target, false alerts per KPI-week (overall and the worst KPI), alerts still
firing, alerts firing after their incident ended, alerts that re-fired
on a series during their incident (no target: a measure of flapping),
message-consistency violations, alerts inside quiet spans -- and a
verdict per scale and overall against the targets below. Writes the combined JSON to --out.

Exit status: 0 when every scale meets every target, 1 when one does not,
2 for unusable input. Python 3 standard library only.
"""

import argparse
import json
import re
import sys
from collections import defaultdict

# "Alerts people can trust" (README of the suite).
TARGETS = {
    "recall": 0.95,  # at least, at every scale
    "false_per_kpi_week": 1.0,  # at most, for every KPI (all its series)
    "firing_after_incident_end": 0,  # at most
    "violations": 0,  # at most
}

NAME = re.compile(r"scale([0-9.]+?)-seed([0-9]+)")


def scale_and_seed(path):
    m = NAME.search(path.rsplit("/", 1)[-1])
    if not m:
        raise SystemExit(
            f"aggregate.py: {path}: the name must carry scale<S>-seed<N>, "
            "e.g. backtest-scale1-seed2.json (run.sh names results so)"
        )
    return m.group(1), int(m.group(2))


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"aggregate.py: {path}: {e}", file=sys.stderr)
        sys.exit(2)
    for key in ("kpis", "incidents", "overall", "weeks"):
        if key not in doc:
            print(
                f"aggregate.py: {path}: no {key!r}; is it the output of "
                "`kpiwatch backtest --json`?",
                file=sys.stderr,
            )
            sys.exit(2)
    return doc


def ratio(a, b):
    return a / b if b else None


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def summarise(runs):
    """One scale: `runs` is a list of (seed, backtest document)."""
    incidents = sum(r["overall"]["incidents"] for _, r in runs)
    detected = sum(r["overall"]["detected"] for _, r in runs)
    false_alerts = sum(r["overall"]["false"] for _, r in runs)
    kpi_weeks = sum(r["overall"]["kpi_weeks"] for _, r in runs)
    recall = ratio(detected, incidents)

    kinds = defaultdict(lambda: {"runs": 0, "detected": 0, "delays": [],
                                 "targets": set(), "late": 0, "ids": set()})
    misses = []
    for seed, r in runs:
        for inc in r["incidents"]:
            k = kinds[inc.get("kind") or inc["id"]]
            k["runs"] += 1
            k["ids"].add(inc["id"])
            target = inc.get("target_delay_buckets")
            if target is not None:
                k["targets"].add(target)
            if inc.get("detected"):
                k["detected"] += 1
                delay = inc.get("delay_buckets")
                k["delays"].append(delay)
                if target is not None and delay is not None and delay > target:
                    k["late"] += 1
                    misses.append(f"{inc['id']} (seed {seed}): {delay} buckets, target {target}")
            else:
                misses.append(f"{inc['id']} (seed {seed}): not detected")
    by_kind = {}
    for kind, k in sorted(kinds.items()):
        delays = sorted(d for d in k["delays"] if d is not None)
        by_kind[kind] = {
            "incidents": sorted(k["ids"]),
            "runs": k["runs"],
            "detected": k["detected"],
            "recall": ratio(k["detected"], k["runs"]),
            "delay_buckets_median": delays[len(delays) // 2] if delays else None,
            "delay_buckets_max": delays[-1] if delays else None,
            "target_delay_buckets": max(k["targets"]) if k["targets"] else None,
            "over_target": k["late"],
        }

    per_kpi = defaultdict(lambda: {"false": 0, "weeks": 0.0, "fired": 0, "violations": 0,
                                   "still_firing": 0})
    for _, r in runs:
        for k in r["kpis"]:
            p = per_kpi[k["kpi"]]
            p["false"] += k.get("false", 0)
            p["weeks"] += r["weeks"]
            p["fired"] += k.get("fired", 0)
            p["violations"] += k.get("violations", 0)
            p["still_firing"] += k.get("still_firing", 0)
    for p in per_kpi.values():
        p["false_per_week"] = ratio(p["false"], p["weeks"])
    worst = max(per_kpi.items(), key=lambda kv: kv[1]["false_per_week"] or 0.0, default=None)

    quiet = defaultdict(int)
    for _, r in runs:
        for q in r.get("quiet", []):
            quiet[q.get("kind") or q["id"]] += q.get("alerts", 0)

    summary = {
        "seeds": sorted(seed for seed, _ in runs),
        "events": sum(r["events"] for _, r in runs),
        "late_events_dropped": sum(r.get("late", 0) for _, r in runs),
        "incidents": incidents,
        "detected": detected,
        "recall": recall,
        "fired": sum(r["overall"]["fired"] for _, r in runs),
        "false": false_alerts,
        "kpi_weeks": kpi_weeks,
        "false_per_kpi_week": ratio(false_alerts, kpi_weeks),
        "worst_kpi": worst[0] if worst else None,
        "worst_kpi_false_per_week": worst[1]["false_per_week"] if worst else None,
        "still_firing_at_end": sum(r["overall"]["still_firing_at_end"] for _, r in runs),
        "firing_after_incident_end": sum(r["overall"]["firing_after_incident_end"] for _, r in runs),
        # Reports from before the field have none: counted as 0.
        "refired": sum(r["overall"].get("refired", 0) for _, r in runs),
        "violations": sum(r["overall"]["violations"] for _, r in runs),
        "by_kind": by_kind,
        "kpis": dict(sorted(per_kpi.items())),
        "quiet_alerts": dict(sorted(quiet.items())),
        "misses": misses,
    }
    checks = {
        "recall": recall is not None and recall >= TARGETS["recall"],
        "delays": all(k["over_target"] == 0 for k in by_kind.values()),
        "false_per_kpi_week": all((p["false_per_week"] or 0.0) <= TARGETS["false_per_kpi_week"]
                                  for p in per_kpi.values()),
        "firing_after_incident_end":
            summary["firing_after_incident_end"] <= TARGETS["firing_after_incident_end"],
        "violations": summary["violations"] <= TARGETS["violations"],
    }
    summary["checks"] = checks
    summary["pass"] = all(checks.values())
    return summary


def print_scale(scale, s):
    ok = lambda b: "ok" if b else "MISSED"
    print(f"\n== scale x{scale}  (seeds {', '.join(map(str, s['seeds']))}; "
          f"{s['events']:,} events; {s['late_events_dropped']} dropped as late)")
    print(f"recall {fmt(s['recall'])} ({s['detected']}/{s['incidents']})"
          f"   target >= {TARGETS['recall']}: {ok(s['checks']['recall'])}")
    print(f"\n  {'kind':<24} {'detected':>9} {'delay med':>9} {'max':>5} {'target':>6}  verdict")
    for kind, k in s["by_kind"].items():
        problems = []
        if k["detected"] < k["runs"]:
            problems.append(f"MISSED {k['runs'] - k['detected']}")
        if k["over_target"]:
            problems.append(f"{k['over_target']} over target")
        verdict = ", ".join(problems) or "ok"
        print(f"  {kind:<24} {k['detected']:>4}/{k['runs']:<4} "
              f"{fmt(k['delay_buckets_median']):>9} {fmt(k['delay_buckets_max']):>5} "
              f"{fmt(k['target_delay_buckets']):>6}  {verdict}")
    print(f"\nfalse alerts per KPI-week: {fmt(s['false_per_kpi_week'])} overall "
          f"({s['false']} in {fmt(s['kpi_weeks'], 1)} KPI-weeks); worst KPI "
          f"{s['worst_kpi']} {fmt(s['worst_kpi_false_per_week'])}"
          f"   target <= {TARGETS['false_per_kpi_week']} per KPI: "
          f"{ok(s['checks']['false_per_kpi_week'])}")
    over = [f"{name} {fmt(p['false_per_week'])}" for name, p in s["kpis"].items()
            if (p["false_per_week"] or 0.0) > TARGETS["false_per_kpi_week"]]
    if over:
        print(f"  over target: {', '.join(over)}")
    print(f"still firing at the end: {s['still_firing_at_end']}")
    print(f"firing after their incident ended: {s['firing_after_incident_end']}"
          f"   target 0: {ok(s['checks']['firing_after_incident_end'])}")
    print(f"re-fired during their incident (a series alerting again after it resolved): "
          f"{s['refired']} of {s['fired'] - s['false']} matched alerts")
    print(f"message-consistency violations: {s['violations']}"
          f"   target 0: {ok(s['checks']['violations'])}")
    if s["quiet_alerts"]:
        quiet = ", ".join(f"{k} {v}" for k, v in s["quiet_alerts"].items())
        print(f"alerts starting in quiet spans (false): {quiet}")
    for m in s["misses"][:20]:
        print(f"  miss: {m}")
    if len(s["misses"]) > 20:
        print(f"  ... and {len(s['misses']) - 20} more misses (see the JSON)")
    print(f"verdict x{scale}: {'PASS' if s['pass'] else 'FAIL'}")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="backtest --json outputs")
    ap.add_argument("--out", help="write the combined JSON here")
    args = ap.parse_args(argv)

    by_scale = defaultdict(list)
    for path in args.results:
        scale, seed = scale_and_seed(path)
        by_scale[scale].append((seed, load(path)))
    scales = {}
    for scale in sorted(by_scale, key=float):
        runs = sorted(by_scale[scale], key=lambda sr: sr[0])
        scales[scale] = summarise(runs)
        print_scale(scale, scales[scale])
    verdict = all(s["pass"] for s in scales.values())
    failing = [f"x{k}" for k, s in scales.items() if not s["pass"]]
    print(f"\nOVERALL: {'PASS' if verdict else 'FAIL'}"
          + (f" (not met at {', '.join(failing)})" if failing else ""))
    if args.out:
        doc = {"targets": TARGETS, "scales": scales, "pass": verdict}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=False, default=sorted)
            f.write("\n")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
