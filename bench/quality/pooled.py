#!/usr/bin/python3
"""The quality study's two replicates pooled: six seeds per row.

    /usr/bin/python3 bench/quality/pooled.py bench/quality/settings.json \
        bench/quality/results bench/quality/results-seeds345 \
        > bench/quality/results-pooled.md
    /usr/bin/python3 bench/quality/pooled.py --replicate-settings \
        bench/quality/settings.json OUT.json     # replicate B's settings

Replicate A is the study at seeds 0, 1, 2 (results/); replicate B is the same
study at seeds 3, 4, 5 (bench/quality/replicate.sh): its own range tests, so
its own advice, classic rules and oracle grid. Pooled, per setting and budget:

- the oracle is the best of the 13 grid LRs by their six-seed mean accuracy
  (three runs from each replicate at the same LR);
- a rule's accuracy is the mean of its six runs: A's seeds at the LR it read
  off A's curves, B's at the LR it read off B's. The gap is the oracle's
  accuracy minus that, in points;
- "cross" is the gap to the LR a three-seed grid search would pick, scored
  on the seeds it did not see (the best of A's grid scored on B's runs, and
  the other way round, averaged): the oracle without its winner's curse;
- spread A / B: the seeds' max_lr spread of each replicate's range test;
- "A - B" is the difference between the replicates' three-seed means at the
  pooled oracle's LR: the seed noise of one replicate's rows;
- lag: lrtune's gap minus the best classic rule's.

The noise floor at the end simulates a rule that always trains at each row's
best LR, with each row's seed noise: the gaps six seeds still cannot resolve.
Only the standard library.
"""
import json
import math
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (this folder's report.py: the study's reader)


def pool(ga, gb):
    """Two replicates' grids [(lr, three-seed mean)] as one six-seed grid."""
    return [(lr, (x + y) / 2) for (lr, x), (_, y) in zip(ga, gb)]


def rule_accuracy(study, s, rule, epochs):
    a = study.advice.get((s["id"], rule, "one_cycle"))
    if a is None:
        return None, None
    acc = study.mean_accuracy(s, "one_cycle", a["max_lr"], None, epochs)
    return acc, a


def rows(settings_path, dir_a, dir_b):
    a_study = report.Study(settings_path, dir_a)
    # B's seeds live in its own settings file (written by replicate.sh).
    b_file = os.path.join(dir_b, "settings.json")
    b_study = report.Study(b_file if os.path.exists(b_file) else settings_path,
                           dir_b)
    b_settings = {s["id"]: s for s in b_study.settings}
    for s in a_study.settings:
        sb = b_settings[s["id"]]
        for epochs in s["budgets"]:
            ga = a_study.grid(s, "one_cycle", epochs)
            gb = b_study.grid(sb, "one_cycle", epochs)
            if ga is None or gb is None:
                continue
            pooled = pool(ga, gb)
            j = max(range(len(pooled)), key=lambda k: pooled[k][1])
            oracle_lr, oracle_acc = pooled[j]
            ja = max(range(len(ga)), key=lambda k: ga[k][1])
            jb = max(range(len(gb)), key=lambda k: gb[k][1])
            row = {"setting": s["id"], "split": s.get("split", "choose"),
                   "epochs": epochs, "oracle_lr": oracle_lr,
                   "oracle_acc": oracle_acc, "edge": j in (0, len(pooled) - 1),
                   # A's pick scored on B and B's pick scored on A.
                   "cross_acc": (gb[ja][1] + ga[jb][1]) / 2,
                   "split_noise": ga[j][1] - gb[j][1],
                   "grid_diff": [x - y for (_, x), (_, y) in zip(ga, gb)],
                   "grid": [acc for _, acc in pooled]}
            for rule, _ in report.RULES:
                acc_a, adv_a = rule_accuracy(a_study, s, rule, epochs)
                acc_b, adv_b = rule_accuracy(b_study, sb, rule, epochs)
                if acc_a is None or acc_b is None:
                    continue
                row[rule + "_gap"] = oracle_acc - (acc_a + acc_b) / 2
                if rule == "lrtune":
                    row["lrtune_lr"] = (report.median_log(adv_a["max_lr"]),
                                        report.median_log(adv_b["max_lr"]))
                    row["lrtune_cross"] = row["cross_acc"] - (acc_a + acc_b) / 2
                    row["spread"] = tuple(
                        report.spread_decades(a["detail"]["per_seed_max_lr"])
                        for a in (adv_a, adv_b))
                    row["warnings"] = sorted(set(adv_a["detail"]["warnings"]) |
                                             set(adv_b["detail"]["warnings"]))
            yield row


def lag(r):
    classic = [r.get(k + "_gap") for k, _ in report.RULES[1:]]
    classic = [g for g in classic if g is not None]
    if not classic or r.get("lrtune_gap") is None:
        return None
    return r["lrtune_gap"] - min(classic)


def summary(rows, label):
    gaps = [r["lrtune_gap"] for r in rows if r.get("lrtune_gap") is not None]
    if not gaps:
        return "%s: no rows yet" % label
    lags = [x for x in (lag(r) for r in rows) if x is not None]
    cross = [r["lrtune_cross"] for r in rows if "lrtune_cross" in r]
    # One spread per range test (a setting's rows share its range tests).
    spreads = list({(r["setting"], i): x for r in rows if "spread" in r
                    for i, x in enumerate(r["spread"])}.values())
    parts = [
        "%s: %d rows" % (label, len(gaps)),
        "lrtune gap max %.2f, mean %.2f points, rows over 0.5: %d" % (
            max(gaps), statistics.mean(gaps), sum(g > 0.5 for g in gaps)),
        "against the cross-scored grid pick: max %.2f, mean %.2f, rows over "
        "0.5: %d" % (max(cross), statistics.mean(cross),
                     sum(g > 0.5 for g in cross)),
        "worst lag behind the best classic rule %.2f (rows over 0.3: %d)" % (
            max(lags), sum(x > 0.3 for x in lags)),
        "seed spread max %.2f decades (range tests over 0.3: %d of %d)" % (
            max(spreads), sum(x > 0.3 for x in spreads), len(spreads)),
    ]
    for k, name in report.RULES[1:]:
        g = [r[k + "_gap"] for r in rows if r.get(k + "_gap") is not None]
        if g:
            parts.append("%s mean %.2f max %.2f" % (name, statistics.mean(g), max(g)))
    return "; ".join(parts)


def noise_floor(rows, trials=2000, seed=0):
    """A rule at each row's true best LR, six seeds: its gap to the oracle.

    Each row's grid means are taken as the truth; a six-seed mean at a grid
    LR is that plus normal noise whose sd is the row's own (the two
    replicates' three-seed means differ by sqrt(2) x sd3; sd6 = sd3 /
    sqrt(2)). Returns the mean gap and the largest gap over the rows, each
    as (median, 5%, 95%), and P(largest <= 0.5).
    """
    rng = random.Random(seed)
    sds = []
    for r in rows:
        # sd of one replicate's three-seed mean, from the replicates'
        # differences over the grid points within 2 points of the best
        # (the rest diverge or crawl, with noise of their own).
        best = max(r["grid"])
        d = [x for x, acc in zip(r["grid_diff"], r["grid"]) if acc > best - 2]
        sd3 = math.sqrt(statistics.mean(x * x for x in d) / 2)
        sds.append(sd3 / math.sqrt(2))
    means, maxes = [], []
    for _ in range(trials):
        gaps = []
        for r, sd in zip(rows, sds):
            truth = r["grid"]
            noisy = [t + rng.gauss(0, sd) for t in truth]
            fresh = max(truth) + rng.gauss(0, sd)
            gaps.append(max(noisy) - fresh)
        means.append(statistics.mean(gaps))
        maxes.append(max(gaps))

    def q(v):
        v = sorted(v)
        return (v[len(v) // 2], v[len(v) // 20], v[len(v) * 19 // 20])
    return q(means), q(maxes), sum(m <= 0.5 for m in maxes) / trials, sds


def write_replicate_settings(src, dst, seeds=(3, 4, 5)):
    """The study's settings with the range test's seeds moved and the
    triangular-CLR grid off (its gaps are not among issue 13's goals)."""
    with open(src) as f:
        study = json.load(f)
    study["comment"] = ("generated by bench/quality/pooled.py from %s: seeds "
                        "%s, no CLR grid" % (os.path.basename(src),
                                             ", ".join(map(str, seeds))))
    for s in study["settings"]:
        s["job"]["range_test"]["seeds"] = list(seeds)
        s["clr"] = False
    with open(dst, "w") as f:
        json.dump(study, f, indent=1)
        f.write("\n")


USAGE = """usage: pooled.py SETTINGS.json RESULTS_A RESULTS_B   (the pooled table)
       pooled.py --replicate-settings SETTINGS.json OUT.json
           (OUT.json: the settings at seeds 3, 4, 5 without the CLR grid)"""


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--replicate-settings":
        write_replicate_settings(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 4 or sys.argv[1].startswith("-"):
        sys.exit(USAGE)
    rs = list(rows(*sys.argv[1:]))
    fmt = report.fmt
    print("| setting | split | epochs | oracle max_lr (6 seeds) | oracle acc"
          " | lrtune max_lr A / B | lrtune | cross | valley | min/10 | steep"
          " | lr-finder | lag | spread A / B | A - B | warnings |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rs:
        lr = r.get("lrtune_lr")
        sp = r.get("spread")
        print("| %s | %s | %d | %s%s | %.2f | %s | %s | %s | %s | %s | %s | %s"
              " | %s | %s | %s | %s |" % (
                  r["setting"], r["split"], r["epochs"],
                  fmt(r["oracle_lr"], "%.3g"), " (edge)" if r["edge"] else "",
                  r["oracle_acc"],
                  "%.3g / %.3g" % lr if lr else "-",
                  fmt(r.get("lrtune_gap")), fmt(r.get("lrtune_cross")),
                  fmt(r.get("fastai_valley_gap")),
                  fmt(r.get("fastai_minimum_gap")),
                  fmt(r.get("fastai_steep_gap")),
                  fmt(r.get("lrfinder_steepest_gap")), fmt(lag(r)),
                  "%.2f / %.2f" % sp if sp else "-", fmt(r["split_noise"]),
                  " ".join(r.get("warnings", []))))
    print()
    for label, split_rows in report.by_split(rs):
        print("- " + summary(split_rows, label))
    if rs:
        mean_q, max_q, p, sds = noise_floor(rs)
        print("- noise floor (a rule always at each row's best LR, six seeds, "
              "each row's own seed noise: sd of a six-seed mean median %.2f, "
              "max %.2f points): mean gap %.2f (5-95%%: %.2f..%.2f), largest "
              "gap over %d rows %.2f (5-95%%: %.2f..%.2f), P(largest <= 0.5) = "
              "%.3f" % (statistics.median(sds), max(sds), mean_q[0], mean_q[1],
                        mean_q[2], len(rs), max_q[0], max_q[1], max_q[2], p))


if __name__ == "__main__":
    main()
