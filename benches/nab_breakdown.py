#!/usr/bin/env python3
"""Where a NAB result gains and loses points, file by file.

usage: benches/nab_breakdown.py NAB_DIR RESULTS_DIR [--profile NAME] [FILTER...]

Uses the trusted scorer's own functions (NAB_DIR/score.py) to find the
corpus-wide threshold of the profile (default: standard), then prints one
line per file, worst first: the file's contribution to the raw score, its
windows, how many were missed, the true-positive credit and the number and
cost of false positives. With FILTER words, it also prints for each
matching file every window (its largest score and where, and the first
bucket at or above the threshold) and every false positive (index, score,
distance to the nearest window). Standard library only.
"""
import importlib.util
import json
import os
import sys


def main(argv):
    args = argv[1:]
    profile = "standard"
    if "--profile" in args:
        i = args.index("--profile")
        profile = args[i + 1]
        del args[i:i + 2]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    nab, results, filters = args[0], args[1], args[2:]
    spec = importlib.util.spec_from_file_location("nab_score", os.path.join(nab, "score.py"))
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    with open(os.path.join(nab, "labels", "combined_windows.json")) as f:
        windows = json.load(f)
    with open(os.path.join(nab, "config", "profiles.json")) as f:
        weights = json.load(f)[profile]["CostMatrix"]

    files = {}
    points = []
    for rel in sorted(windows):
        ts, scores = scorer.read_scores(os.path.join(results, rel))
        pts = scorer.sweep_points(rel, ts, scores, list(windows[rel]), weights)
        files[rel] = (ts, scores, pts)
        points += pts
    raw, threshold = scorer.best_threshold(points, weights)
    print("profile %s: threshold %.6g, raw %.2f" % (profile, threshold, raw))

    rows = []
    for rel, (_, _, pts) in files.items():
        fp_cost, fp_count, credit = 0.0, 0, {}
        for score, weighted, name in pts:
            if name == "probationary":
                continue
            if name is None:
                if score >= threshold:
                    fp_cost += weighted
                    fp_count += 1
            else:
                credit.setdefault(name, -weights["fnWeight"])
                if score >= threshold and weighted > credit[name]:
                    credit[name] = weighted
        missed = sum(1 for c in credit.values() if c == -weights["fnWeight"])
        tp = sum(credit.values())
        rows.append((tp + fp_cost, rel, len(credit), missed, tp, fp_count, fp_cost))
    for row in sorted(rows):
        print("%7.2f %-58s windows=%d missed=%d tp=%6.2f fp=%3d (%6.2f)" % row)

    for rel, (ts, scores, _) in files.items():
        if not any(word in rel for word in filters):
            continue
        index = {t: i for i, t in enumerate(ts)}
        spans = [(index[a[:19]], index[b[:19]]) for a, b in windows[rel]]
        probation = int(min(len(ts) * scorer.PROBATION_PERCENT, scorer.PROBATION_PERCENT * 5000))
        print("== %s (%d rows, probation %d)" % (rel, len(ts), probation))
        for a, b in spans:
            seg = scores[a:b + 1]
            top = max(seg)
            first = next((i for i, s in enumerate(seg) if s >= threshold), None)
            print("  window %d-%d: max %.3f at +%d, first >= threshold at %s"
                  % (a, b, top, seg.index(top), "+%d" % first if first is not None else "none"))
        fps = []
        for i, s in enumerate(scores):
            if s < threshold or i < probation or any(a <= i <= b for a, b in spans):
                continue
            near = min((i - b if i > b else i - a) for a, b in spans) if spans else None
            fps.append("%d(%.2f%s)" % (i, s, "" if near is None else ", %+d" % near))
        print("  false positives:", " ".join(fps) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
